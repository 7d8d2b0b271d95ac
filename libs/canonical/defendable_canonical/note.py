"""C2SP signed-note (c2sp.org/signed-note): a text signed by one or more named keys.

A note is its UTF-8 text (ending in a newline), a blank line, then one or more lines
``— <key name> <base64(4-byte key id || signature)>``. Parsing is strict: UTF-8 only, no
control characters but newline, canonical base64, bounded size and signature count, and
(stricter than the spec, which allows it) a text whose last line is empty is refused, so a
note has exactly one reading of where its signatures begin. Verification follows the spec's
rules: signatures by unknown keys are ignored, every signature by a known key must verify,
and at least one must. The formats are byte-compatible with golang.org/x/mod/sumdb/note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar, Protocol, Self

import msgspec
from cryptography.exceptions import InvalidSignature as _BadSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01  # signed-note §Signature types: Ed25519 over the note text
MAX_NOTE_BYTES = 256 * 1024  # 100 signatures of the largest (post-quantum, ~5 kB) kind fit
MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note; the spec asks for at least 16
MAX_KEY_NAME_BYTES = 255  # tlog-cosignature's ML-DSA message holds a name in one length byte
MAX_SIGNATURE_BYTES = 8 * 1024

_SIG_PREFIX = "— "  # U+2014 EM DASH, U+0020 SPACE
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_NOT_IN_NAME = re.compile(r"[\s+\x00-\x1f]")  # \s in a str pattern is str.isspace(): every Unicode space


class NoteError(ValueError):
    """A note, key or signature that is malformed or does not verify."""


class UnverifiedNote(NoteError):
    """A well-formed note that no known key has signed."""


class InvalidSignature(NoteError):
    """A signature by a known key that does not verify: the whole note is refused."""


class NoteSignature(msgspec.Struct, frozen=True, gc=False):
    """One signature line: the key's name and 32-bit id, and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise NoteError(f"key id {self.key_id} of {self.name[:80]!r} is not a 32-bit value")

    def line(self) -> str:
        blob = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


class Note(msgspec.Struct, frozen=True, gc=False):
    """A parsed note: its text (with the final newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]


class VerifiedNote(msgspec.Struct, frozen=True, gc=False):
    """A note whose signatures by known keys all verified (``verified``, at least one)."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


class Verifier(Protocol):
    """A known key: verifies signatures that carry its name and key id."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool: ...


class Signer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes: ...


class VerifierKey(msgspec.Struct, frozen=True, gc=False):
    """A decoded vkey ``<name>+<hex key id>+<base64(type || public key)>``."""

    name: str
    key_id: int
    key_type: int
    public_key: bytes


# ---------------------------------------------------------------- names, ids, base64


def is_valid_key_name(name: str) -> bool:
    """signed-note §Format: non-empty, no Unicode spaces, no plus (and, here, no control characters)."""
    return 0 < len(name.encode()) <= MAX_KEY_NAME_BYTES and _NOT_IN_NAME.search(name) is None


def key_id(name: str, key_type: int, public_key: bytes) -> int:
    """signed-note §Signatures: SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def b64decode_strict(text: str) -> bytes:
    """RFC 4648 §4 base64, canonical only: padded, no stray characters or non-zero pad bits.

    Canonical matters: otherwise a changed last character can decode to the same bytes, and a
    one-byte change to a stored note would go unnoticed.
    """
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: not ASCII
        raise NoteError(f"not base64: {text[:40]!r}") from exc
    if binascii.b2a_base64(raw, newline=False) != text.encode():
        raise NoteError(f"not canonical base64: {text[:40]!r}")
    return raw


# ---------------------------------------------------------------- parse and format


