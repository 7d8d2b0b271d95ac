"""`GET /ledger/export`: the org's whole chain and every checkpoint, as NDJSON, for `defendable verify --chain`.

One line per receipt, in seq order, exactly as the ledger stores it (``payload``: the canonical
bytes that were hashed)::

    {"seq", "receipt_hash", "parent_hash", "payload", "signature", "minted_at"}

then one line per checkpoint the ledger signed, smallest size first, cosignatures merged:
``{"checkpoint": {"type": "checkpoint", "origin", "size", "root_hash", "checkpoint"}}``.

The export is cut at the org's latest checkpoint when it starts: receipts up to that size and
the checkpoints up to it, so that a mint during a long export neither runs it on forever nor
leaves receipts no exported checkpoint covers. Pages come from the ledger one at a time
(`tlog_api.ReceiptsQuery` / `CheckpointsQuery` on `LEDGER_TLOG`), so memory stays at one page
whatever the chain's length. A refusal before the first line is problem+json with the
ledger's status; once streaming has begun it can only end the stream, with a last line
``{"error": "..."}`` that a verifier reports as a cut-short export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, get
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Stream

from defendable_canonical import tlog_api

from .routes import principal_of, problem, require_key
from .tlog_routes import ask_tlog, refused

_encoder = msgspec.json.Encoder()


async def receipts_page(org_id: str, after: int) -> tlog_api.ReceiptsAnswer:
    answer = await ask_tlog(tlog_api.ReceiptsQuery(org_id=org_id, after=after, limit=tlog_api.MAX_PAGE))
    if isinstance(answer, tlog_api.TlogProblem):
        raise refused(answer)
    if not isinstance(answer, tlog_api.ReceiptsAnswer):
        raise problem(502, f"the ledger answered {type(answer).__name__} to a receipts question")
    return answer


async def checkpoints_page(org_id: str, after: int) -> tlog_api.CheckpointsAnswer:
    answer = await ask_tlog(tlog_api.CheckpointsQuery(org_id=org_id, after=after, limit=tlog_api.MAX_PAGE))
    if isinstance(answer, tlog_api.TlogProblem):
        raise refused(answer)
    if not isinstance(answer, tlog_api.CheckpointsAnswer):
        raise problem(502, f"the ledger answered {type(answer).__name__} to a checkpoints question")
    return answer


async def latest_size(org_id: str) -> int | None:
    """The size of the org's latest checkpoint; None when it has none yet (the ledger says 404)."""
    answer = await ask_tlog(tlog_api.CheckpointQuery(org_id=org_id))
    if isinstance(answer, tlog_api.TlogProblem):
        if answer.status == 404:
            return None
        raise refused(answer)
    if not isinstance(answer, tlog_api.CheckpointAnswer):
        raise problem(502, f"the ledger answered {type(answer).__name__} to a checkpoint question")
    return answer.size


def receipt_lines(rows: list[tlog_api.StoredReceiptRow]) -> bytes:
    return b"".join(_encoder.encode(row) + b"\n" for row in rows)


def checkpoint_lines(checkpoints: list[tlog_api.CheckpointAnswer]) -> bytes:
    return b"".join(b'{"checkpoint":' + _encoder.encode(c) + b"}\n" for c in checkpoints)


async def export_lines(org_id: str, first: tlog_api.ReceiptsAnswer, upto: int | None) -> AsyncIterator[bytes]:
    """The NDJSON body, a page per chunk: receipts up to seq ``upto`` (None: all), then checkpoints."""
    try:
        page, last = first, 0
        while True:
            rows = [r for r in page.receipts if upto is None or r.seq <= upto]
            if rows:
                yield receipt_lines(rows)
                last = rows[-1].seq
            if not rows or len(rows) < len(page.receipts) or len(page.receipts) < tlog_api.MAX_PAGE:
                break
            if upto is not None and last >= upto:
                break
            page = await receipts_page(org_id, last)
        after = 0
        while last:
            answer = await checkpoints_page(org_id, after)
            kept = [c for c in answer.checkpoints if c.size <= last]
            if kept:
                yield checkpoint_lines(kept)
            if len(kept) < len(answer.checkpoints) or len(answer.checkpoints) < tlog_api.MAX_PAGE:
                break
            after = kept[-1].size
    except ProblemDetailsException as exc:
        yield _encoder.encode({"error": f"the export is incomplete: {exc.detail}"}) + b"\n"


@get(
    "/ledger/export",
    summary="This org's whole chain and its signed checkpoints as NDJSON, for `defendable verify --chain`",
    guards=[require_key],
)
async def ledger_export(request: Request[Any, Any, Any]) -> Stream:
    org_id = principal_of(request).org_id
    upto = await latest_size(org_id)  # asked first: refusals before the stream are problem+json
    first = await receipts_page(org_id, 0)
    return Stream(
        export_lines(org_id, first, upto),
        media_type="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="defendable-chain-{org_id}.ndjson"',
            "Cache-Control": "no-store",
        },
    )
