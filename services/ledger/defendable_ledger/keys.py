"""Ed25519 signing of receipt hashes (`cryptography`). Signatures are envelope, never hashed.

Key id: first 16 hex of SHA-256 over the raw public key. One key signs at a time; every
key ever used is published (ledger.public_keys, GET /.well-known/defendable-keys.json),
so a rotation leaves earlier receipts verifiable. The same key signs each org's checkpoints
(tlog.LogKeys), under that org's log origin as its note key name.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from defendable_canonical.model import Signature
from defendable_canonical.signature import b64url, key_id


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


# Ed25519 signing is the largest CPU cost of a mint (~55 µs here) and `cryptography`
# releases the GIL while it signs: two threads sign a batch in about half the time.
SIGNING_THREADS = 2
_PARALLEL_FROM = 64  # below this, handing work to threads costs more than it saves


class Signer:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._key = private
        self._pool: ThreadPoolExecutor | None = None
        self.public = raw_public(private)
        self.kid = key_id(self.public)
        self._public_b64 = b64url(self.public)

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._key

    def seed(self) -> bytes:
        return raw_private(self._key)

    def __call__(self, message: bytes) -> Signature:
        return Signature(kid=self.kid, public_key=self._public_b64, sig=b64url(self._key.sign(message)))

    def sign_all(self, messages: Sequence[bytes]) -> list[Signature]:
        """`[self(m) for m in messages]`, in order, spread over threads for a large batch."""
        if len(messages) < _PARALLEL_FROM:
            return [self(m) for m in messages]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SIGNING_THREADS, thread_name_prefix="sign")
        step = -(-len(messages) // SIGNING_THREADS)
        chunks = [messages[i : i + step] for i in range(0, len(messages), step)]
        signed: list[Signature] = []
        for part in self._pool.map(self._sign_chunk, chunks):
            signed += part
        return signed

    def _sign_chunk(self, messages: Sequence[bytes]) -> list[Signature]:
        return [self(m) for m in messages]
