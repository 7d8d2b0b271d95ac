"""Pure receipt builders: body plus chain fields in, canonical bytes and their hash out (DESIGN.md §4).

Hash exactly the bytes you store: `payload_bytes` canonicalises once (RFC 8785), the ledger
stores those bytes, and `receipt_hash` / `chain.verify_chain` hash them again, never a re-encoding.
"""

from __future__ import annotations

import msgspec

from .digest import Digest, sha256_digest
from .jcs import CanonicalError, canonical_struct
from .model import ReceiptBody, ReceiptPayload

_payload_decoder: msgspec.json.Decoder[ReceiptPayload] = msgspec.json.Decoder(ReceiptPayload)


def build_payload(body: ReceiptBody, seq: int, parent_hash: str, minted_at: str) -> ReceiptPayload:
    """The hashed payload: every body field plus the chain fields the ledger decides."""
    return ReceiptPayload(**msgspec.structs.asdict(body), seq=seq, parent_hash=parent_hash, minted_at=minted_at)


def payload_bytes(payload: ReceiptPayload) -> bytes:
    """RFC 8785 canonical bytes of the payload; these are what is hashed, stored and signed."""
    return canonical_struct(payload)


def receipt_hash(payload_bytes: bytes) -> Digest:
    """``sha256:<hex>`` of exactly the given bytes (DESIGN.md §4)."""
    return sha256_digest(payload_bytes)


def decode_payload(data: bytes) -> ReceiptPayload:
    """Typed view of stored payload bytes; raises CanonicalError when they are not a receipt payload."""
    try:
        return _payload_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CanonicalError(f"not a receipt payload: {exc}") from None
