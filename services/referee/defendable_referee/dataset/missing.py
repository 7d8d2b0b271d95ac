"""The `dataset_missing_value_audit` rule kind: per-column missing rates within their bounds.

A value is missing when it is absent (empty CSV field, JSON null or absent key, Parquet
null), blank, or a sentinel: the sheet's (`sentinels`), the manifest's dataset-wide
`missing_values`, and the column's own `missing_values`. A numeric sentinel (-999) also
matches its numeric spellings in a numeric column ("-999.0"). A column's bound is its
declared `max_missing_rate` (at most the sheet's `max_declared_rate`), else the sheet's
`max_rate`. The rate's denominator is every record read.

Findings: one per declared column, with the count by cause (absent / blank / sentinel);
one for the claimed missing counts and rates. One pass over the data for every column.
"""

from __future__ import annotations

from decimal import Decimal

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import Claims
from defendable_referee.dataset.manifest import Column, Manifest
from defendable_referee.dataset.params import MissingValueParams
from defendable_referee.dataset.report import percent, rate, rows_read, run, settle, share_text
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident, scalar_text, sentinel_test
from defendable_referee.findings import finding
from defendable_referee.numeric import fixed
from defendable_referee.sheet import Rule, params_for


def check_missing_values(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, MissingValueParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        return _audit(rule, params, manifest, data)

    return run(rule, context, body)


def _sentinels(params: MissingValueParams, manifest: Manifest, column: Column) -> list[object]:
    seen: list[object] = []
    for value in [*params.sentinels, *manifest.missing_values, *column.missing_values]:
        if scalar_text(value).strip() and value not in seen:
            seen.append(value)
    return seen


def _predicates(column: Column, sentinels: list[object]) -> tuple[str, str, str]:
    """SQL (absent, blank, sentinel) for one column's text form."""
    value = ident(column.name)
    return f"{value} IS NULL", f"trim({value}) = ''", sentinel_test(value, column.type, sentinels)


def _audit(rule: Rule, params: MissingValueParams, manifest: Manifest, data: Dataset) -> list[Finding]:
    out: list[Finding] = []
    columns = manifest.columns
    ceiling = Decimal(str(params.max_declared_rate))
    aggregates: list[str] = []
    for column in columns:
        absent, blank, sentinel = _predicates(column, _sentinels(params, manifest, column))
        aggregates += [
            f"count(*) FILTER (WHERE {absent})",
            f"count(*) FILTER (WHERE NOT {absent} AND {blank})",
            f"count(*) FILTER (WHERE NOT {absent} AND NOT {blank} AND {sentinel})",
        ]
    row = data.query(f"SELECT count(*), {', '.join(aggregates)} FROM ({data.select(columns)})")[0]
    total = int(row[0])
    assert total == rows_read(data), "every record read is counted"
    missing: dict[str, int] = {}
    for i, column in enumerate(columns):
        n_absent, n_blank, n_sentinel = (int(v) for v in row[1 + 3 * i : 4 + 3 * i])
        n = n_absent + n_blank + n_sentinel
        missing[column.name] = n
        bound = Decimal(str(params.max_rate))
        note = ""
        if column.max_missing_rate is not None:
            if column.max_missing_rate > ceiling:
                note = f"; declared bound {fixed(column.max_missing_rate)} exceeds the sheet's ceiling {fixed(ceiling)}"
                bound = ceiling
            else:
                bound = column.max_missing_rate
        causes = ", ".join(
            f"{k:,} {what}" for k, what in ((n_absent, "absent"), (n_blank, "blank"), (n_sentinel, "sentinel")) if k
        )
        share = rate(n, total)
        ok = share <= bound and not note
        text = (
            f"column {column.name}: {percent(n, total)} missing ({n:,} of {total:,}"
            f"{': ' + causes if causes else ''}) {'within' if share <= bound else 'above'} the bound"
            f" {fixed(bound)}{note}"
        )
        out.append(settle(rule, data, ok, text, observed=share_text(share), expected=f"≤ {fixed(bound)}"))
    claims = Claims("missing-value figures")
    stats = manifest.statistics
    for name, claimed in (stats.missing_counts or {}).items():
        claims.count(name, claimed, missing.get(name), "not a declared column")
    for name, claimed_rate in (stats.missing_rates or {}).items():
        claims.rate(f"{name} rate", claimed_rate, missing.get(name), total, "not a declared column")
    result = claims.result(rule)
    if result is not None:
        out.append(result)
    if not out:
        out.append(finding(rule, "flag", "the schema declares no columns"))
    return out
