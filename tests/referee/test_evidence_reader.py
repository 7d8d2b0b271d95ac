"""Which evidence bytes the referee reads for text rules, and what it refuses to trust."""

from __future__ import annotations

import hashlib

from defendable_canonical.model import EvidenceRef
from defendable_referee import evidence_reader
from defendable_referee.evidence_reader import MAX_RUN_BYTES, MAX_TEXT_ITEM_BYTES, decode_texts, read_items, to_read
from defendable_runtime.storage import evidence_key


def ref(id_: str, media_type: str, data: bytes, size: int | None = None) -> EvidenceRef:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return EvidenceRef(id=id_, name=id_, media_type=media_type, size=len(data) if size is None else size, sha256=digest)


class Bytes:
    """Stored objects by key: the byte source `read_items` reads (S3 in the service)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    async def get_bytes(self, key: str) -> bytes | None:
        return self.objects.get(key)


def test_only_textual_items_within_the_budgets_are_read() -> None:
    text = ref("a", "text/plain; charset=utf-8", b"hello")
    jsonl = ref("b", "application/json", b"{}")
    image = ref("c", "image/png", b"\x89PNG")
    huge = ref("d", "text/plain", b"x", size=MAX_TEXT_ITEM_BYTES + 1)
    trail = ref("e", 'application/x-protobuf; profile="otlp-traces"', b"\x0a\x00")
    assert to_read([text, jsonl, image, huge, trail], text=True, trail=False) == [text, jsonl]
    assert to_read([text, trail], text=False, trail=True) == [trail]
    assert evidence_reader.is_trail(ref("f", 'application/json; profile = "otlp-traces"', b"{}"))
    many = [ref(str(i), "text/plain", b"x", size=MAX_TEXT_ITEM_BYTES) for i in range(40)]
    assert len(to_read(many, text=True, trail=False)) == MAX_RUN_BYTES // MAX_TEXT_ITEM_BYTES


async def test_bytes_that_no_longer_match_their_digest_are_not_used() -> None:
    good, bad, gone = (
        ref("good", "text/plain", b"quoted text"),
        ref("bad", "text/plain", b"original"),
        ref("gone", "text/plain", b"missing"),
    )
    store = Bytes(
        {
            evidence_key(good.sha256[7:]): b"quoted text",
            evidence_key(bad.sha256[7:]): b"tampered",  # same length would not help: the hash decides
        }
    )
    data = await read_items(store, [good, bad, gone])
    assert data == {"good": b"quoted text"}


def test_text_is_strict_utf8_and_a_bom_is_dropped() -> None:
    a, b = ref("a", "text/plain", b"\xef\xbb\xbfcaf\xc3\xa9"), ref("b", "text/plain", b"\xff\xfe")
    assert decode_texts([a, b], {"a": b"\xef\xbb\xbfcaf\xc3\xa9", "b": b"\xff\xfe"}) == {"a": "café"}
