"""The `dataset_duplicate_detection` rule kind: exact duplicate records and near-duplicate texts.

* Exact: records equal in every declared column but those with role id or split (a
  unique id would make every copy look distinct), over every record read — DuckDB
  groups them with bounded memory. Rows a deduplication would remove, over all rows,
  against `max_exact_rate`.
* Near: the MinHash/LSH scan over the text columns (scan.py), at the sheet's Jaccard
  threshold; rows in near-duplicate clusters beyond one per cluster, over the rows
  scanned, against `max_near_rate`. No text column: the finding says so.
* Claims: `exact_duplicate_rows` and `near_duplicate_rows` — the latter is derivable only
  when the scan covered every record.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import Claims
from defendable_referee.dataset.manifest import Column, Manifest
from defendable_referee.dataset.params import DuplicateParams
from defendable_referee.dataset.report import (
    KEY_SQL,
    percent,
    plural,
    rate,
    row_names,
    rows_read,
    run,
    settle,
    share_text,
)
from defendable_referee.dataset.scan import TextScan, scan_text
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident
from defendable_referee.findings import finding
from defendable_referee.sheet import Rule, params_for


def content_columns(manifest: Manifest) -> list[Column]:
    """The columns two records must agree on to be the same record."""
    content = [c for c in manifest.columns if c.role not in ("id", "split")]
    return content or list(manifest.columns)


def check_duplicates(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, DuplicateParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        exact, exact_rows = _exact(rule, params, manifest, data)
        scan = scan_text(
            manifest,
            data,
            threshold=params.jaccard_threshold,
            num_perm=params.num_perm,
            shingle_words=params.shingle_words,
            max_rows=params.max_rows_scanned,
        )
        near, near_rows = _near(rule, params, data, scan)
        out = [exact, near]
        claims = Claims("duplicate counts")
        stats = manifest.statistics
        if stats.exact_duplicate_rows is not None:
            claims.count("exact_duplicate_rows", stats.exact_duplicate_rows, exact_rows)
        if stats.near_duplicate_rows is not None:
            why = (
                "no column has role text"
                if scan is None
                else f"the scan covered {scan.scanned:,} of {scan.total:,} records"
            )
            derivable = scan is not None and not scan.capped
            claims.count("near_duplicate_rows", stats.near_duplicate_rows, near_rows if derivable else None, why)
        result = claims.result(rule)
        return out + ([result] if result is not None else [])

    return run(rule, context, body)


def _exact(rule: Rule, params: DuplicateParams, manifest: Manifest, data: Dataset) -> tuple[Finding, int]:
    columns = content_columns(manifest)
    names = ", ".join(ident(c.name) for c in columns)
    shown = params.rows_reported
    counted = f"SELECT count(*) AS n FROM ({data.select(columns)}) GROUP BY {names} HAVING count(*) > 1"
    groups, extra = (int(v) for v in data.query(f"SELECT count(*), coalesce(sum(n - 1), 0) FROM ({counted})")[0])
    keys: list[int] = []
    if extra:  # the first repeats' rows: a second pass, numbered (only when there is something to show)
        firsts = (
            f"SELECT unnest((min({KEY_SQL}, {shown + 1}))[2:]) AS d FROM ({data.select(columns, rows=True)})"
            f" GROUP BY {names} HAVING count(*) > 1"
        )
        keys = [int(k) for k in data.query(f"SELECT min(d, {shown}) FROM ({firsts})")[0][0] or []]
    total = rows_read(data)
    share = rate(extra, total)
    ignored = [c.name for c in manifest.columns if c not in columns]
    basis = f"equal in {plural(len(columns), 'column')}" + (f" (ignoring {', '.join(ignored)})" if ignored else "")
    limit = params.max_exact_rate
    text = (
        f"exact duplicates ({basis}): {plural(extra, 'record')} repeat an earlier one,"
        f" {percent(extra, total)} of {total:,}"
    )
    if extra:
        text += f", in {plural(groups, 'group')} (first repeats: {row_names(data, keys)})"
    text += f"; at most {limit} allowed"
    ok = share <= Decimal(str(limit))
    return settle(rule, data, ok, text, observed=share_text(share), expected=f"≤ {limit}"), extra


def _near(rule: Rule, params: DuplicateParams, data: Dataset, scan: TextScan | None) -> tuple[Finding, int]:
    if scan is None:
        return finding(rule, "pass", "no column has role text: near-duplicate scan not applicable"), 0
    removable = scan.near.duplicate_rows()
    share = rate(removable, scan.scanned)
    limit = params.max_near_rate
    text = f"{scan.method()}: {plural(removable, 'near-duplicate record')}, {percent(removable, scan.scanned)}"
    pairs = scan.near.pairs
    if len(pairs):
        order = np.argsort(pairs[:, 1], kind="stable")[: params.rows_reported]
        shown = "; ".join(
            f"{row_names(data, [scan.key(int(pairs[i, 1]))])} ~ {row_names(data, [scan.key(int(pairs[i, 0]))])}"
            f" ({scan.near.similarity[i]:.2f})"
            for i in order
        )
        text += f" (e.g. {shown})"
    text += f"; at most {limit} allowed"
    ok = share <= Decimal(str(limit))
    return settle(rule, data, ok, text, observed=share_text(share), expected=f"≤ {limit}"), removable
