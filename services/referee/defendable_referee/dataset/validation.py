"""The `dataset_schema_validation` rule kind: every record matches the declared schema.

Findings: one per readable file for its structure — the declared columns are there, no
undeclared ones (unless `additional_columns`), a Parquet file's physical types agree with
the declared ones (a file whose schema lies is flagged even where its values happen to
parse), every record read (ragged rows and bytes that are not UTF-8 are records that do
not match) — and one per declared column, over every file: values of the declared type,
no missing value where not nullable, only allowed values, within min/max, no repeated
value where unique. Each violation carries its count and the first offending rows.

One aggregate pass over the data covers every column's type, nullability, allowed values
and range (counts and sample rows together: DuckDB's `min(key, n)`); each unique column
costs one grouped pass more.
"""

from __future__ import annotations

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.manifest import Column, Manifest
from defendable_referee.dataset.params import SchemaValidationParams
from defendable_referee.dataset.report import KEY_SQL, column_label, plural, row_names, run, settle
from defendable_referee.dataset.source import IS_OBJECT, Dataset, FileView
from defendable_referee.dataset.sql import (
    PARQUET_TYPES,
    ident,
    literal,
    number_text,
    parquet_type_family,
    scalar_text,
    sentinel_test,
)
from defendable_referee.findings import finding, listing
from defendable_referee.numeric import fixed
from defendable_referee.sheet import Rule, params_for


def check_schema_validation(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, SchemaValidationParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        out = [_structure(rule, manifest, data, view, params) for view in data.views]
        return out + _columns(rule, manifest, data, params)

    return run(rule, context, body)


# -- per file -----------------------------------------------------------------------


def _structure(
    rule: Rule, manifest: Manifest, data: Dataset, view: FileView, params: SchemaValidationParams
) -> Finding:
    declared = [c.name for c in manifest.columns]
    problems: list[str] = []
    absent = [n for n in declared if not view.has(n)]
    if absent:
        where = "no record carries key" if view.format == "jsonl" else "missing declared column"
        problems.append(f"{where}{'s' if len(absent) > 1 else ''} {listing(absent)}")
    extra = [n for n in view.probe.columns if n not in declared]
    if extra and not manifest.data_schema.additional_columns:
        capped = " (of the first 1,000 keys)" if view.probe.undeclared_keys_capped else ""
        if view.format == "jsonl":
            rows = _rows_with_keys(data, view, declared, params.rows_reported)
            problems.append(f"undeclared keys {listing(extra)}{capped} in {rows}")
        else:
            problems.append(f"undeclared column{'s' if len(extra) > 1 else ''} {listing(extra)}")
    if view.format == "parquet":
        lies = []
        for column in manifest.columns:
            physical = view.probe.types.get(column.name)
            if physical is not None and parquet_type_family(physical) not in PARQUET_TYPES[column.type]:
                lies.append(f"{column.name} declared {column.type}, stored as {physical}")
        if lies:
            problems.append("the file's schema contradicts the declared one: " + listing(lies))
    probe = view.probe
    if probe.rejected:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(probe.rejected.items()))
        lines = ", ".join(f"{n:,}" for n in probe.reject_lines[: params.rows_reported])
        problems.append(f"{plural(probe.rejected_total, 'record')} do not read ({kinds}; line {lines})")
    if problems:
        return finding(
            rule,
            "flag",
            f"{view.name}: " + "; ".join(problems),
            observed=f"{len(problems)} structural problems",
            expected="0",
        )
    return finding(
        rule,
        "pass",
        f"{view.name}: all {len(declared)} declared columns present, no others; {plural(probe.read, 'record')} read",
    )


def _rows_with_keys(data: Dataset, view: FileView, declared: list[str], shown: int) -> str:
    """'12 records (rows 3, 9)': JSON Lines records carrying keys the schema does not declare."""
    names = "[" + ", ".join(literal(n) for n in declared) + "]::VARCHAR[]"
    lines = data.lines_scan(view)
    row = data.query(
        f"SELECT count(*), min(__row, {shown}) FROM (SELECT row_number() OVER () AS __row, line FROM {lines})"
        f" WHERE ({IS_OBJECT})"
        f" AND len(list_filter(json_keys(line), lambda k: NOT list_contains({names}, k))) > 0"
    )[0]
    rows = sorted(int(r) for r in (row[1] or []))
    return f"{plural(int(row[0]), 'record')} (row{'s' if len(rows) > 1 else ''} {', '.join(f'{r:,}' for r in rows)})"


# -- per column ---------------------------------------------------------------------


