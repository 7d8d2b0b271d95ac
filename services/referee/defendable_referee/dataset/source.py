"""The evidence files under DuckDB: the one module of the Dataset lane that reads files.

Why DuckDB (measured, bench/dataset.py's notes): it streams CSV, JSON Lines and Parquet
with bounded memory (a buffer pool that spills to a temp directory), parses a 150 MB
CSV in ~0.6 s on two cores, and records every row it cannot read (ragged, not UTF-8,
over-long) with its line number. Nothing here loads a file into Python objects: the checks
send SQL and get back aggregates, a few sample row numbers, or Arrow batches (minhash.py).

Plan of a `Dataset` (one per check):
1. bind each manifest file to the attached evidence it names (id, name or sha256), with
   the manifest's digest equal to the evidence's and a local copy present (`context.files`);
2. open a DuckDB connection that may read those files and its own temp directory only —
   no other path, no network, no extension loading — with threads and memory bounded;
3. probe each file once (cached by content digest): records, rows read, rows rejected by
   kind with their first line numbers, the columns and (Parquet) physical types;
4. serve the checks a uniform relation per file (`select`): `__file`, `__row` (1-based
   among the records read), `__split`, and each declared column as VARCHAR text, NULL
   where missing, with optional per-column type tests.

DuckDB's own error messages quote the offending line ("Original Line: …"), which may be
personal data: they are cut to their first line before they reach a finding (`brief`).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from defendable_canonical.model import EvidenceRef
from defendable_referee.context import CheckContext
from defendable_referee.dataset.manifest import Column, FileEntry, Format, Manifest, normalise_digest
from defendable_referee.dataset.sql import JSON_TYPES, PARQUET_TYPES, ident, literal, parquet_type_family, text_parses
from defendable_referee.errors import RefereeError

HEADER_BYTES = 1 << 20  # a CSV header must end within the first MiB
REJECTS_STORED = 100_000  # rejected rows DuckDB keeps per file; beyond it the count reads "≥"
LINES_KEPT = 20  # rejected line numbers kept per file
MAX_KEYS = 1_000  # distinct JSON keys inspected per file
NOT_UTF8 = "not UTF-8"
# A JSON Lines record is a line holding one JSON object. CASE, not AND: DuckDB evaluates both
# sides of an AND in some plans, and json_type raises on text that is not JSON.
IS_OBJECT = "CASE WHEN json_valid(line) THEN json_type(line) = 'OBJECT' ELSE false END"
REJECT_KINDS = {
    "TOO MANY COLUMNS": "ragged (too many fields)",
    "MISSING COLUMNS": "ragged (too few fields)",
    "INVALID ENCODING": NOT_UTF8,
    "INVALID UNICODE": NOT_UTF8,
    "LINE SIZE OVER MAXIMUM": "over the line size limit",
    "UNQUOTED VALUE": "badly quoted",
    "INVALID STATE": "badly quoted",
    "CAST": "unreadable value",
}


class DatasetError(RefereeError):
    """A dataset file could not be read at all; the message is safe to show (no file content)."""


@dataclass(frozen=True)
class Engine:
    """Resources one check may use. Two threads: the machines this runs on have two cores."""

    threads: int = 2
    memory_limit_mib: int = 640
    max_line_bytes: int = 2 << 20  # DuckDB sizes its read buffers from it: larger costs memory per thread


DEFAULT_ENGINE = Engine()


@dataclass(frozen=True)
class Probe:
    """What one pass over a file shows."""

    records: int  # records in the file: read + rejected
    read: int  # records every check sees
    rejected: dict[str, int] = field(default_factory=dict)  # kind -> count
    reject_lines: tuple[int, ...] = ()  # first physical line numbers (1-based, header = line 1)
    rejects_capped: bool = False  # more were rejected than DuckDB was asked to keep
    columns: tuple[str, ...] = ()
    types: dict[str, str] = field(default_factory=dict)  # column -> DuckDB type (Parquet)
    undeclared_keys_capped: bool = False

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class Unbound:
    """A manifest file no check can read, and why."""

    entry: FileEntry
    why: str


@dataclass(frozen=True)
class FileView:
    index: int
    entry: FileEntry
    ref: EvidenceRef
    path: Path
    format: Format
    probe: Probe

    @property
    def name(self) -> str:
        return self.entry.path

    def has(self, column: str) -> bool:
        return column in self.probe.columns


def brief(exc: BaseException) -> str:
    """A library error's first line, cut before anything it quotes (DuckDB echoes the offending
    input: "Original Line: …", "Input: …"), at most 200 characters."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else type(exc).__name__
    first = re.split(r"Original Line|Input:|[\"'`]", first, maxsplit=1)[0].rstrip(" :.")
    return first if len(first) <= 200 else first[:199] + "…"