def parse_note(msg: bytes) -> Note:
    """signed-note §Format, strictly; raises NoteError naming the first fault."""
    if len(msg) > MAX_NOTE_BYTES:
        raise NoteError(f"note is {len(msg)} bytes, more than {MAX_NOTE_BYTES}")
    try:
        whole = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"note is not UTF-8 at byte {exc.start}") from exc
    if (bad := _CONTROL.search(whole)) is not None:
        raise NoteError(f"note has control character {bad.group()!r} at offset {bad.start()}")
    split = whole.rfind("\n\n")  # the text ends at the last empty line
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = whole[: split + 1], whole[split + 2 :]
    _check_text(text)
    if not block.endswith("\n"):
        raise NoteError("note does not end with a signature line and a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    return Note(text, tuple(_parse_signature_line(i + 1, line) for i, line in enumerate(lines)))


def format_note(note: Note) -> bytes:
    """The note's bytes; refuses anything `parse_note` would not read back identically."""
    msg = (note.text + "\n" + "".join(s.line() for s in note.signatures)).encode()
    if parse_note(msg) != note:
        raise NoteError("note does not survive a round trip (bad key name or empty signature?)")
    return msg


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text does not end with a newline")
    if text == "\n" or text.endswith("\n\n"):
        raise NoteError("note text ends with an empty line")


def _parse_signature_line(number: int, line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"signature line {number} does not start with an em dash and a space")
    name, space, blob64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not space or not is_valid_key_name(name):
        raise NoteError(f"signature line {number} has no valid key name")
    try:
        blob = b64decode_strict(blob64)
    except NoteError as exc:
        raise NoteError(f"signature line {number}: {exc}") from exc
    if not 5 <= len(blob) <= 4 + MAX_SIGNATURE_BYTES:
        raise NoteError(f"signature line {number} holds {len(blob)} bytes, not 5..{4 + MAX_SIGNATURE_BYTES}")
    return NoteSignature(name, int.from_bytes(blob[:4], "big"), blob[4:])


# ---------------------------------------------------------------- sign and verify


def sign_note(text: str, signers: Sequence[Signer], existing: Sequence[NoteSignature] = ()) -> bytes:
    """A note of ``text`` signed by ``signers``, after the ``existing`` signatures they do not replace."""
    _check_text(text)
    if (bad := _CONTROL.search(text)) is not None:
        raise NoteError(f"note text has control character {bad.group()!r} at offset {bad.start()}")
    if not signers:
        raise NoteError("a note needs at least one signer")
    msg = text.encode()
    new = [NoteSignature(s.name, s.key_id, s.sign(msg)) for s in signers]
    replaced = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    return format_note(Note(text, (*kept, *new)))


def verify_note(note: Note, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """signed-note §Signatures: ignore unknown keys, verify every signature by a known key.

    Raises InvalidSignature if one fails, UnverifiedNote if no known key signed; a key
    (name and id) given twice is ambiguous and refused.
    """
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        if (verifier.name, verifier.key_id) in known:
            raise NoteError(f"ambiguous key {verifier.name}+{verifier.key_id:08x}: given twice")
        known[(verifier.name, verifier.key_id)] = verifier
    text = note.text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for sig in note.signatures:
        v = known.get((sig.name, sig.key_id))
        if v is None:
            unverified.append(sig)
        elif v.verify(text, sig.signature):
            verified.append(sig)
        else:
            raise InvalidSignature(f"invalid signature for key {sig.name}+{sig.key_id:08x}")
    if not verified:
        raise UnverifiedNote(f"none of the note's {len(note.signatures)} signatures is by a known key")
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


def open_note(msg: bytes, verifiers: Iterable[Verifier]) -> VerifiedNote:
    """Parse and verify, as golang.org/x/mod/sumdb/note's Open."""
    return verify_note(parse_note(msg), verifiers)


# ---------------------------------------------------------------- keys


def parse_vkey(vkey: str) -> VerifierKey:
    """A vkey ``<name>+<hex key id>+<base64(type || public key)>``; the id must match the key."""
    name, plus1, rest = vkey.partition("+")
    id_hex, plus2, key64 = rest.partition("+")
    if not (plus1 and plus2 and is_valid_key_name(name) and _KEY_ID_HEX.fullmatch(id_hex)):
        raise NoteError(f"malformed verifier key {vkey[:80]!r}")
    key = b64decode_strict(key64)
    if not key:
        raise NoteError(f"verifier key {name}+{id_hex} has no key material")
    expected = key_id(name, key[0], key[1:])
    if int(id_hex, 16) != expected:
        raise NoteError(f"verifier key {name}+{id_hex} does not match its key (id {expected:08x})")
    return VerifierKey(name, expected, key[0], key[1:])


def format_vkey(name: str, key_type: int, public_key: bytes) -> str:
    if not is_valid_key_name(name):
        raise NoteError(f"invalid key name {name[:80]!r}")
    material = base64.b64encode(bytes([key_type]) + public_key).decode()
    return f"{name}+{key_id(name, key_type, public_key):08x}+{material}"


class _NamedKey:
    """What every note key shows: its name, its 4-byte key id and its raw public key."""

    __slots__ = ()
    _name: str
    _key_id: int
    _public: bytes

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public


class Ed25519Verifier(_NamedKey):
    """A known Ed25519 key of signature type ``key_type`` (0x01: signs the note text itself)."""

    key_type: ClassVar[int] = ED25519
    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise NoteError(f"invalid key name {name[:80]!r}")
        if len(public_key) != 32:
            raise NoteError(f"Ed25519 public key for {name} is {len(public_key)} bytes, not 32")
        self._name, self._public = name, public_key
        self._key_id = key_id(name, self.key_type, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        parsed = parse_vkey(vkey)
        if parsed.key_type != cls.key_type:
            raise NoteError(f"verifier key {parsed.name} has type {parsed.key_type:#04x}, not {cls.key_type:#04x}")
        return cls(parsed.name, parsed.public_key)

    @property
    def vkey(self) -> str:
        return format_vkey(self._name, self.key_type, self._public)

    def verify(self, text: bytes, signature: bytes) -> bool:
        return self._verify_ed25519(text, signature)

    def _verify_ed25519(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 64:
            return False
        try:
            self._key.verify(signature, message)
        except _BadSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class Ed25519SigningKey(_NamedKey):
    """An Ed25519 private key under a note key name; its key id is of type ``key_type``."""

    key_type: ClassVar[int] = ED25519
    __slots__ = ("_key", "_key_id", "_name", "_public")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not is_valid_key_name(name):
            raise NoteError(f"invalid key name {name[:80]!r}")
        self._name, self._key = name, private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key_id = key_id(name, self.key_type, self._public)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Self:
        if len(seed) != 32:
            raise NoteError(f"Ed25519 seed for {name} is {len(seed)} bytes, not 32")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, key id {self._key_id:08x})"


class Ed25519Signer(Ed25519SigningKey):
    """Signs note texts with an Ed25519 key (signature type 0x01)."""

    __slots__ = ()

    @classmethod
    def from_skey(cls, skey: str) -> Self:
        """golang.org/x/mod/sumdb/note's signer key ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>``."""
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _KEY_ID_HEX.fullmatch(parts[3]):
            raise NoteError("malformed signer key")
        key = b64decode_strict(parts[4])
        if len(key) != 33 or key[0] != ED25519:
            raise NoteError(f"signer key {parts[2]} is not an Ed25519 note key")
        signer = cls.from_seed(parts[2], key[1:])
        if signer.key_id != int(parts[3], 16):
            raise NoteError(f"signer key {parts[2]}+{parts[3]} does not match its key (id {signer.key_id:08x})")
        return signer

    def sign(self, text: bytes) -> bytes:
        return self._key.sign(text)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._name, self._public)
