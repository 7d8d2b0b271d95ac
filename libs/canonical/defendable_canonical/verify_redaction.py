"""The verifier's lines about redacted fields (redaction.py): which are hidden, and which a
disclosure reveals. `verification.verify_document` adds them after the schema check."""

from __future__ import annotations

from typing import Any

from .redaction import Disclosure, is_commitment, is_path, opens, value_at
from .verification import Check

REDACTED = "redacted fields"
REVEALED = "revealed fields"


def redacted_paths(payload: Any) -> list[str] | None:
    """The payload's `redacted` list; [] when it has none; None when it is malformed."""
    listed = payload.get("redacted", []) if isinstance(payload, dict) else []
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        return None
    return listed


def redaction_check(payload: Any) -> Check:
    """PASS names each redacted field, once every listed path holds a well-formed commitment."""
    paths = redacted_paths(payload)
    if paths is None:
        return Check(REDACTED, "FAIL", "`redacted` is not a list of field paths")
    if not paths:
        return Check(REDACTED, "SKIPPED", "no field is redacted: every value is shown as it was")
    if len(set(paths)) != len(paths):
        return Check(REDACTED, "FAIL", "`redacted` names a field twice")
    for path in paths:
        if not is_path(path):
            return Check(REDACTED, "FAIL", f"{path[:100]!r} is not a redactable field")
        if not is_commitment(value_at(payload, path)):
            return Check(REDACTED, "FAIL", f"{path} is listed as redacted but holds no hmac-sha256 commitment")
    return Check(REDACTED, "PASS", f"{len(paths)} hidden as salted commitments: {', '.join(paths)}")


def reveal_check(payload: Any, disclosures: list[Disclosure] | None) -> Check:
    """Each disclosure must open the commitment at its path; SKIPPED when none was given."""
    if disclosures is None:
        return Check(REVEALED, "SKIPPED", "no disclosures given (--reveal FILE reveals redacted fields)")
    paths = set(redacted_paths(payload) or [])
    shown: list[str] = []
    for d in disclosures:
        if d.path not in paths:
            return Check(REVEALED, "FAIL", f"{d.path[:100]} is not a redacted field of this receipt")
        if not opens(d, value_at(payload, d.path)):
            return Check(REVEALED, "FAIL", f"the disclosure of {d.path} does not open its commitment")
        shown.append(f"{d.path} = {d.value[:200]!r}")
    if not shown:
        return Check(REVEALED, "SKIPPED", "the disclosures file reveals no field")
    return Check(REVEALED, "PASS", "; ".join(shown))
