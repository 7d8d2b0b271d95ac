"""Pure receipt builders: body plus chain fields in, canonical bytes and their hash out (DESIGN.md §4).

Hash exactly the bytes you store: `payload_bytes` canonicalises once (RFC 8785), the ledger
stores those bytes, and `receipt_hash` / `chain.verify_chain` hash them again, never a re-encoding.

Every kind of receipt shares an org's one chain: eval and lane receipts (`ReceiptPayload`),
cook receipts, incident receipts and unlock receipts. Each payload names its kind in its
`schema` field, and `PAYLOAD_TYPES` is the one table from a schema to the payload type that
reads it; `decode_any_payload` decodes stored bytes by that table, and `build_any_payload`
builds the payload of whichever body it is given.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .cook import CookReceiptBody, CookReceiptPayload, build_cook_payload
from .digest import Digest, sha256_digest
from .incident import (
    UNLOCK_RECEIPT_SCHEMA,
    IncidentReceiptBody,
    IncidentReceiptPayload,
    UnlockReceiptPayload,
    UnlockRecord,
    build_incident_payload,
    build_unlock_payload,
)
from .jcs import CanonicalError, canonical_struct
from .model import (
    COOK_RECEIPT_SCHEMA,
    EVAL_RECEIPT_SCHEMA,
    INCIDENT_RECEIPT_SCHEMA,
    RECEIPT_SCHEMA,
    ReceiptBody,
    ReceiptPayload,
)

AnyReceiptBody = ReceiptBody | CookReceiptBody | IncidentReceiptBody | UnlockRecord
AnyReceiptPayload = ReceiptPayload | CookReceiptPayload | IncidentReceiptPayload | UnlockReceiptPayload

# Schema -> the payload type that reads it. A schema not listed here is no receipt of ours.
PAYLOAD_TYPES: Final[dict[str, type[AnyReceiptPayload]]] = {
    EVAL_RECEIPT_SCHEMA: ReceiptPayload,
    RECEIPT_SCHEMA: ReceiptPayload,
    COOK_RECEIPT_SCHEMA: CookReceiptPayload,
    INCIDENT_RECEIPT_SCHEMA: IncidentReceiptPayload,
    UNLOCK_RECEIPT_SCHEMA: UnlockReceiptPayload,
}
# The schemas `ReceiptPayload` reads: nearly every receipt, so decoders try it first.
EVAL_SCHEMAS: Final = frozenset(schema for schema, kind in PAYLOAD_TYPES.items() if kind is ReceiptPayload)


def build_payload(body: ReceiptBody, seq: int, parent_hash: str, minted_at: str) -> ReceiptPayload:
    """The hashed payload: every body field plus the chain fields the ledger decides.

    An absent `execution_trail` stays UNSET (asdict copies it as such), and encoding leaves
    UNSET out: a receipt without a trail has exactly the bytes it had before trails existed.
    """
    return ReceiptPayload(**msgspec.structs.asdict(body), seq=seq, parent_hash=parent_hash, minted_at=minted_at)


def build_any_payload(body: AnyReceiptBody, seq: int, parent_hash: str, minted_at: str) -> AnyReceiptPayload:
    """`build_payload` for a body of any receipt kind: the body's fields plus the chain fields."""
    match body:
        case ReceiptBody():
            return build_payload(body, seq, parent_hash, minted_at)
        case CookReceiptBody():
            return build_cook_payload(body, seq, parent_hash, minted_at)
        case IncidentReceiptBody():
            return build_incident_payload(body, seq, parent_hash, minted_at)
        case UnlockRecord():
            return build_unlock_payload(body, seq, parent_hash, minted_at)


_BUILDS: Final[dict[type[AnyReceiptBody], type[AnyReceiptPayload]]] = {
    ReceiptBody: ReceiptPayload,
    CookReceiptBody: CookReceiptPayload,
    IncidentReceiptBody: IncidentReceiptPayload,
    UnlockRecord: UnlockReceiptPayload,
}


def schema_problem(body: AnyReceiptBody) -> str | None:
    """Why a body's `schema` does not name the payload its kind builds (a verifier would then
    read the receipt as another kind, or not at all); None when it does."""
    builds = _BUILDS[type(body)]
    if PAYLOAD_TYPES.get(body.schema) is builds:
        return None
    expected = " or ".join(repr(schema) for schema, kind in PAYLOAD_TYPES.items() if kind is builds)
    return f"a {type(body).__name__} must have schema {expected}, not {body.schema[:100]!r}"


def payload_bytes(payload: AnyReceiptPayload) -> bytes:
    """RFC 8785 canonical bytes of the payload; these are what is hashed, stored and signed."""
    return canonical_struct(payload)


def receipt_hash(payload_bytes: bytes) -> Digest:
    """``sha256:<hex>`` of exactly the given bytes (DESIGN.md §4)."""
    return sha256_digest(payload_bytes)


_payload_decoder: msgspec.json.Decoder[ReceiptPayload] = msgspec.json.Decoder(ReceiptPayload)


def decode_payload(data: bytes) -> ReceiptPayload:
    """Typed view of stored payload bytes; raises CanonicalError when they are not a receipt payload."""
    try:
        return _payload_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CanonicalError(f"not a receipt payload: {exc}") from None


class _Schema(msgspec.Struct, frozen=True):
    """Only the `schema` member; msgspec skips the rest without building it."""

    schema: str


_schema_decoder = msgspec.json.Decoder(_Schema)
_decoders: Final[dict[str, msgspec.json.Decoder[AnyReceiptPayload]]] = {
    schema: msgspec.json.Decoder(kind) for schema, kind in PAYLOAD_TYPES.items()
}


def decode_any_payload(data: bytes) -> AnyReceiptPayload:
    """Stored payload bytes as the type their `schema` names (`PAYLOAD_TYPES`).

    Raises CanonicalError when the bytes are not a JSON object with a string `schema`, when the
    schema is not one of ours (the message names it), or when the payload is not what its
    schema says. Plan: 1. read the bytes as an eval receipt, the common case, in one pass;
    2. otherwise read only the schema, and 3. the bytes as the type it names.
    """
    # 1.
    try:
        payload = _payload_decoder.decode(data)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError as exc:
        raise CanonicalError(f"payload is not a receipt payload: {exc}") from None
    else:
        if payload.schema in EVAL_SCHEMAS:
            return payload
    # 2.
    try:
        schema = _schema_decoder.decode(data).schema
    except msgspec.DecodeError as exc:  # ValidationError included
        raise CanonicalError(f"payload is not a receipt payload: {exc}") from None
    decoder = _decoders.get(schema)
    if decoder is None:
        raise CanonicalError(f"unknown receipt schema {schema[:100]!r}")
    # 3.
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise CanonicalError(f"payload is not a {schema} payload: {exc}") from None
