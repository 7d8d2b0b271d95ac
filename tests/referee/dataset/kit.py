"""Test kit for the Dataset lane: data files on disk, their manifest, one call to check them.

Every fixture is written by the test that uses it (small CSV, JSON Lines and Parquet files
under tmp_path), so what a test checks is visible next to it. `Bundle.check` attaches the
files as evidence — with their real sha256 — and runs `check_submission` on one packaged
sheet, the way the referee does once it has fetched the evidence bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import msgspec

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.sheet import Library, load_library

SCHEMA = "dataset_schema_validation_v1@1.0.0"
BALANCE = "dataset_class_balance_v1@1.0.0"
DUPLICATES = "dataset_duplicate_detection_v1@1.0.0"
PROVENANCE = "dataset_provenance_completeness_v1@1.0.0"
SAFETY = "dataset_content_safety_scan_v1@1.0.0"
SPLITS = "dataset_train_test_integrity_v1@1.0.0"
MISSING = "dataset_missing_value_audit_v1@1.0.0"
SHEETS = (SCHEMA, BALANCE, DUPLICATES, PROVENANCE, SAFETY, SPLITS, MISSING)
MEDIA = {"csv": "text/csv", "jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "type": "integer", "nullable": False, "unique": True, "role": "id"},
    {"name": "user", "type": "string", "nullable": False, "role": "group_key"},
    {"name": "text", "type": "string", "nullable": False, "role": "text"},
    {"name": "label", "type": "string", "nullable": False, "allowed": ["pos", "neg"], "role": "label"},
    {"name": "age", "type": "integer", "min": 0, "max": 120},
]
WORDS = [
    "river",
    "stone",
    "market",
    "light",
    "paper",
    "cloud",
    "engine",
    "signal",
    "garden",
    "window",
    "coffee",
    "music",
    "travel",
    "number",
    "letter",
    "city",
    "mountain",
    "forest",
    "ocean",
    "planet",
    "answer",
    "report",
    "system",
    "energy",
    "table",
    "water",
    "fire",
    "sound",
    "north",
    "south",
    "green",
]


@cache
def library() -> Library:
    return load_library()


def sentence(i: int, words: int = 12) -> str:
    """A deterministic text, unlike every other i's (a different word walk per i)."""
    return " ".join(WORDS[(i * 7 + k * (i % 11 + 3) + k * k) % len(WORDS)] + str((i + k) % 97) for k in range(words))


def clean_rows(n: int, *, start: int = 0, users: str = "u") -> list[dict[str, Any]]:
    """n records that pass every sheet: unique ids and texts, balanced labels, plausible ages."""
    return [
        {
            "id": i,
            "user": f"{users}{i // 2}",
            "text": sentence(i),
            "label": "pos" if i % 2 else "neg",
            "age": 20 + i % 50,
        }
        for i in range(start, start + n)
    ]


@dataclass
class Bundle:
    """Data files under `root` and the manifest that describes them."""

    root: Path
    files: dict[str, tuple[Path, str]] = field(default_factory=dict)  # name -> (path, media type)
    entries: list[dict[str, Any]] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=lambda: [dict(c) for c in COLUMNS])
    extra: dict[str, Any] = field(default_factory=dict)

    def add_bytes(
        self, name: str, data: bytes, *, rows: int, split: str | None = "train", **entry: Any
    ) -> dict[str, Any]:
        path = self.root / name
        path.write_bytes(data)
        return self.add_file(name, path, rows=rows, split=split, **entry)

    def add_file(
        self, name: str, path: Path, *, rows: int, split: str | None = "train", **entry: Any
    ) -> dict[str, Any]:
        media = entry.pop("media_type", MEDIA[name.rsplit(".", 1)[-1]])
        self.files[name] = (path, media)
        item: dict[str, Any] = {
            "path": name,
            "media_type": media,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows": rows,
            "provenance": {"source_url": "https://data.example.org/corpus", "license": "CC-BY-4.0"},
        }
        if split is not None:
            item["split"] = split
        item.update(entry)
        self.entries.append(item)
        return item

    def add_csv(self, name: str, rows: Sequence[dict[str, Any]], **entry: Any) -> dict[str, Any]:
        header = list(rows[0]) if rows else [c["name"] for c in self.columns]
        return self.add_bytes(name, csv_bytes(header, rows), rows=entry.pop("claimed_rows", len(rows)), **entry)

    def add_jsonl(self, name: str, rows: Sequence[dict[str, Any]], **entry: Any) -> dict[str, Any]:
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        return self.add_bytes(name, data, rows=entry.pop("claimed_rows", len(rows)), **entry)

    def add_parquet(self, name: str, select_sql: str, rows: int, **entry: Any) -> dict[str, Any]:
        """A Parquet file written by DuckDB from `select_sql` (so its physical types are DuckDB's)."""
        path = self.root / name
        duckdb.connect().execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
        return self.add_file(name, path, rows=rows, **entry)

    def manifest(self) -> dict[str, Any]:
        return {
            "dataset": {"name": "reviews", "version": "1.0.0", "license": "CC-BY-4.0"},
            "files": self.entries,
            "schema": {"columns": self.columns},
            **self.extra,
        }

    def evidence(self) -> tuple[list[EvidenceRef], dict[str, Path]]:
        refs, paths = [], {}
        for i, (name, (path, media)) in enumerate(self.files.items()):
            data = path.read_bytes()
            ref = EvidenceRef(
                id=f"ev_{i}",
                name=name,
                media_type=media,
                size=len(data),
                sha256="sha256:" + hashlib.sha256(data).hexdigest(),
            )
            refs.append(ref)
            paths[ref.id] = path
        return refs, paths

    def check(self, sheet: str, manifest: dict[str, Any] | None = None) -> tuple[list[Finding], Verdict]:
        refs, paths = self.evidence()
        body = msgspec.json.encode(manifest if manifest is not None else self.manifest())
        return check_submission(library().get(sheet), body, refs, files=paths)


def csv_bytes(header: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def of(findings: Sequence[Finding], rule_id: str) -> list[Finding]:
    return [f for f in findings if f.rule_id == rule_id]


def unsatisfied(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.status != "pass"]


def messages(findings: Sequence[Finding]) -> str:
    return "\n".join(f"{f.rule_id} {f.status} {f.tier}: {f.message}" for f in findings)


def write_big_csv(path: Path, rows: int) -> None:
    """A deterministic CSV of `rows` records (~150 bytes each) in COLUMNS' shape, written by
    DuckDB in seconds: unique ids, users in pairs, 14-word texts, balanced labels, ages."""
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    duckdb.connect().execute(
        f"""COPY (SELECT i AS id, 'u' || (i // 2) AS user,
                  array_to_string(list_transform(range(14), lambda k: {words}[1 + (hash(i, k) % {len(WORDS)})::INTEGER]
                                  || (hash(i, k + 99) % 1000)::VARCHAR), ' ') AS text,
                  CASE WHEN i % 2 = 0 THEN 'neg' ELSE 'pos' END AS label, 20 + i % 50 AS age
             FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')"""
    )
