"""GET /flight-sheets: the library, served by asking its owner (the referee) over NATS.

A published sheet never changes (referee/publication.py), so a sheet answers
with its sha256 as a strong ETag and may be cached as immutable.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Response, get

from defendable_canonical.subjects import REFEREE_FLIGHT_SHEET, REFEREE_FLIGHT_SHEETS

from .routes import holder, problem, require_key

_SHEET_REF = re.compile(r"[a-z][a-z0-9_]{0,63}@[0-9A-Za-z.+-]{1,40}")
ASK_TIMEOUT_S = 5.0


async def _ask(subject: str, body: bytes) -> bytes:
    try:
        return await holder.res.bus.ask(subject, body, timeout=ASK_TIMEOUT_S)
    except TimeoutError as exc:
        raise problem(503, "the referee did not answer; retry shortly") from exc


@get(
    "/flight-sheets",
    summary="Every Flight Sheet in the library: id, version, lane, title, sha256",
    guards=[require_key],
)
async def list_flight_sheets() -> Response[Any]:
    answer = await _ask(REFEREE_FLIGHT_SHEETS, b"{}")
    return Response({"items": msgspec.Raw(answer)})


@get(
    "/flight-sheets/{ref:str}",
    summary="One Flight Sheet (`id@version`) exactly as published, with its sha256",
    guards=[require_key],
)
async def get_flight_sheet(ref: str) -> Response[Any]:
    if not _SHEET_REF.fullmatch(ref):
        raise problem(404, f"no flight sheet {ref[:80]!r}: address one as id@version, e.g. cre_memo_dscr_ltv_v1@1.0.0")
    reply = await _ask(REFEREE_FLIGHT_SHEET, msgspec.json.encode({"ref": ref, "full": True}))
    answer = msgspec.json.decode(reply, type=_SheetAnswer)
    if not answer.found or not answer.sheet:
        raise problem(404, answer.error or f"no flight sheet {ref}")
    doc = msgspec.structs.asdict(answer)
    for key in ("found", "error"):
        del doc[key]
    return Response(
        doc,  # `sheet` stays msgspec.Raw: the file's bytes as published, whitespace and all
        headers={"ETag": f'"{answer.sha256}"', "Cache-Control": "private, max-age=86400, immutable"},
    )


class _SheetAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The referee's answer (defendable_referee.app.SheetAnswer), the sheet kept as raw bytes."""

    found: bool
    id: str = ""
    version: str = ""
    lane: str = ""
    title: str = ""
    sha256: str = ""
    error: str = ""
    sheet: msgspec.Raw = msgspec.Raw()  # msgspec decodes Raw only alone, not in a union with None
