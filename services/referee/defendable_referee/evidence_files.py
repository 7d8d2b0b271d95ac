"""Evidence as local files, for the rules that compute their figures from the files themselves.

The Dataset and Compute lanes never take a submitter's numbers: they re-derive them from the
data files and the raw instrumentation output (DuckDB scans a CSV, a parser reads an
nvidia-smi log). So before such a sheet is checked, the run's evidence is copied from S3
into a work directory of its own: streamed, SHA-256 hashed on the way, and a copy whose
bytes do not hash to the recorded digest (or whose size differs) is deleted and left out.
A rule that needed a left-out file answers as for a missing one — never a pass.

Bounds: an item is copied only up to `max_item_bytes` (the gateway's own evidence limit);
the run's copies together take at most `max_run_bytes` of disk (items in evidence order).
OTLP trail exports are not copied: trail_reader reads those. What was left out, and why,
is reported in `skipped` so the findings can say it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from defendable_canonical.model import EvidenceRef
from defendable_referee.evidence_reader import is_trail
from defendable_referee.sheet import FILE_RULE_KINDS, FlightSheet
from defendable_runtime.storage import BlobTooLarge, evidence_key

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}(\.gz|\.zst)?$")  # engines infer formats from it; nothing else is kept


class Downloads(Protocol):
    async def download(self, key: str, path: Path, limit: int) -> tuple[str, int] | None: ...


@dataclass(frozen=True)
class FetchedFiles:
    paths: dict[str, Path] = field(default_factory=dict)  # evidence id -> verified local copy
    skipped: dict[str, str] = field(default_factory=dict)  # evidence id -> why it has no copy


def reads_files(sheet: FlightSheet) -> bool:
    return any(rule.kind in FILE_RULE_KINDS for rule in sheet.rules)


def local_name(ref: EvidenceRef) -> str:
    """The copy's file name: the evidence id (safe by construction) and the original's suffix, if plain."""
    suffix = _SUFFIX.search(ref.name)
    return ref.id + (suffix.group(0).lower() if suffix else "")


async def fetch_files(
    blobs: Downloads, refs: Sequence[EvidenceRef], workdir: Path, *, max_item_bytes: int, max_run_bytes: int
) -> FetchedFiles:
    fetched = FetchedFiles()
    budget = max_run_bytes
    for ref in refs:
        if is_trail(ref):
            continue
        if ref.size > max_item_bytes:
            fetched.skipped[ref.id] = f"{ref.size} bytes is over the {max_item_bytes}-byte limit of one item"
            continue
        if ref.size > budget:
            fetched.skipped[ref.id] = f"the run's evidence is over the referee's {max_run_bytes}-byte disk budget"
            continue
        path = workdir / local_name(ref)
        try:
            got = await blobs.download(evidence_key(ref.sha256.removeprefix("sha256:")), path, ref.size)
        except BlobTooLarge:
            got = None  # more bytes than recorded: not the evidence (the partial copy is gone already)
        if got is None or got != (ref.sha256.removeprefix("sha256:"), ref.size):
            path.unlink(missing_ok=True)
            fetched.skipped[ref.id] = "its stored bytes are missing or no longer hash to the recorded sha256"
            continue
        fetched.paths[ref.id] = path
        budget -= ref.size
    return fetched
