"""`defendable flight-sheet lint`: every problem of a sheet file, each with where it is.

Stricter than loading, in this order, stopping after the first stage that fails:

1. JSON: malformed text (with line and column), duplicate keys (the hash is
   over the decoded value, so `{"tier": "low", "tier": "high"}` would be
   ambiguous to a reader of the file), a top level that is not an object.
2. Format: the JSON Schema of the format (format_schema.py), all errors,
   sorted by path.
3. Meaning: what the loader checks beyond the schema — rule params per kind,
   formulas, unknown tolerance classes, gates and fields that nothing defines.
   The loader stops at the first such problem, so this stage reports one.
4. Publication: if the file sits in a directory with a lock file, whether its
   `id@version` is published with this hash (an edit needs a new version).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import msgspec

from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.format_schema import format_schema
from defendable_referee.publication import LOCK_NAME, LockError, read_lock
from defendable_referee.sheet import load_sheet

MAX_SHEET_BYTES = 1024 * 1024
MAX_FORMAT_ERRORS = 50
_BYTE = re.compile(r"\(byte (\d+)\)")


class LintProblem(msgspec.Struct, frozen=True, kw_only=True):
    path: str  # JSON path into the sheet ("$.rules[2].params"), or "" for the file as a whole
    message: str


class LintReport(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    problems: list[LintProblem]
    key: str = ""  # id@version, once the sheet loads
    sha256: str = ""
    published: str = ""  # "published", "unpublished", or "" when no lock file is beside it

    @property
    def ok(self) -> bool:
        return not self.problems


@cache
def _format_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(format_schema())


def lint_file(path: Path) -> LintReport:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SHEET_BYTES + 1)
    except OSError as exc:
        return LintReport(source=str(path), problems=[LintProblem(path="", message=f"cannot read: {exc.strerror}")])
    lock = path.parent / LOCK_NAME
    return lint_sheet(data, source=str(path), lock_text=lock.read_text("utf-8") if lock.is_file() else None)


def lint_sheet(data: bytes, *, source: str, lock_text: str | None = None) -> LintReport:
    def failed(*problems: LintProblem) -> LintReport:
        return LintReport(source=source, problems=list(problems))

    if len(data) > MAX_SHEET_BYTES:
        return failed(LintProblem(path="", message=f"{len(data)} bytes; a sheet may be at most {MAX_SHEET_BYTES}"))
    value, problem = _decode(data)
    if problem is not None:
        return failed(problem)
    errors = sorted(_format_validator().iter_errors(value), key=lambda e: (e.json_path, e.message))
    if errors:
        return failed(*(LintProblem(path=e.json_path, message=e.message) for e in errors[:MAX_FORMAT_ERRORS]))
    try:
        loaded = load_sheet(data, source=Path(source).name)
    except FlightSheetInvalid as exc:
        return failed(LintProblem(path="", message=str(exc)))
    key, digest = loaded.sheet.key, loaded.sha256
    if lock_text is None:
        return LintReport(source=source, problems=[], key=key, sha256=digest)
    try:
        pinned = read_lock(lock_text).get(key)
    except LockError as exc:
        return failed(LintProblem(path="", message=str(exc)))
    if pinned is not None and pinned != digest:
        message = f"{key} was published as {pinned}; this file hashes to {digest}: an edit needs a new version"
        return LintReport(source=source, problems=[LintProblem(path="$.version", message=message)], key=key)
    status = "published" if pinned else "unpublished"
    return LintReport(source=source, problems=[], key=key, sha256=digest, published=status)


def _decode(data: bytes) -> tuple[Any, LintProblem | None]:
    try:
        msgspec.json.decode(data)  # fast, strict, and gives the byte offset of a syntax error
    except msgspec.DecodeError as exc:
        return None, LintProblem(path="", message=f"not valid JSON: {_located(str(exc), data)}")
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                duplicates.append(k)
            seen[k] = v
        return seen

    value = json.loads(data, object_pairs_hook=pairs, parse_float=str, parse_int=str)
    if duplicates:
        shown = ", ".join(repr(k) for k in duplicates[:5])
        return None, LintProblem(path="", message=f"duplicate keys in one object: {shown}")
    if not isinstance(value, dict):
        return None, LintProblem(path="$", message="a flight sheet is a JSON object")
    return msgspec.json.decode(data), None


def _located(message: str, data: bytes) -> str:
    """msgspec says `(byte N)`; people read line and column."""
    match = _BYTE.search(message)
    if match is None:
        return message
    offset = int(match[1])
    before = data[:offset]
    line = before.count(b"\n") + 1
    column = offset - (before.rfind(b"\n") + 1) + 1
    return _BYTE.sub(f"(line {line}, column {column})", message)
