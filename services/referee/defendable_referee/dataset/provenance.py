"""The `dataset_provenance_completeness` rule kind: every file, or every record, says where it came from.

Croissant-style provenance (cr:source, contentUrl, license): a source URL, a license, and
where the sheet requires them, when (`collected_at`, ISO 8601) and how (`method`) the
data was collected.

* `provenance_level: "file"` — each manifest file's `provenance` carries every required
  field; one finding per file.
* `provenance_level: "record"` — every record carries a source (the column with role
  "source") and a license (role "license"): one finding per field, with the count of
  records lacking it and the first such rows. `collected_at` and `method`, if required,
  are still read from each file's provenance.

A source must be an absolute URI (scheme:rest, RFC 3986 §3); a date must parse as ISO 8601.
The sheet may refuse file-level provenance (`require_record_level`).
"""

from __future__ import annotations

import re
from datetime import date, datetime

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.manifest import FileEntry, Manifest, Role
from defendable_referee.dataset.params import ProvenanceParams
from defendable_referee.dataset.report import KEY_SQL, plural, row_names, rows_read, run, settle
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident, literal
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for

_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")  # RFC 3986 §3: scheme ":" hier-part
_URI_SQL = r"[A-Za-z][A-Za-z0-9+.-]*:\S+"
_RECORD_ROLES: dict[str, Role] = {"source_url": "source", "license": "license"}


def check_provenance(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, ProvenanceParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        if manifest.provenance_level == "file":
            out = [_file(rule, params, entry, data) for entry in manifest.files]
            if params.require_record_level:
                out.insert(
                    0,
                    finding(rule, "flag", "the sheet requires record-level provenance; the manifest gives it per file"),
                )
            return out
        return _records(rule, params, manifest, data)

    return run(rule, context, body)


def field_problem(name: str, value: str) -> str | None:
    """Why a provenance value does not count, or None."""
    text = value.strip()
    if not text:
        return f"no {name}"
    if name == "source_url" and _URI.fullmatch(text) is None:
        return "source_url is not an absolute URI"
    if name == "collected_at" and not _iso_date(text):
        return "collected_at is not an ISO 8601 date or time"
    return None


def _iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            date.fromisoformat(text)
        except ValueError:
            return False
    return True


def _file(rule: Rule, params: ProvenanceParams, entry: FileEntry, data: Dataset) -> Finding:
    given = entry.provenance
    if given is None:
        return finding(
            rule, "flag", f"{entry.path}: no provenance", observed="none", expected=", ".join(params.required)
        )
    problems = [p for name in params.required if (p := field_problem(name, getattr(given, name))) is not None]
    if problems:
        return finding(rule, "flag", f"{entry.path}: " + "; ".join(problems), observed=listing(problems))
    carried = ", ".join(params.required)
    return finding(rule, "pass", f"{entry.path}: provenance carries {carried}")


def _records(rule: Rule, params: ProvenanceParams, manifest: Manifest, data: Dataset) -> list[Finding]:
    out: list[Finding] = []
    for name in params.required:
        role = _RECORD_ROLES.get(name)
        if role is None:  # collected_at, method: per file even at record level
            for entry in manifest.files:
                value = getattr(entry.provenance, name) if entry.provenance is not None else ""
                problem = field_problem(name, value)
                if problem is not None:
                    out.append(finding(rule, "flag", f"{entry.path}: {problem}"))
                else:
                    out.append(finding(rule, "pass", f"{entry.path}: provenance carries {name}"))
            continue
        columns = manifest.with_role(role)
        if not columns:
            out.append(finding(rule, "flag", f"record-level provenance, but no column has role {role} ({name})"))
            continue
        column = columns[0]
        value = ident(column.name)
        lacking = f"{value} IS NULL OR trim({value}) = ''"
        if name == "source_url":
            lacking += f" OR NOT regexp_full_match(trim({value}), {literal(_URI_SQL)})"
        shown = params.rows_reported
        row = data.query(
            f"SELECT count(*) FILTER (WHERE {lacking}), min({KEY_SQL}, {shown}) FILTER (WHERE {lacking})"
            f" FROM ({data.select([column], rows=True)})"
        )[0]
        bad, keys = int(row[0]), [int(k) for k in row[1] or []]
        total = rows_read(data)
        what = "a source (absolute URI)" if name == "source_url" else "a license"
        if bad:
            out.append(
                settle(
                    rule,
                    data,
                    False,
                    f"{plural(bad, 'record')} of {total:,} lack {what} in column {column.name}"
                    f" ({row_names(data, keys)})",
                    observed=f"{bad:,}",
                    expected="0",
                )
            )
        else:
            out.append(settle(rule, data, True, f"all {plural(total, 'record')} carry {what} in column {column.name}"))
    return out