# -- 1. binding ---------------------------------------------------------------


def bind(manifest: Manifest, context: CheckContext) -> tuple[list[tuple[FileEntry, EvidenceRef, Path]], list[Unbound]]:
    """Each manifest file with the evidence item and local copy it stands for, or why not."""
    bound: list[tuple[FileEntry, EvidenceRef, Path]] = []
    unbound: list[Unbound] = []
    used: dict[str, str] = {}  # evidence id -> the manifest file bound to it
    for entry in manifest.files:
        digest = normalise_digest(entry.sha256)
        candidates = [entry.evidence] if entry.evidence is not None else [entry.path, digest]
        hit = next((found for key in candidates if (found := context.cited(key)) is not None), None)
        if hit is None:
            unbound.append(Unbound(entry, f"no attached evidence is named {candidates[0]!r}"))
            continue
        ref = hit[0]
        if ref.id in used:
            unbound.append(Unbound(entry, f"names evidence {ref.id}, which file {used[ref.id]!r} already is"))
            continue
        if normalise_digest(ref.sha256) != digest:
            unbound.append(Unbound(entry, f"manifest sha256 {digest} differs from the evidence's {ref.sha256}"))
            continue
        path = context.files.get(ref.id)
        if path is None:
            unbound.append(Unbound(entry, f"the bytes of evidence {ref.id} were not fetched for checking"))
            continue
        used[ref.id] = entry.path
        bound.append((entry, ref, path))
    return bound, unbound


# -- 3. probing (cached by content) ---------------------------------------------

_PROBES: OrderedDict[tuple[object, ...], Probe] = OrderedDict()
_PROBES_KEPT = 256
_PROBES_LOCK = threading.Lock()


