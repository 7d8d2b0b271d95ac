"""`sha256:<hex>` digests, the one hash format on the wire and in receipts."""

from __future__ import annotations

import hashlib
import re
from typing import NewType

Digest = NewType("Digest", str)

PREFIX = "sha256:"
GENESIS_HASH = Digest(PREFIX + "0" * 64)
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def sha256_digest(data: bytes) -> Digest:
    return Digest(PREFIX + hashlib.sha256(data).hexdigest())


def is_digest(text: str) -> bool:
    return _DIGEST_RE.fullmatch(text) is not None


def digest_hex(digest: str) -> str:
    """The 64 hex characters of a digest; raises ValueError for anything else."""
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest[:80]!r}")
    return digest[len(PREFIX) :]
