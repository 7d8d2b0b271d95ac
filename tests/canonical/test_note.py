"""C2SP signed notes: the spec's example, the reference implementation's vectors byte for byte,
strict parsing, and the spec's rules for known and unknown keys.

Vectors:
- C2SP signed-note.md (C2SP/C2SP@0552876): the example note (no public key is published for it,
  so it is checked for structure and a byte-exact round trip).
- golang.org/x/mod sumdb/note note_test.go (golang/mod@02c9913): the PeterNeumann and EnochRoot
  keys, signatures and signed notes, the key-mangling loops, and the malformed-note table.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defendable_canonical.note import (
    ED25519,
    MAX_SIGNATURES,
    Ed25519Signer,
    Ed25519Verifier,
    InvalidSignature,
    Note,
    NoteError,
    NoteSignature,
    UnverifiedNote,
    b64decode_strict,
    format_note,
    format_vkey,
    is_valid_key_name,
    key_id,
    open_note,
    parse_note,
    parse_vkey,
    sign_note,
)

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

C2SP_EXAMPLE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore"
    " NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()


def peter() -> Ed25519Verifier:
    return Ed25519Verifier.from_vkey(PETER_VKEY)


def enoch() -> Ed25519Verifier:
    return Ed25519Verifier.from_vkey(ENOCH_VKEY)


# ---------------------------------------------------------------- the reference vectors


def test_signing_with_the_go_signer_key_reproduces_the_go_note_byte_for_byte() -> None:
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    assert (signer.name, signer.key_id) == ("PeterNeumann", 0xC74F20A3)
    assert signer.verifier().vkey == PETER_VKEY
    assert sign_note(TEXT, [signer]) == (TEXT + "\n" + PETER_SIG).encode()
    # An existing signature by the same key is replaced, as the Go Sign does.
    stale = NoteSignature("PeterNeumann", 0xC74F20A3, b"stale signature")
    assert sign_note(TEXT, [signer], existing=[stale]) == (TEXT + "\n" + PETER_SIG).encode()


def test_the_go_note_opens_with_its_vkey_and_any_change_to_the_text_fails() -> None:
    opened = open_note((TEXT + "\n" + PETER_SIG).encode(), [peter()])
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.verified] == [("PeterNeumann", 0xC74F20A3)]
    with pytest.raises(InvalidSignature, match=r"PeterNeumann\+c74f20a3"):
        open_note((TEXT.replace("cryptography", "cryptographY") + "\n" + PETER_SIG).encode(), [peter()])


def test_vkeys_parse_to_the_key_and_id_they_name() -> None:
    key = parse_vkey(PETER_VKEY)
    assert (key.name, key.key_id, key.key_type, len(key.public_key)) == ("PeterNeumann", 0xC74F20A3, ED25519, 32)
    assert key_id("PeterNeumann", ED25519, key.public_key) == 0xC74F20A3
    assert format_vkey("PeterNeumann", ED25519, key.public_key) == PETER_VKEY
    assert peter().vkey == PETER_VKEY and enoch().key_id == 0xAF0CFE78


def test_every_mangled_vkey_is_refused() -> None:
    """TestNewVerifier: every proper substring, and every key with one byte incremented."""
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    Ed25519Verifier.from_vkey(PETER_VKEY[i:j])
    raw = bytearray(PETER_VKEY.encode())
    for i in range(len(raw)):
        raw[i] += 1
        with pytest.raises(NoteError):
            Ed25519Verifier.from_vkey(raw.decode())
        raw[i] -= 1
    with pytest.raises(NoteError):  # wrong length key, with adjusted key hash
        Ed25519Verifier.from_vkey("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(NoteError):  # unknown algorithm, with adjusted key hash
        Ed25519Verifier.from_vkey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_every_mangled_signer_key_is_refused() -> None:
    """TestNewSigner's loops."""
    for i in range(len(PETER_SKEY) + 1):
        for j in range(i + 1, len(PETER_SKEY) + 1):
            if (i, j) != (0, len(PETER_SKEY)):
                with pytest.raises(NoteError):
                    Ed25519Signer.from_skey(PETER_SKEY[i:j])
    raw = bytearray(PETER_SKEY.encode())
    for i in range(len(raw)):
        raw[i] += 1
        with pytest.raises(NoteError):
            Ed25519Signer.from_skey(raw.decode())
        raw[i] -= 1


