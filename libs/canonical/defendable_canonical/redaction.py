"""Redacted receipt fields: salted commitments in place of plain values (docs/redaction.md).

A redacted field's value in the hashed payload is ``hmac-sha256:<hex>``, the HMAC-SHA256 of the
plain value's UTF-8 bytes keyed by a 32-byte random salt of that one field. The payload's
`redacted` member lists the paths that hold commitments, so a value that merely looks like one
is never read as redacted. The org keeps each salt; revealing a field is handing over its
value and salt (a `Disclosure`), which anyone checks against the commitment, and the receipt
and its hash stay as they were. The salt is what hides the value: a short, guessable value
(an email address) cannot be found by hashing candidates without it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from typing import Final, Literal, get_args

import msgspec

from .model import ReceiptBody

# What an org may choose to redact; `Disclosure.path` names one instance ("evidence[2].name").
RedactableField = Literal["evidence.name", "approval.note", "approval.approver"]
REDACTABLE_FIELDS: Final[tuple[str, ...]] = get_args(RedactableField)

PREFIX: Final = "hmac-sha256:"
SALT_BYTES: Final = 32
MAX_DISCLOSURES: Final = 10_000  # a receipt names at most this many evidence files, in practice far fewer
_COMMITMENT = re.compile(r"hmac-sha256:[0-9a-f]{64}")
_SALT = re.compile(r"[0-9a-f]{64}")
_PATH = re.compile(r"evidence\[(0|[1-9][0-9]{0,4})\]\.name|approval\.note|approval\.approver")


class Disclosure(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What reveals one redacted field: its path in the payload, the plain value and the salt (hex)."""

    path: str
    value: str
    salt: str


def evidence_name_path(index: int) -> str:
    """The path of the name of the receipt's `index`-th evidence file."""
    return f"evidence[{index}].name"


def commit(value: str, salt: bytes) -> str:
    """The commitment that stands in the payload for `value`."""
    return PREFIX + hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def is_commitment(text: object) -> bool:
    return isinstance(text, str) and _COMMITMENT.fullmatch(text) is not None


def is_path(text: str) -> bool:
    return _PATH.fullmatch(text) is not None


def opens(disclosure: Disclosure, commitment: object) -> bool:
    """True when the disclosure's value and salt give exactly `commitment`; constant-time compare."""
    if _SALT.fullmatch(disclosure.salt) is None or not is_commitment(commitment):
        return False
    expected = commit(disclosure.value, bytes.fromhex(disclosure.salt))
    return hmac.compare_digest(expected, str(commitment))


def redact_body(body: ReceiptBody, fields: Sequence[str]) -> tuple[ReceiptBody, list[Disclosure]]:
    """The body with each chosen field a commitment, and what reveals each one.

    Every instance is redacted, an empty note included: a commitment hides whether there was
    a note at all. A body with nothing to redact comes back unchanged, `redacted` unset, so it
    hashes exactly as before redaction existed.
    """
    chosen = set(fields)
    unknown = chosen.difference(REDACTABLE_FIELDS)
    if unknown:
        raise ValueError(f"not a redactable field: {sorted(unknown)[0][:100]!r}")
    if not chosen:
        return body, []
    disclosures: list[Disclosure] = []

    def hide(path: str, value: str) -> str:
        salt = new_salt()
        disclosures.append(Disclosure(path=path, value=value, salt=salt.hex()))
        return commit(value, salt)

    evidence = body.evidence
    if "evidence.name" in chosen:
        evidence = [
            msgspec.structs.replace(ref, name=hide(evidence_name_path(i), ref.name)) for i, ref in enumerate(evidence)
        ]
    approval = body.approval
    if "approval.approver" in chosen:
        approval = msgspec.structs.replace(approval, approver=hide("approval.approver", approval.approver))
    if "approval.note" in chosen:
        approval = msgspec.structs.replace(approval, note=hide("approval.note", approval.note))
    if not disclosures:  # evidence names chosen, but the run has no evidence
        return body, []
    redacted = body.redacted if isinstance(body.redacted, list) else []
    paths = sorted({*redacted, *(d.path for d in disclosures)})
    return msgspec.structs.replace(body, evidence=evidence, approval=approval, redacted=paths), disclosures


def value_at(payload: object, path: str) -> object:
    """The member a redaction path names in a decoded payload; None when there is none."""
    if not isinstance(payload, dict):
        return None
    if path.startswith("evidence["):
        evidence = payload.get("evidence")
        index = int(path[len("evidence[") : path.index("]")])
        ref = evidence[index] if isinstance(evidence, list) and index < len(evidence) else None
        return ref.get("name") if isinstance(ref, dict) else None
    approval = payload.get("approval")
    return approval.get(path.removeprefix("approval.")) if isinstance(approval, dict) else None