class Dataset:
    """The manifest's files, readable through one sandboxed DuckDB connection (a context manager)."""

    def __init__(self, manifest: Manifest, context: CheckContext, engine: Engine = DEFAULT_ENGINE) -> None:
        self.manifest = manifest
        self.engine = engine
        self._context = context
        self.views: list[FileView] = []
        self.unbound: list[Unbound] = []
        self._tmp: Path | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._scans = 0

    # -- lifecycle ------------------------------------------------------------

    def __enter__(self) -> Dataset:
        bound, self.unbound = bind(self.manifest, self._context)
        self._tmp = Path(tempfile.mkdtemp(prefix="defendable-dataset-"))
        try:
            self._con = self._connect([path for _, _, path in bound])
            for entry, ref, path in bound:
                fmt = entry.format
                assert fmt is not None, "manifest_problems refuses unknown media types"
                try:
                    probe = self._probe_cached(entry, ref, path, fmt)
                except DatasetError as exc:
                    self.unbound.append(Unbound(entry, str(exc)))
                    continue
                self.views.append(FileView(len(self.views), entry, ref, path, fmt, probe))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _connect(self, paths: Sequence[Path]) -> duckdb.DuckDBPyConnection:
        """2. In-memory, bounded, and unable to touch anything but these files and its temp dir."""
        assert self._tmp is not None
        con = _open(
            ":memory:",
            {
                "threads": self.engine.threads,
                "memory_limit": f"{self.engine.memory_limit_mib}MiB",
                "preserve_insertion_order": True,  # `__row` counts records in file order
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            },
        )
        try:
            con.execute("SET enable_progress_bar = false")  # it writes to stdout: a service's log, a bench's JSON
            con.execute(f"SET temp_directory = {literal(str(self._tmp))}")
            con.execute(f"SET allowed_directories = [{literal(str(self._tmp) + '/')}]")
            con.execute("SET allowed_paths = [" + ", ".join(literal(str(p.resolve())) for p in paths) + "]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            con.close()
            raise DatasetError(f"the engine could not be set up: {brief(exc)}") from None
        except BaseException:
            con.close()
            raise
        return con

    # -- queries ----------------------------------------------------------------

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        assert self._con is not None, "use Dataset as a context manager"
        try:
            return self._con.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise DatasetError(f"query failed: {brief(exc)}") from None

    def batches(self, sql: str, rows: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The query's result as Arrow record batches of about `rows` rows, streamed."""
        assert self._con is not None, "use Dataset as a context manager"
        try:
            reader = self._con.sql(sql).to_arrow_reader(rows)
            yield from reader
        except duckdb.Error as exc:
            raise DatasetError(f"query failed: {brief(exc)}") from None

    # -- the uniform relation -------------------------------------------------------

    def select(
        self,
        columns: Sequence[Column],
        *,
        rows: bool = False,
        types: bool = False,
        views: Sequence[FileView] | None = None,
    ) -> str:
        """SQL for every readable file's records (UNION ALL): `__file`, `__split`, `__row` if
        `rows`, each column's text form under its own name, and `"__ok:<name>"` (value is
        missing or has the declared type) if `types`. A column a file lacks reads NULL."""
        chosen = self.views if views is None else list(views)
        if not chosen:
            names = ", ".join(f"NULL::VARCHAR AS {ident(c.name)}" for c in columns)
            extra = ", NULL::BIGINT AS __row" if rows else ""
            oks = "".join(f", NULL::BOOLEAN AS {ident('__ok:' + c.name)}" for c in columns) if types else ""
            return f"SELECT NULL::INTEGER AS __file, NULL::VARCHAR AS __split{extra}, {names}{oks} WHERE false"
        return " UNION ALL ".join(f"({self._select_one(v, columns, rows=rows, types=types)})" for v in chosen)

    def _select_one(self, view: FileView, columns: Sequence[Column], *, rows: bool, types: bool) -> str:
        split_column = next((c.name for c in self.manifest.columns if c.role == "split"), None)
        needed = [c for c in columns if view.has(c.name)]
        if split_column is not None and view.has(split_column) and split_column not in {c.name for c in needed}:
            needed_names = [c.name for c in needed] + [split_column]
        else:
            needed_names = [c.name for c in needed]
        base, text_of, type_of = self._base(view, needed_names, rows=rows)
        if view.entry.split is not None:
            split = literal(view.entry.split)
        elif split_column is not None and view.has(split_column):
            split = text_of(split_column)
        else:
            split = "NULL::VARCHAR"
        parts = [f"{view.index} AS __file", f"{split} AS __split"] + (["__row"] if rows else [])
        for column in columns:
            parts.append(
                f"{text_of(column.name) if view.has(column.name) else 'NULL::VARCHAR'} AS {ident(column.name)}"
            )
        if types:
            for column in columns:
                ok = type_of(column) if view.has(column.name) else "TRUE"
                parts.append(f"{ok} AS {ident('__ok:' + column.name)}")
        return f"SELECT {', '.join(parts)} FROM ({base})"

    def _base(self, view: FileView, names: Sequence[str], *, rows: bool) -> tuple[str, Any, Any]:
        """(FROM-able SQL, column -> text form SQL, Column -> type test SQL) for one file."""
        numbering = "row_number() OVER () AS __row, " if rows else ""
        if view.format == "csv":
            scan = self.csv_scan(view)
            cols = ", ".join(ident(n) for n in names) or "1 AS __none"
            # A file with a record that is not UTF-8 is read whole by every query, so that every
            # query drops the same records (DuckDB checks only the columns a query reads).
            touch = f" WHERE {_touch(view.probe.columns)} >= 0" if view.probe.rejected.get(NOT_UTF8) else ""
            return (
                f"SELECT {numbering}{cols} FROM {scan}{touch}",
                lambda n: ident(n),
                lambda c: f"({ident(c.name)} IS NULL OR {text_parses(ident(c.name), c.type)})",
            )
        if view.format == "jsonl":
            shape = literal(json.dumps({n: "JSON" for n in names}))
            objects = IS_OBJECT
            return (
                f"SELECT {numbering}json_transform(line, {shape}) AS __j FROM {self.lines_scan(view)} WHERE {objects}"
                if names
                else f"SELECT {numbering}1 AS __none FROM {self.lines_scan(view)} WHERE {objects}",
                lambda n: f"(__j.{ident(n)} ->> '$')",
                lambda c: _json_type_test(c),
            )
        numbering = "file_row_number + 1 AS __row, " if rows else ""
        cols = ", ".join(ident(n) for n in names) or "1 AS __none"
        scan = f"read_parquet({literal(str(view.path.resolve()))}, file_row_number = true)"

        def parquet_type_test(c: Column) -> str:
            physical = parquet_type_family(view.probe.types.get(c.name, ""))
            if physical in PARQUET_TYPES[c.type]:
                return "TRUE"
            text = f"CAST({ident(c.name)} AS VARCHAR)"
            return f"({ident(c.name)} IS NULL OR {text_parses(text, c.type)})"

        return (
            f"SELECT {numbering}{cols} FROM {scan}",
            lambda n: f"CAST({ident(n)} AS VARCHAR)",
            parquet_type_test,
        )

    def csv_scan(self, view: FileView, *, rejects: str = "") -> str:
        columns = "{" + ", ".join(f"{literal(n)}: 'VARCHAR'" for n in view.probe.columns) + "}"
        store = _rejects_clause(rejects)
        return (
            f"read_csv({literal(str(view.path.resolve()))}, header = true, auto_detect = false, columns = {columns},"
            f" delim = {literal(view.entry.delimiter)}, quote = '\"', escape = '\"', strict_mode = true,"
            f" null_padding = false, ignore_errors = true, max_line_size = {self.engine.max_line_bytes}{store})"
        )

    def lines_scan(self, view: FileView, *, rejects: str = "") -> str:
        """A JSON Lines file as one VARCHAR `line` per record. \\x01 as the delimiter: a raw
        control character cannot occur inside valid JSON, so no valid line is split."""
        store = _rejects_clause(rejects)
        return (
            f"read_csv({literal(str(view.path.resolve()))}, header = false, auto_detect = false,"
            f" columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '', escape = '', strict_mode = true,"
            f" ignore_errors = true, max_line_size = {self.engine.max_line_bytes}{store})"
        )

    # -- probing --------------------------------------------------------------------

    def _probe_cached(self, entry: FileEntry, ref: EvidenceRef, path: Path, fmt: Format) -> Probe:
        key = (normalise_digest(ref.sha256), fmt, entry.delimiter, self.engine.max_line_bytes)
        with _PROBES_LOCK:
            if key in _PROBES:
                _PROBES.move_to_end(key)
                return _PROBES[key]
        try:
            probe = self._probe(entry, path, fmt)
        except OSError as exc:
            raise DatasetError(f"the file could not be read: {exc.strerror or type(exc).__name__}") from None
        with _PROBES_LOCK:
            _PROBES[key] = probe
            while len(_PROBES) > _PROBES_KEPT:
                _PROBES.popitem(last=False)
        return probe

    def _probe(self, entry: FileEntry, path: Path, fmt: Format) -> Probe:
        self._scans += 1
        table = f"rejects_{self._scans}"
        stub = FileView(
            -1, entry, EvidenceRef(id="", name="", media_type="", size=0, sha256=""), path, fmt, Probe(0, 0)
        )
        if fmt == "parquet":
            return self._probe_parquet(path)
        if fmt == "csv":
            header = read_csv_header(path, entry.delimiter)
            stub = FileView(-1, entry, stub.ref, path, fmt, Probe(0, 0, columns=tuple(header)))
            # Every column is read (strlen): DuckDB checks UTF-8 only in the columns a query reads.
            read = self._count(f"SELECT count(*), sum({_touch(header)}) FROM {self.csv_scan(stub, rejects=table)}")
            rejected, lines, capped = self._rejects(table)
            return Probe(
                records=read + sum(rejected.values()),
                read=read,
                rejected=rejected,
                reject_lines=lines,
                rejects_capped=capped,
                columns=tuple(header),
            )
        check_text_start(path)
        scan = self.lines_scan(stub, rejects=table)
        row = self.query(
            "SELECT count(*), count(*) FILTER (WHERE line IS NULL OR trim(line) = ''),"
            f" count(*) FILTER (WHERE {IS_OBJECT})"
            f" FROM {scan}"
        )[0]
        lines_seen, blank, objects = int(row[0]), int(row[1]), int(row[2])
        rejected, reject_lines, capped = self._rejects(table)
        bad_json = lines_seen - blank - objects
        if bad_json:
            rejected["not a JSON object"] = bad_json
        if blank:
            rejected["blank line"] = blank
        if bad_json or blank:
            numbered = f"SELECT row_number() OVER () AS n, line FROM {self.lines_scan(stub)}"
            first_bad = self.query(
                f"SELECT n FROM ({numbered}) WHERE line IS NULL OR NOT ({IS_OBJECT}) ORDER BY n LIMIT {LINES_KEPT}"
            )
            # Row numbers among the lines DuckDB read; exact line numbers when none was rejected.
            reject_lines = tuple(sorted({*reject_lines, *(int(r[0]) for r in first_bad)}))[:LINES_KEPT]
        keys = self.query(
            f"SELECT DISTINCT k FROM (SELECT unnest(json_keys(line)) AS k FROM {self.lines_scan(stub)}"
            f" WHERE {IS_OBJECT}) LIMIT {MAX_KEYS + 1}"
        )
        names = sorted(str(k[0]) for k in keys)
        return Probe(
            records=objects + bad_json + blank + sum(v for k, v in rejected.items() if k not in _JSON_KINDS),
            read=objects,
            rejected=rejected,
            reject_lines=reject_lines,
            rejects_capped=capped,
            columns=tuple(names[:MAX_KEYS]),
            undeclared_keys_capped=len(names) > MAX_KEYS,
        )

    def _probe_parquet(self, path: Path) -> Probe:
        with path.open("rb") as f:
            head = f.read(4)
            f.seek(0, io.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4))
            tail = f.read(4)
        if head != b"PAR1" or tail != b"PAR1":
            raise DatasetError("not a Parquet file (no PAR1 magic at both ends)")
        scan = f"read_parquet({literal(str(path.resolve()))})"
        described = self.query(f"DESCRIBE SELECT * FROM {scan}")
        count = self._count(f"SELECT count(*) FROM {scan}")
        return Probe(
            records=count,
            read=count,
            columns=tuple(str(r[0]) for r in described),
            types={str(r[0]): str(r[1]) for r in described},
        )

    def _count(self, sql: str) -> int:
        return int(self.query(sql)[0][0])

    def _rejects(self, table: str) -> tuple[dict[str, int], tuple[int, ...], bool]:
        rows = self.query(f"SELECT CAST(error_type AS VARCHAR), count(*) FROM {table} GROUP BY 1 ORDER BY 1")
        # One rejected row may carry several errors (bad encoding in two fields): count rows, by first kind.
        per_line = self.query(
            f"SELECT line, min(CAST(error_type AS VARCHAR)) FROM {table} GROUP BY line ORDER BY line"
            f" LIMIT {REJECTS_STORED + 1}"
        )
        kinds: dict[str, int] = {}
        for _, kind in per_line:
            label = REJECT_KINDS.get(str(kind), str(kind).lower())
            kinds[label] = kinds.get(label, 0) + 1
        stored = sum(int(r[1]) for r in rows)
        lines = tuple(int(r[0]) for r in per_line[:LINES_KEPT])
        return kinds, lines, stored >= REJECTS_STORED


def _open(database: str, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(database, config=config)
    except duckdb.Error as exc:
        raise DatasetError(f"the engine could not start: {brief(exc)}") from None


def _touch(columns: Sequence[str]) -> str:
    """SQL that reads every column of a row (and cannot be optimised away)."""
    return " + ".join(f"coalesce(strlen({ident(c)}), 0)" for c in columns) or "0"


_JSON_KINDS = frozenset({"not a JSON object", "blank line"})


def _json_type_test(column: Column) -> str:
    value = f"__j.{ident(column.name)}"
    allowed = ", ".join(literal(t) for t in sorted(JSON_TYPES[column.type]))
    test = f"json_type({value}) IN ({allowed})"
    if column.type in ("date", "datetime"):
        test += f" AND {text_parses(f'({value} ->> {literal(chr(36))})', column.type)}"
    return f"({value} IS NULL OR ({test}))"


# -- text files: what must hold before DuckDB reads them -------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def check_text_start(path: Path) -> bytes:
    """The file's first MiB, refused if it is UTF-16/32 or binary (DuckDB reads UTF-8)."""
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise DatasetError(f"file is {name} (byte-order mark); the lane reads UTF-8 text")
    if b"\x00" in head:
        raise DatasetError("file holds NUL bytes: binary or UTF-16/32, not UTF-8 text")
    return head.removeprefix(codecs.BOM_UTF8)


def read_csv_header(path: Path, delimiter: str) -> list[str]:
    """The CSV's column names from its first record (RFC 4180 quoting), checked to be usable."""
    head = check_text_start(path)
    if not head.strip():
        raise DatasetError("file is empty: a CSV needs a header row")
    # Decoded leniently: only the header record has to be UTF-8 here (DuckDB judges the rest).
    text = head.decode("utf-8", errors="replace")
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True))
    except (csv.Error, StopIteration) as exc:
        raise DatasetError(f"the header row does not parse as CSV: {exc}") from None
    if any("\ufffd" in name for name in header):
        raise DatasetError("the header row is not UTF-8")
    names = [name.strip() for name in header]
    if any(not name for name in names):
        raise DatasetError(f"header field {names.index('') + 1} has no column name")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetError(f"the header names column {twice[0]!r} twice")
    return names


def _rejects_clause(rejects: str) -> str:
    """read_csv options that keep rejected lines in the table `rejects` ("" keeps none)."""
    if not rejects:
        return ""
    return (
        f", store_rejects = true, rejects_table = {literal(rejects)}, rejects_scan = {literal(rejects + '_scan')},"
        f" rejects_limit = {REJECTS_STORED}"
    )
