"""A run's execution trail: its OTLP evidence read back, decoded and normalised, steps stored.

Every item tagged `profile="otlp-traces"` (evidence_reader.is_trail) is one OTLP export
of the run — an agent's SDK sends several as it goes. Their spans are normalised together
(defendable_canonical.otlp_steps), so the order, the step hashes and the bundle hash do
not depend on how the SDK batched them. The step records are written to S3 as JSON
Lines under their bundle hash (content-addressed, so a redelivery rewrites the same
bytes), for `GET /runs/{id}/trail` to show and for anyone to verify one step.

Decoding is CPU work on up to MAX_RUN_BYTES of evidence: it runs in a worker thread so
the service's event loop keeps acking and heartbeating meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import msgspec

from defendable_canonical.model import EvidenceRef
from defendable_canonical.otlp import MAX_SPANS, OtlpRejected, Span, iter_spans
from defendable_canonical.otlp_steps import NormalisedTrail, normalise
from defendable_canonical.trail import step_bytes

from . import evidence_reader


class Blobs(evidence_reader.Blobs, Protocol):
    async def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...


class TrailRead(msgspec.Struct, frozen=True, kw_only=True):
    trail: NormalisedTrail | None = None  # None: no trail evidence, or `error`
    error: str = ""
    key: str = ""  # where the step records were stored


def trail_key(bundle_sha256: str) -> str:
    return f"trails/sha256/{bundle_sha256.removeprefix('sha256:')}.jsonl"


async def read_trail(blobs: Blobs, evidence: Sequence[EvidenceRef]) -> TrailRead:
    refs = [ref for ref in evidence if evidence_reader.is_trail(ref)]
    if not refs:
        return TrailRead()
    wanted = evidence_reader.to_read(refs, text=False, trail=True)
    if len(wanted) < len(refs):
        over = ", ".join(ref.name for ref in refs if ref not in wanted)
        return TrailRead(error=f"trail evidence beyond the {evidence_reader.MAX_RUN_BYTES}-byte budget: {over}")
    data = await evidence_reader.read_items(blobs, wanted)
    unreadable = [ref.name for ref in wanted if ref.id not in data]
    if unreadable:
        return TrailRead(error=f"trail evidence could not be read back intact: {', '.join(unreadable)}")
    try:
        trail = await asyncio.to_thread(_normalise, wanted, data)
    except OtlpRejected as exc:
        return TrailRead(error=exc.detail)
    key = trail_key(trail.bundle_sha256)
    lines = b"".join(step_bytes(step) + b"\n" for step in trail.steps)
    await blobs.put_bytes(key, lines, "application/x-ndjson")
    return TrailRead(trail=trail, key=key)


def _normalise(refs: Sequence[EvidenceRef], data: dict[str, bytes]) -> NormalisedTrail:
    spans: list[Span] = []
    for ref in refs:
        try:
            for span in iter_spans(data[ref.id], ref.media_type, max_spans=MAX_SPANS - len(spans)):
                spans.append(span)
        except OtlpRejected as exc:
            raise OtlpRejected(exc.status, f"{ref.name}: {exc.detail}") from None
    return normalise(spans)
