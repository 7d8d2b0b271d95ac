"""`GET /receipts/{hash}/disclosures`: what reveals a receipt's redacted fields (docs/redaction.md).

Only the org's approvers (and admins) read them: a disclosure is the plain value and its salt.
The body is exactly what `defendable verify --reveal FILE` reads; hand over only the entries of
the fields you mean to reveal (`?path=` selects them), since each salt opens its one field.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from defendable_canonical.redaction import Disclosure, is_path

from .disclosure_store import run_disclosures
from .routes import holder, own_receipt, principal_of, problem, require_key

MAX_PATHS = 100


class Disclosures(msgspec.Struct, frozen=True):
    receipt_hash: str
    disclosures: list[Disclosure]


@get(
    "/receipts/{receipt_hash:str}/disclosures",
    summary="The value and salt of each redacted field of a receipt (approvers only)",
    guards=[require_key],
    opt={"role": "approver"},
)
async def receipt_disclosures(request: Request[Any, Any, Any], receipt_hash: str) -> Disclosures:
    principal = principal_of(request)
    row = await own_receipt(principal, receipt_hash)
    paths = request.query_params.getall("path", [])
    if len(paths) > MAX_PATHS or any(not is_path(p) for p in paths):
        bad = next((p for p in paths if not is_path(p)), "")
        raise problem(400, f"path={bad[:100]!r} is not a redactable field path" if bad else "too many paths")
    found = await run_disclosures(holder.res.pool, principal.org_id, row["run_id"])
    if paths:
        unknown = sorted(set(paths).difference(d.path for d in found))
        if unknown:
            raise problem(404, f"{unknown[0]} is not a redacted field of this receipt")
        found = [d for d in found if d.path in paths]
    return Disclosures(receipt_hash=receipt_hash, disclosures=found)


REVEAL_ROUTES = [receipt_disclosures]