def test_known_keys_verify_and_unknown_keys_are_set_aside() -> None:
    """TestOpen: one verified and one not; both; neither."""
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    one = open_note(msg, [peter()])
    assert [s.name for s in one.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in one.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = open_note(msg, [peter(), enoch()])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"] and not both.unverified
    with pytest.raises(UnverifiedNote):
        open_note(msg, [])


def test_a_key_given_twice_is_ambiguous() -> None:
    with pytest.raises(NoteError, match=r"ambiguous key EnochRoot\+af0cfe78"):
        open_note((TEXT + "\n" + ENOCH_SIG).encode(), [enoch(), peter(), enoch()])


def test_a_bad_signature_by_a_known_key_refuses_the_note_even_beside_a_good_one() -> None:
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(InvalidSignature, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note((TEXT + "\n" + bad).encode(), [peter()])
    with pytest.raises(InvalidSignature):
        open_note((TEXT + "\n" + PETER_SIG + bad).encode(), [peter()])


def test_repeated_signatures_by_a_known_key_are_each_verified() -> None:
    """Go drops repeats unverified; the spec says a known key's signature MUST be verified."""
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    opened = open_note((TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd).encode(), [peter()])
    assert [s.name for s in opened.verified] == ["PeterNeumann"] * 2
    assert [s.name for s in opened.unverified] == ["EnochRoot"] * 3


def test_the_c2sp_example_note_parses_and_round_trips_byte_for_byte() -> None:
    note = parse_note(C2SP_EXAMPLE)
    assert note.text == "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    (sig,) = note.signatures
    assert sig.name == "quasimodo.example/salvatore" and len(sig.signature) == 64
    assert format_note(note) == C2SP_EXAMPLE
    with pytest.raises(UnverifiedNote):  # the spec publishes no key for it
        open_note(C2SP_EXAMPLE, [peter()])


# ---------------------------------------------------------------- strict parsing


@pytest.mark.parametrize(
    "msg",
    [
        # TestOpen's badMsgs
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT
        + "\n"
        + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        # and ours
        TEXT + "\n\n" + PETER_SIG,  # two blank lines: the text would end with an empty line
        "\n\n" + PETER_SIG,  # an empty text
        TEXT + "\n" + PETER_SIG + "\n",  # a blank line after the signatures
        TEXT + "\n" + PETER_SIG.replace("\n", "\r\n"),
        TEXT + "\n" + PETER_SIG.replace("— ", "-- "),
        TEXT + "\n" + PETER_SIG.replace("— ", "—"),
        TEXT + "\n" + PETER_SIG.replace(" x08go", "  x08go"),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter\u00a0Neumann"),
        TEXT + "\n" + PETER_SIG.replace("nAM=", "nAN="),  # same bytes, non-zero pad bits
        TEXT + "\n" + PETER_SIG.replace("nAM=", "nAM"),  # unpadded
        TEXT + "\n" + "— PeterNeumann AAAA\n",  # 3 bytes: no room for a key id and a signature
        TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1),
    ],
)
def test_malformed_notes_are_refused(msg: str) -> None:
    with pytest.raises(NoteError):
        open_note(msg.encode(), [peter()])


def test_non_utf8_and_oversized_notes_are_refused() -> None:
    for msg in [b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), (TEXT + "\n").encode() + b"\xed\xa0\x80\n" + b"x"]:
        with pytest.raises(NoteError):
            parse_note(msg)
    with pytest.raises(NoteError, match="bytes, more than"):
        parse_note(("x" * 300_000 + "\n\n" + PETER_SIG).encode())


def test_sixteen_signatures_are_accepted_as_the_spec_requires() -> None:
    signers = [Ed25519Signer.from_seed(f"witness{i}.example", bytes([i]) * 32) for i in range(16)]
    msg = sign_note(TEXT, signers)
    assert len(open_note(msg, [s.verifier() for s in signers]).verified) == 16


def test_notes_that_cannot_be_read_back_are_never_signed() -> None:
    signer = Ed25519Signer.from_skey(PETER_SKEY)
    for text in ["abc", "abc\n\n", "\n", "a\x00b\n"]:
        with pytest.raises(NoteError):
            sign_note(text, [signer])
    with pytest.raises(NoteError):
        sign_note(TEXT, [signer], existing=[NoteSignature("a+b", 1, b"sig")])
    with pytest.raises(NoteError):
        format_note(Note(TEXT, ()))
    with pytest.raises(NoteError):
        Ed25519Signer.from_seed("bad name", b"\x00" * 32)


def test_key_names_follow_the_spec() -> None:
    assert is_valid_key_name("example.com/log42")
    assert is_valid_key_name("oid/1.3.6.1.4.1.44363.47.1")
    for bad in ["", "a b", "a+b", "a\u2028b", "a\u3000b", "a\tb", "x" * 256]:
        assert not is_valid_key_name(bad)


def test_base64_must_be_canonical() -> None:
    assert b64decode_strict("AA==") == b"\x00"
    for bad in ["AB==", "AA", "AA=", "A===", "AA==\n", " AA==", "AA-_", "é"]:
        with pytest.raises(NoteError):
            b64decode_strict(bad)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=30),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.integers(0, 255), min_size=1, max_size=3, unique=True),
)
def test_any_signed_text_round_trips_and_verifies(lines: list[str], seeds: list[int]) -> None:
    text = "".join(line + "\n" for line in lines)
    signers = [Ed25519Signer.from_seed(f"k{s}.example", bytes([s]) * 32) for s in seeds]
    msg = sign_note(text, signers)
    note = parse_note(msg)
    assert note.text == text and format_note(note) == msg
    assert len(open_note(msg, [s.verifier() for s in signers]).verified) == len(signers)


def test_signature_blobs_carry_the_key_id_big_endian() -> None:
    blob = base64.b64decode(PETER_SIG.split()[-1])
    assert blob[:4] == bytes.fromhex("c74f20a3")
    assert parse_note((TEXT + "\n" + PETER_SIG).encode()).signatures[0].signature == blob[4:]
