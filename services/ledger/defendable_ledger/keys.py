"""Ed25519 signing of receipt hashes (`cryptography`). Signatures are envelope, never hashed.

Key id: first 16 hex of SHA-256 over the raw public key. Issue #5 adds rotation,
published key sets and checkpoints; this is the single active key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from defendable_canonical.model import Signature
from defendable_canonical.signature import b64url, key_id


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._key = private
        self.public = raw_public(private)
        self.kid = key_id(self.public)
        self._public_b64 = b64url(self.public)

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def seed(self) -> bytes:
        return raw_private(self._key)

    def __call__(self, message: bytes) -> Signature:
        return Signature(kid=self.kid, public_key=self._public_b64, sig=b64url(self._key.sign(message)))
