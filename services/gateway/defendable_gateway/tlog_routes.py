"""The org's transparency log over HTTP: its checkpoint and RFC 9162 proofs (docs/transparency.md).

The ledger owns the log and answers on `LEDGER_TLOG`; these handlers only check the key,
name the org, and for a receipt read its seq from the read model (the ledger keeps no index
by receipt hash and checks that leaf seq − 1 is that receipt).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response, get
from litestar.params import QueryParameter
from litestar.plugins.problem_details import ProblemDetailsException

from defendable_canonical import tlog_api
from defendable_canonical.subjects import LEDGER_TLOG

from . import store
from .routes import _TOKEN, holder, own_receipt, principal_of, problem, require_key
from .schemas import ShareDoc, ShareTransparency

ASK_TIMEOUT_S = 30.0
_encoder = msgspec.json.Encoder()
A = TypeVar("A")


async def ask_tlog(query: tlog_api.AnyTlogQuery) -> tlog_api.AnyTlogAnswer:
    """One question to the ledger; no answer is a 503, an unreadable one a 502."""
    try:
        data = await holder.res.bus.ask(LEDGER_TLOG, _encoder.encode(query), ASK_TIMEOUT_S)
    except TimeoutError as exc:
        raise problem(503, "the ledger did not answer; retry shortly") from exc
    try:
        return tlog_api.answer_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise problem(502, "the ledger answered something this gateway cannot read") from exc


def refused(answer: tlog_api.TlogProblem) -> ProblemDetailsException:
    return problem(answer.status, answer.detail)


async def ask_for(query: tlog_api.AnyTlogQuery, kind: type[A]) -> A:
    """`ask_tlog`, expecting an answer of `kind`; the ledger's refusal becomes problem+json."""
    answer = await ask_tlog(query)
    if isinstance(answer, tlog_api.TlogProblem):
        raise refused(answer)
    if not isinstance(answer, kind):
        raise problem(502, f"the ledger answered {type(answer).__name__} to a {type(query).__name__}")
    return answer


@get(
    "/ledger/checkpoint",
    summary="The org's latest signed checkpoint, with its witness cosignatures",
    guards=[require_key],
)
async def ledger_checkpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = principal_of(request)
    answer = await ask_for(tlog_api.CheckpointQuery(org_id=principal.org_id), tlog_api.CheckpointAnswer)
    return Response(answer, headers={"Cache-Control": "no-store"})


@get("/ledger/proof/inclusion", summary="RFC 9162 inclusion proof of a receipt in the org's log", guards=[require_key])
async def inclusion_proof(
    request: Request[Any, Any, Any],
    receipt_hash: Annotated[str, QueryParameter(name="hash", max_length=71)],
    size: Annotated[int | None, QueryParameter(name="size", ge=1)] = None,
) -> Response[Any]:
    principal = principal_of(request)
    row = await own_receipt(principal, receipt_hash)
    query = tlog_api.InclusionQuery(org_id=principal.org_id, receipt_hash=receipt_hash, seq=row["seq"], size=size)
    return Response(await ask_for(query, tlog_api.InclusionAnswer))


@get(
    "/ledger/proof/consistency",
    summary="RFC 9162 consistency proof between two sizes of the org's log",
    guards=[require_key],
)
async def consistency_proof(
    request: Request[Any, Any, Any],
    first: Annotated[int, QueryParameter(name="from", ge=0)],
    second: Annotated[int, QueryParameter(name="to", ge=0)],
) -> Response[Any]:
    principal = principal_of(request)
    query = tlog_api.ConsistencyQuery(org_id=principal.org_id, first=first, second=second)
    return Response(await ask_for(query, tlog_api.ConsistencyAnswer))


async def share_proof(org_id: str, receipt_hash: str, seq: int) -> tlog_api.ProofAnswer:
    """The self-contained proof a share document carries."""
    return await ask_for(tlog_api.ProofQuery(org_id=org_id, receipt_hash=receipt_hash, seq=seq), tlog_api.ProofAnswer)


@get("/share/{token:str}", summary="A shared receipt with its self-contained transparency proof (no auth)")
async def share(token: str) -> ShareDoc:
    row = await store.get_receipt_by_token(holder.res.pool, token) if _TOKEN.fullmatch(token) else None
    if row is None:
        raise problem(404, "no receipt is shared under this link")
    return (await share_document(row))[0]


async def share_document(row: dict[str, Any]) -> tuple[ShareDoc, tlog_api.ProofAnswer]:
    """A receipt row as its share document (with its self-contained proof), and that proof."""
    proof = await share_proof(row["org_id"], row["receipt_hash"], row["seq"])
    doc = ShareDoc(
        receipt_hash=row["receipt_hash"],
        payload=msgspec.Raw(bytes(row["payload"])),
        signature=msgspec.Raw(bytes(row["signature"])),
        transparency=ShareTransparency(
            origin=proof.origin, leaf_index=proof.leaf_index, tree_size=proof.tree_size, proof=proof.proof
        ),
    )
    return doc, proof


TLOG_ROUTES = [share, ledger_checkpoint, inclusion_proof, consistency_proof]
