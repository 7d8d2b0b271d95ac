"""The submission's JSON Schema check, compiled once per schema (jsonschema-rs).

Why not the `jsonschema` package here: it re-walks the schema on every
validation, which took ~2.7 ms of the ~3.6 ms a CRE memo check cost (73 %);
jsonschema-rs validates the same memo in ~5 µs. It is the validator of
record for submissions: validity and the error list both come from it, so
the two can never disagree. Its regexes are ECMA-262-like (`\\d` is ASCII
digits, as JSON Schema intends); a pattern it cannot compile is refused when
the sheet loads. `jsonschema` still checks sheets against the 2020-12
meta-schema at load, where speed does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema_rs
import msgspec

MAX_CACHED = 256
_compiled: dict[bytes, Any] = {}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def compiled(schema: dict[str, Any]) -> Any:
    """A validator for `schema`, reused for every submission checked against it."""
    key = msgspec.json.encode(schema)
    validator = _compiled.get(key)
    if validator is None:
        if len(_compiled) >= MAX_CACHED:  # sheets are few; a bound keeps test-made ones from piling up
            _compiled.clear()
        validator = _compiled[key] = jsonschema_rs.validator_for(schema)
    return validator


def compile_problem(schema: dict[str, Any]) -> str | None:
    """Why the schema cannot be compiled (for the loader), or None."""
    try:
        compiled(schema)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        return str(exc).splitlines()[0]
    return None


def errors(schema: dict[str, Any], document: object) -> Iterator[tuple[str, str]]:
    """(JSON path, message) per error, in the validator's order; nothing when the document is valid."""
    validator = compiled(schema)
    if validator.is_valid(document):
        return
    for error in validator.iter_errors(document):
        yield json_path(error.instance_path), error.message


def json_path(parts: Sequence[str | int]) -> str:
    """`["calculations", 0, "result"]` -> `$.calculations[0].result`."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += "[" + msgspec.json.encode(part).decode() + "]"
    return out