def _columns(rule: Rule, manifest: Manifest, data: Dataset, params: SchemaValidationParams) -> list[Finding]:
    columns = manifest.columns
    shown = params.rows_reported
    checks: list[tuple[int, str, str]] = []  # (column index, violation, SQL predicate)
    for i, column in enumerate(columns):
        value = ident(column.name)
        having = [v.index for v in data.views if v.has(column.name)]
        if not having:
            continue
        missing = _missing(manifest, column)
        ok = f"({ident('__ok:' + column.name)} OR {missing})"
        checks.append((i, f"not {column.type}", f"NOT {ok}"))
        if not column.nullable:
            files = ", ".join(str(f) for f in having)
            checks.append((i, "missing but not nullable", f"{missing} AND __file IN ({files})"))
        if column.allowed is not None:
            checks.append((i, "not an allowed value", f"NOT {missing} AND {ok} AND NOT ({_allowed(column)})"))
        if column.min is not None or column.max is not None:
            number = f"TRY_CAST({value} AS DOUBLE)"
            bounds = []
            if column.min is not None:
                bounds.append(f"{number} < TRY_CAST({literal(fixed(column.min))} AS DOUBLE)")
            if column.max is not None:
                bounds.append(f"{number} > TRY_CAST({literal(fixed(column.max))} AS DOUBLE)")
            checks.append((i, f"outside {_range(column)}", f"NOT {missing} AND {ok} AND ({' OR '.join(bounds)})"))
    found: dict[int, list[tuple[str, int, list[int]]]] = {}
    if checks:
        # Counts first, without row numbers (a window over the scan costs); rows only for what failed.
        counts = data.query(
            f"SELECT {', '.join(f'count(*) FILTER (WHERE {p})' for _, _, p in checks)}"
            f" FROM ({data.select(columns, types=True)})"
        )[0]
        failed = [(check, int(n)) for check, n in zip(checks, counts, strict=True) if n]
        if failed:
            samples = ", ".join(f"min({KEY_SQL}, {shown}) FILTER (WHERE {p})" for (_, _, p), _ in failed)
            keys = data.query(f"SELECT {samples} FROM ({data.select(columns, rows=True, types=True)})")[0]
            for ((i, what, _), n), sample in zip(failed, keys, strict=True):
                found.setdefault(i, []).append((what, n, [int(k) for k in sample or []]))
    for i, column in enumerate(columns):
        if column.unique and any(v.has(column.name) for v in data.views):
            repeated = _repeated(data, column, _missing(manifest, column), shown)
            if repeated is not None:
                found.setdefault(i, []).append(repeated)
    out = []
    for i, column in enumerate(columns):
        if not any(v.has(column.name) for v in data.views):
            out.append(finding(rule, "flag", f"{column_label(column)}: in no readable file", observed="absent"))
            continue
        problems = found.get(i, [])
        if not problems:
            out.append(settle(rule, data, True, f"{_describe(column)}: every value matches"))
            continue
        text = "; ".join(f"{plural(count, 'value')} {what} ({row_names(data, keys)})" for what, count, keys in problems)
        total = sum(count for _, count, _ in problems)
        out.append(settle(rule, data, False, f"{_describe(column)}: {text}", observed=f"{total:,}", expected="0"))
    return out


def _missing(manifest: Manifest, column: Column) -> str:
    """SQL: the column's value is missing — NULL, or a declared missing-value sentinel (-999 is
    not a value to type-check, range-check or find repeated)."""
    value = ident(column.name)
    sentinels = [*manifest.missing_values, *column.missing_values]
    return f"({value} IS NULL OR {sentinel_test(value, column.type, sentinels)})" if sentinels else f"{value} IS NULL"


def _repeated(data: Dataset, column: Column, missing: str, shown: int) -> tuple[str, int, list[int]] | None:
    """(what, rows, first repeats) for a unique column's values that occur more than once."""
    value = ident(column.name)
    key = {
        "integer": f"CAST(TRY_CAST({value} AS HUGEINT) AS VARCHAR)",
        "number": f"CAST(TRY_CAST({value} AS DOUBLE) AS VARCHAR)",
    }
    group_key = f"coalesce({key[column.type]}, {value})" if column.type in key else value
    counted = (
        f"SELECT count(*) AS n FROM ({data.select([column])}) WHERE NOT {missing}"
        f" GROUP BY {group_key} HAVING count(*) > 1"
    )
    groups, rows = (int(v) for v in data.query(f"SELECT count(*), coalesce(sum(n), 0) FROM ({counted})")[0])
    if not groups:
        return None
    firsts = (
        f"SELECT unnest((min({KEY_SQL}, {shown + 1}))[2:]) AS d FROM ({data.select([column], rows=True)})"
        f" WHERE NOT {missing} GROUP BY {group_key} HAVING count(*) > 1"
    )
    keys = data.query(f"SELECT min(d, {shown}) FROM ({firsts})")[0][0] or []
    what = f"repeat an earlier value in a unique column ({plural(groups, 'distinct value')})"
    return (what, rows - groups, [int(k) for k in keys])


def _allowed(column: Column) -> str:
    value = ident(column.name)
    allowed = column.allowed or []
    if column.type == "boolean":
        norm = f"CASE lower(trim({value})) WHEN '1' THEN 'true' WHEN '0' THEN 'false' ELSE lower(trim({value})) END"
        return f"{norm} IN ({', '.join(literal(scalar_text(v).lower()) for v in allowed) or 'NULL'})"
    texts = ", ".join(literal(scalar_text(v)) for v in allowed) or "NULL"
    test = f"{value} IN ({texts})"
    if column.type in ("integer", "number"):
        numbers = [n for v in allowed if (n := number_text(v)) is not None]
        if numbers:
            doubles = ", ".join(f"TRY_CAST({literal(n)} AS DOUBLE)" for n in numbers)
            test = f"({test} OR TRY_CAST({value} AS DOUBLE) IN ({doubles}))"
    return test


def _range(column: Column) -> str:
    low = fixed(column.min) if column.min is not None else "−∞"
    high = fixed(column.max) if column.max is not None else "∞"
    return f"[{low}, {high}]"


def _describe(column: Column) -> str:
    traits = [column.type] + (["not nullable"] if not column.nullable else []) + (["unique"] if column.unique else [])
    if column.allowed is not None:
        traits.append(f"{plural(len(column.allowed), 'allowed value')}")
    if column.min is not None or column.max is not None:
        traits.append(_range(column))
    return f"column {column.name} ({', '.join(traits)})"
