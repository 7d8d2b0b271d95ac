"""The near-duplicate scan over the text columns: DuckDB tokenises and hashes, minhash.py compares.

The text of a record is its columns with role "text", joined by a space. DuckDB lower-
cases it, turns punctuation into spaces, splits on spaces and hashes each word (64-bit
`hash`, stable for a DuckDB version); the word hashes stream out as Arrow batches, so the
text itself never becomes Python strings. At most `max_rows` records are scanned — the
first ones, in file order — and a finding built on a capped scan says so.

Memory: a b-bit signature is 2·num_perm bytes per record (128 B at 64 permutations), plus
the LSH band keys (8·b bytes) while candidates are found: ~200 MB for 1,000,000 records.
What a scan keeps afterwards (and caches, see _SCANS) is 20 bytes a record plus its pairs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from defendable_referee.dataset.manifest import Column, Manifest, normalise_digest
from defendable_referee.dataset.minhash import I64, Bands, MinHasher, NearDuplicates, near_duplicates, optimal_bands
from defendable_referee.dataset.report import ROW_KEY, plural, rows_read
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident, literal

# What separates words: ASCII punctuation and white space, and the common typographic marks (RE2).
_BREAKS = r"[[:punct:][:space:]“”‘’«»„—–…¿¡·]+"
# LSH proposes, the full signature decides: weigh false negatives over false positives.
FN_WEIGHT = 0.9

# A scan is a pure function of the files' content and the parameters, and the duplicate and
# split-integrity sheets run the same one over the same dataset: the last two are kept.
_SCANS: OrderedDict[tuple[object, ...], TextScan] = OrderedDict()
_SCANS_KEPT = 2
_SCANS_LOCK = threading.Lock()


@dataclass(frozen=True)
class TextScan:
    columns: tuple[str, ...]
    total: int  # records read in all
    files: I64  # per scanned record
    rows: I64
    splits: npt.NDArray[np.int32]  # index into split_names; -1: no split
    split_names: tuple[str, ...]
    near: NearDuplicates
    bands: Bands
    hasher: MinHasher
    threshold: float

    @property
    def scanned(self) -> int:
        return len(self.rows)

    @property
    def capped(self) -> bool:
        return self.scanned < self.total

    def key(self, i: int) -> int:
        return int(self.files[i]) * ROW_KEY + int(self.rows[i])

    def method(self) -> str:
        """How the scan was made, for the finding's message."""
        cover = f"all {self.total:,}" if not self.capped else f"the first {self.scanned:,} of {self.total:,} (the cap)"
        return (
            f"near-duplicate scan over text column{'s' if len(self.columns) > 1 else ''} {', '.join(self.columns)},"
            f" {cover} records ({plural(self.near.compared, 'record')} with words): MinHash"
            f" {self.hasher.num_perm} permutations over word {self.hasher.shingle_words}-grams, LSH"
            f" {self.bands.b}×{self.bands.r}, Jaccard ≥ {self.threshold}"
        )


def text_columns(manifest: Manifest) -> list[Column]:
    return manifest.with_role("text")


def scan_text(
    manifest: Manifest,
    data: Dataset,
    *,
    threshold: float,
    num_perm: int,
    shingle_words: int,
    max_rows: int,
) -> TextScan | None:
    """Near-duplicate pairs among the first `max_rows` records; None when no column has role text."""
    columns = text_columns(manifest)
    if not columns:
        return None
    split_column = next((c.name for c in manifest.columns if c.role == "split"), None)
    key = (
        tuple((normalise_digest(v.ref.sha256), v.format, v.entry.delimiter, v.entry.split) for v in data.views),
        tuple(c.name for c in columns),
        split_column,
        threshold,
        num_perm,
        shingle_words,
        max_rows,
        data.engine.max_line_bytes,
    )
    with _SCANS_LOCK:
        if key in _SCANS:
            _SCANS.move_to_end(key)
            return _SCANS[key]
    result = _scan(
        data, columns, threshold=threshold, num_perm=num_perm, shingle_words=shingle_words, max_rows=max_rows
    )
    with _SCANS_LOCK:
        _SCANS[key] = result
        while len(_SCANS) > _SCANS_KEPT:
            _SCANS.popitem(last=False)
    return result


def _scan(
    data: Dataset, columns: list[Column], *, threshold: float, num_perm: int, shingle_words: int, max_rows: int
) -> TextScan:
    hasher = MinHasher(num_perm=num_perm, shingle_words=shingle_words)
    total = rows_read(data)
    n = min(total, max_rows)
    text = "concat_ws(' ', " + ", ".join(ident(c.name) for c in columns) + ")"
    tokens = f"string_split(regexp_replace(lower({text}), {literal(_BREAKS)}, ' ', 'g'), ' ')"
    words = f"list_transform({tokens}, lambda w: hash(w))"
    # No row_number(): DuckDB keeps insertion order, so a file's records arrive in order and are counted here.
    sql = f"SELECT __file, __split, {words} AS h FROM ({data.select(columns)}) LIMIT {n}"
    empty = np.uint64(int(data.query("SELECT hash('')")[0][0]))
    signatures = np.full((num_perm, n), 0xFFFF, dtype=np.uint16)
    files = np.zeros(n, dtype=np.int64)
    rows = np.zeros(n, dtype=np.int64)
    splits = np.full(n, -1, dtype=np.int32)
    has_text = np.zeros(n, dtype=np.bool_)
    names: dict[str, int] = {}
    seen: dict[int, int] = {}  # records counted so far, per file
    at = 0
    for batch in data.batches(sql):
        size = batch.num_rows
        if not size:
            continue
        end = min(at + size, n)
        size = end - at
        files[at:end] = batch.column(0).to_numpy(zero_copy_only=False)[:size]
        for f in np.unique(files[at:end]):  # 1-based record number within each file
            mine = np.flatnonzero(files[at:end] == f) + at
            rows[mine] = seen.get(int(f), 0) + np.arange(1, len(mine) + 1)
            seen[int(f)] = seen.get(int(f), 0) + len(mine)
        encoded = batch.column(1).dictionary_encode()
        codes = np.array([names.setdefault(str(s), len(names)) for s in encoded.dictionary.to_pylist()] + [-1])
        local = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
        splits[at:end] = codes[local[:size]]
        lists = batch.column(2)
        offsets = lists.offsets.to_numpy().astype(np.int64)[: size + 1]
        values = lists.values.to_numpy(zero_copy_only=False).astype(np.uint64)
        base = offsets[0]
        values = values[base : offsets[-1]]
        offsets = offsets - base
        kept = values != empty
        cumulative = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])
        offsets = cumulative[offsets]
        words_kept = values[kept]
        shingle_offsets, shingles = hasher.shingles(offsets, words_kept)
        signatures[:, at:end] = hasher.signatures(shingle_offsets, shingles)
        has_text[at:end] = np.diff(offsets) > 0
        at = end
        if at >= n:
            break
    signatures, files, rows, splits, has_text = signatures[:, :at], files[:at], rows[:at], splits[:at], has_text[:at]
    bands = optimal_bands(threshold, num_perm, fp_weight=1 - FN_WEIGHT, fn_weight=FN_WEIGHT)
    return TextScan(
        columns=tuple(c.name for c in columns),
        total=total,
        files=files,
        rows=rows,
        splits=splits,
        split_names=tuple(names),
        near=near_duplicates(signatures, has_text, threshold, bands),
        bands=bands,
        hasher=hasher,
        threshold=threshold,
    )
