"""Verify a receipt document (a `GET /receipts/{hash}` or `GET /share/{token}` body) offline.

Each check reports PASS, FAIL or SKIPPED (not applicable — never a silent
pass). The hash is recomputed over the RFC 8785 form of the *parsed* payload,
so a document that was pretty-printed or re-saved still verifies. A receipt of
any kind (eval, cook, incident, unlock) verifies the same way; its `schema`
must name one of them, and the payload must be what that schema says.

Given a `verify_transparency.Trust` (the ledger's key set, a witness policy), it also checks
that the signing key is a published one and, when the document carries a `transparency`
member, the receipt's inclusion in its org's witnessed log (`verify_transparency.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .chain import verify_links
from .digest import GENESIS_HASH, sha256_digest
from .jcs import CanonicalError, canonicalize
from .model import ChainLink, Signature
from .receipt import PAYLOAD_TYPES
from .signature import verify_signature

if TYPE_CHECKING:
    from .redaction import Disclosure
    from .verify_transparency import Trust

Outcome = Literal["PASS", "FAIL", "SKIPPED"]


class Check(msgspec.Struct, frozen=True):
    name: str
    outcome: Outcome
    detail: str


class _StrictSignature(Signature, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The signature envelope as the ledger writes it: a renamed member is not ignored."""


def verify_document(doc: Any, trust: Trust | None = None, disclosures: list[Disclosure] | None = None) -> list[Check]:
    """Every check of the document. Without ``trust`` the signature is checked against the key
    it carries only, and a proof (if any) against that key, with no witness policy.
    ``disclosures`` reveal redacted fields (verify_redaction.py)."""
    from .verify_redaction import redacted_paths, redaction_check, reveal_check  # imports this module
    from .verify_transparency import NO_TRUST, signing_key_check, transparency_checks  # imports this module

    if not isinstance(doc, dict) or "payload" not in doc or "receipt_hash" not in doc:
        return [Check("document", "FAIL", "not a receipt document: needs `receipt_hash` and `payload`")]
    checks, digest = _receipt_checks(doc)
    if digest is None:
        return checks
    trust = trust or NO_TRUST
    at = next((i + 1 for i, c in enumerate(checks) if c.name == "signature (Ed25519)"), len(checks))
    checks.insert(at, signing_key_check(doc.get("signature"), trust))
    payload = doc["payload"]
    checks.append(redaction_check(payload))
    if disclosures is not None or redacted_paths(payload):
        checks.append(reveal_check(payload, disclosures))
    return checks + transparency_checks(doc, digest, trust)


def _receipt_checks(doc: dict[str, Any]) -> tuple[list[Check], str | None]:
    """The receipt's own checks, and the digest of its canonical payload (None: it has none)."""
    claimed = str(doc["receipt_hash"])
    payload = doc["payload"]
    checks: list[Check] = []

    # 1. the hash, over the canonical form of the payload
    try:
        digest = sha256_digest(canonicalize(payload))
    except CanonicalError as exc:
        return [Check("canonical form (RFC 8785)", "FAIL", str(exc))], None
    checks.append(Check("canonical form (RFC 8785)", "PASS", "payload canonicalises"))
    if digest == claimed:
        checks.append(Check("receipt hash", "PASS", f"SHA-256 of the canonical payload is {claimed}"))
    else:
        checks.append(Check("receipt hash", "FAIL", f"payload hashes to {digest}, document claims {claimed}"))

    # 2. the payload is a receipt of the kind its schema names
    checks.append(_schema_check(payload))

    # 3. the signature over the hash
    raw_sig = doc.get("signature")
    if raw_sig is None:
        checks.append(Check("signature (Ed25519)", "FAIL", "no signature: every receipt is signed"))
    else:
        try:
            signature = msgspec.convert(raw_sig, _StrictSignature)
        except msgspec.ValidationError as exc:
            checks.append(Check("signature (Ed25519)", "FAIL", f"malformed signature: {exc}"))
        else:
            problem = verify_signature(signature, claimed)
            checks.append(
                Check("signature (Ed25519)", "FAIL", problem)
                if problem
                else Check("signature (Ed25519)", "PASS", f"signed by key {signature.kid}")
            )

    # 4. the chain position the payload states, against the links (share documents carry them)
    seq = payload.get("seq") if isinstance(payload, dict) else None
    parent = payload.get("parent_hash") if isinstance(payload, dict) else None
    raw_links = doc.get("links")
    if raw_links is None or isinstance(raw_links, dict):  # a GET /receipts body's `links` are its URLs
        checks.append(Check("chain links", "SKIPPED", "this document carries no chain links"))
        if seq == 1 and parent != GENESIS_HASH:
            checks.append(Check("genesis", "FAIL", f"seq 1 must have parent {GENESIS_HASH}"))
        return checks, digest
    try:
        links = msgspec.convert(raw_links, list[ChainLink])
    except msgspec.ValidationError as exc:
        checks.append(Check("chain links", "FAIL", f"malformed links: {exc}"))
        return checks, digest
    bad = verify_links(links, claimed)
    if bad is not None:
        checks.append(Check("chain links", "FAIL", bad.reason))
    elif not links or links[-1].seq != seq or links[-1].parent_hash != parent:
        checks.append(Check("chain links", "FAIL", f"the last link does not match the payload's seq {seq} and parent"))
    else:
        checks.append(Check("chain links", "PASS", f"{len(links)} links from genesis to seq {seq}"))
    return checks, digest


def _schema_check(payload: Any) -> Check:
    schema = payload.get("schema") if isinstance(payload, dict) else None
    kind = PAYLOAD_TYPES.get(schema) if isinstance(schema, str) else None
    if kind is None:
        shown = "no schema" if schema is None else f"schema {str(schema)[:100]!r}"
        return Check("receipt schema", "FAIL", f"unknown receipt schema: the payload has {shown}")
    try:
        msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        return Check("receipt schema", "FAIL", f"the payload is not a {schema} receipt: {exc}")
    return Check("receipt schema", "PASS", f"a {schema} receipt")


def all_passed(checks: list[Check]) -> bool:
    return all(c.outcome != "FAIL" for c in checks) and any(c.outcome == "PASS" for c in checks)
