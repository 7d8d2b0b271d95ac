"""The `dataset_train_test_integrity` rule kind: no record, near-duplicate text or group key crosses splits.

Splits come from each file's `split` or from the column with role "split". With fewer
than two splits there is nothing to keep apart, and the findings are open.

* Exact: records equal in their content columns (duplicate.content_columns) found in more
  than one split.
* Near: pairs from the MinHash/LSH scan (scan.py) whose records lie in different splits.
* Group keys: for each column with role group_key, values found in more than one split
  (a user, a document, a patient must not be in train and test at once). Key values are
  not shown — they may be personal data — only the first rows that carry a shared key.
* Claims: `cross_split_duplicates` (records, by content, in more than one split) and
  `shared_group_keys` (over every group-key column).
"""

from __future__ import annotations

import numpy as np

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import Claims
from defendable_referee.dataset.duplicate import content_columns
from defendable_referee.dataset.manifest import Manifest
from defendable_referee.dataset.params import SplitIntegrityParams
from defendable_referee.dataset.report import KEY_SQL, plural, row_names, run, settle
from defendable_referee.dataset.scan import scan_text
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def check_split_integrity(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, SplitIntegrityParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        return _integrity(rule, params, manifest, data)

    return run(rule, context, body)


def _integrity(rule: Rule, params: SplitIntegrityParams, manifest: Manifest, data: Dataset) -> list[Finding]:
    splits = sorted(
        str(r[0]) for r in data.query(f"SELECT DISTINCT __split FROM ({data.select([])})") if r[0] is not None
    )
    if len(splits) < 2:
        found = f"only split {splits[0]}" if splits else "no split"
        return [
            finding(rule, "open", f"{found} declared (per file or by a column with role split): nothing to keep apart")
        ]
    shown = params.rows_reported
    named = f"splits {listing(splits)}"
    out: list[Finding] = []
    # exact
    columns = content_columns(manifest)
    names = ", ".join(ident(c.name) for c in columns)
    shared, keys = _shared(data, data.select(columns), data.select(columns, rows=True), names, "TRUE", shown)
    text = f"exact records across {named}: {plural(shared, 'record')} found in more than one split"
    if shared:
        text += f" (first: {row_names(data, keys)})"
    out.append(settle(rule, data, not shared, text, observed=str(shared), expected="0"))
    # near
    if params.near_duplicates:
        scan = scan_text(
            manifest,
            data,
            threshold=params.jaccard_threshold,
            num_perm=params.num_perm,
            shingle_words=params.shingle_words,
            max_rows=params.max_rows_scanned,
        )
        if scan is None:
            out.append(finding(rule, "pass", "no column has role text: cross-split near-duplicate scan not applicable"))
        else:
            pairs = scan.near.pairs
            across = pairs[scan.splits[pairs[:, 0]] != scan.splits[pairs[:, 1]]] if len(pairs) else pairs
            text = f"{scan.method()}: {plural(len(across), 'near-duplicate pair')} across {named}"
            if len(across):
                involved = len(np.unique(across))
                order = np.argsort(across[:, 1], kind="stable")[:shown]
                sample = "; ".join(
                    f"{row_names(data, [scan.key(int(across[i, 1]))])}"
                    f" ~ {row_names(data, [scan.key(int(across[i, 0]))])}"
                    for i in order
                )
                text += f" involving {plural(involved, 'record')} (e.g. {sample})"
            if scan.capped:
                text += " — a capped scan: pairs beyond the cap are not seen"
            ok = not len(across) and not scan.capped
            out.append(settle(rule, data, ok, text, observed=str(len(across)), expected="0"))
    # group keys
    keys_total = 0
    group_keys = manifest.with_role("group_key")
    for column in group_keys:
        value = ident(column.name)
        n, first = _shared(
            data, data.select([column]), data.select([column], rows=True), value, f"{value} IS NOT NULL", shown
        )
        keys_total += n
        text = f"group key {column.name}: {plural(n, 'value')} found in more than one of {named}"
        if n:
            text += f" (first rows carrying one: {row_names(data, first)})"
        out.append(settle(rule, data, not n, text, observed=str(n), expected="0"))
    if not group_keys:
        out.append(finding(rule, "pass", "no column has role group_key: no group keys to keep apart"))
    claims = Claims("cross-split figures")
    stats = manifest.statistics
    if stats.cross_split_duplicates is not None:
        claims.count("cross_split_duplicates", stats.cross_split_duplicates, shared)
    if stats.shared_group_keys is not None:
        claims.count(
            "shared_group_keys", stats.shared_group_keys, keys_total if group_keys else None, "no group key declared"
        )
    result = claims.result(rule)
    return out + ([result] if result is not None else [])


def _shared(data: Dataset, plain: str, numbered: str, by: str, where: str, shown: int) -> tuple[int, list[int]]:
    """(groups of `by` found in more than one split, the first rows of the first such groups):
    counted without row numbers, numbered only when there is something to show."""
    counted = f"SELECT 1 FROM ({plain}) WHERE {where} GROUP BY {by} HAVING count(DISTINCT __split) > 1"
    n = int(data.query(f"SELECT count(*) FROM ({counted})")[0][0])
    if not n:
        return 0, []
    firsts = (
        f"SELECT min({KEY_SQL}) AS k FROM ({numbered}) WHERE {where} GROUP BY {by} HAVING count(DISTINCT __split) > 1"
    )
    return n, [int(k) for k in data.query(f"SELECT min(k, {shown}) FROM ({firsts})")[0][0] or []]
