"""Ed25519 verification of receipt signatures (pure computation via `cryptography`).

A signature signs the 32 raw bytes of the receipt hash. The key id is the first
16 hex of SHA-256 over the raw public key, so a signature whose key does not
match its kid is refused before any curve maths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .digest import digest_hex
from .model import Signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_strict(text: str) -> bytes:
    """base64url without padding, canonical only: ``b64url(result) == text``, so a key or a
    signature has one spelling and a changed character never decodes to the same bytes."""
    try:
        raw = b64url_decode(text)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64url: {text[:40]!r}") from exc
    if b64url(raw) != text:
        raise ValueError(f"not canonical base64url: {text[:40]!r}")
    return raw


def key_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def verify_signature(signature: Signature, receipt_hash: str) -> str | None:
    """None when valid, else the reason."""
    try:
        public = b64url_strict(signature.public_key)
        sig = b64url_strict(signature.sig)
        message = bytes.fromhex(digest_hex(receipt_hash))
    except ValueError as exc:
        return f"malformed signature: {exc}"
    if key_id(public) != signature.kid:
        return f"key id {signature.kid} does not match the public key (expected {key_id(public)})"
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, message)
    except Exception:
        return f"Ed25519 signature by {signature.kid} does not verify for {receipt_hash}"
    return None
