"""The evidence bytes some rules read: fetched by content address, re-hashed, bounded.

Most sheets check only what the submission says about its evidence (ids,
names, hashes). Citation and extraction rules read the evidence's text, and
an execution trail is evidence too (OTLP bytes). Those bytes are read here,
at the edge, so the rules stay pure functions of (sheet, submission, bytes).

Bounds: an item is read only if its media type is one the rules can use and
it is at most MAX_ITEM_BYTES; a run reads at most MAX_RUN_BYTES in all (items
in evidence order). Bytes whose SHA-256 differs from the recorded digest are
treated as unavailable — a rule that needed them answers "open", never pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from defendable_canonical.model import EvidenceRef
from defendable_runtime.storage import evidence_key

MAX_ITEM_BYTES = 64 * 1024 * 1024  # one OTLP export of the 50 MB hostile case fits; text items are far smaller
MAX_TEXT_ITEM_BYTES = 8 * 1024 * 1024
MAX_RUN_BYTES = 128 * 1024 * 1024
TRAIL_PROFILE = 'profile="otlp-traces"'
_TEXT_TYPES = ("text/", "application/json", "application/x-ndjson", "application/xml", "application/yaml")


class Blobs(Protocol):
    async def get_bytes(self, key: str) -> bytes | None: ...


def media_base(media_type: str) -> str:
    return media_type.split(";", 1)[0].strip().lower()


def is_trail(ref: EvidenceRef) -> bool:
    """OTLP trace exports are tagged by a media-type parameter: `application/x-protobuf; profile="otlp-traces"`."""
    params = [p.strip().replace(" ", "") for p in ref.media_type.lower().split(";")[1:]]
    return TRAIL_PROFILE in params


def is_text(ref: EvidenceRef) -> bool:
    base = media_base(ref.media_type)
    return not is_trail(ref) and any(base.startswith(t) for t in _TEXT_TYPES) and ref.size <= MAX_TEXT_ITEM_BYTES


def to_read(refs: Sequence[EvidenceRef], *, text: bool, trail: bool) -> list[EvidenceRef]:
    """Which items a check needs, in evidence order, within the per-item and per-run budgets."""
    chosen: list[EvidenceRef] = []
    budget = MAX_RUN_BYTES
    for ref in refs:
        wanted = (text and is_text(ref)) or (trail and is_trail(ref))
        if wanted and ref.size <= min(MAX_ITEM_BYTES, budget):
            chosen.append(ref)
            budget -= ref.size
    return chosen


async def read_items(blobs: Blobs, refs: Iterable[EvidenceRef]) -> dict[str, bytes]:
    """evidence id -> bytes, for items whose stored bytes still hash to their digest."""
    found: dict[str, bytes] = {}
    for ref in refs:
        hex_digest = ref.sha256.removeprefix("sha256:")
        data = await blobs.get_bytes(evidence_key(hex_digest))
        if data is not None and len(data) == ref.size and hashlib.sha256(data).hexdigest() == hex_digest:
            found[ref.id] = data
    return found


def decode_texts(refs: Sequence[EvidenceRef], data: dict[str, bytes]) -> dict[str, str]:
    """evidence id -> text for the textual items that are valid UTF-8 (a BOM is dropped)."""
    texts: dict[str, str] = {}
    for ref in refs:
        raw = data.get(ref.id)
        if raw is None or not is_text(ref):
            continue
        try:
            texts[ref.id] = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            continue
    return texts
