"""The `dataset_class_balance` rule kind: each class's share within tolerance of its target, per split.

The label is the column with role "label". Targets are the manifest's `class_balance.shares`
(which must sum to 1), else uniform over the label's `allowed` values, else uniform over
the classes found in the split. The tolerance is the manifest's (at most the sheet's
`max_tolerance`) or the sheet's; the minimum class count is the larger of the sheet's and
the manifest's. Shares are of the records with a label; records without one are counted
and named in the message (the schema rule judges whether a label may be missing).

Findings: one per split (the whole dataset when no splits are declared); one for the
declared targets when they are inconsistent; one for the claimed class counts and shares.
Shares compare exactly (decimal arithmetic); messages show them to four places.
"""

from __future__ import annotations

from decimal import Decimal

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import Claims
from defendable_referee.dataset.manifest import Column, Manifest
from defendable_referee.dataset.params import ClassBalanceParams
from defendable_referee.dataset.report import plural, rate, run, settle, share_text
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident, scalar_text
from defendable_referee.findings import finding, listing
from defendable_referee.numeric import CONTEXT, fixed
from defendable_referee.sheet import Rule, params_for

ALL = "all"  # the split name of a dataset without splits, and of the whole in claims


def check_class_balance(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, ClassBalanceParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        labels = manifest.with_role("label")
        if not labels:
            return [finding(rule, "flag", "no column has role label: class balance cannot be measured")]
        return _balance(rule, params, manifest, data, labels[0])

    return run(rule, context, body)


def _balance(rule: Rule, params: ClassBalanceParams, manifest: Manifest, data: Dataset, label: Column) -> list[Finding]:
    out: list[Finding] = []
    declared = manifest.class_balance
    tolerance = Decimal(str(params.tolerance))
    if declared is not None and declared.tolerance is not None:
        if declared.tolerance > Decimal(str(params.max_tolerance)):
            out.append(
                finding(
                    rule,
                    "flag",
                    f"declared tolerance {fixed(declared.tolerance)} exceeds the sheet's ceiling"
                    f" {params.max_tolerance}; the ceiling applies",
                    observed=fixed(declared.tolerance),
                    expected=f"≤ {params.max_tolerance}",
                )
            )
            tolerance = Decimal(str(params.max_tolerance))
        else:
            tolerance = declared.tolerance
    least = max(params.min_class_count, (declared.min_class_count or 0) if declared else 0)
    targets: dict[str, Decimal] = {}
    if declared is not None and declared.shares:
        targets = dict(declared.shares)
        total = CONTEXT.add(Decimal(0), sum(targets.values(), Decimal(0)))
        if total != 1:
            out.append(
                finding(rule, "flag", f"declared class shares sum to {fixed(total)}, not 1", observed=fixed(total))
            )
    elif label.allowed:
        classes = sorted({scalar_text(v) for v in label.allowed})
        targets = {c: CONTEXT.divide(Decimal(1), Decimal(len(classes))) for c in classes}

    value = ident(label.name)
    distinct = data.query(f"SELECT count(DISTINCT {value}) FROM ({data.select([label])})")[0][0]
    if int(distinct) > params.max_classes:
        return [
            *out,
            finding(
                rule,
                "flag",
                f"label column {label.name} has {int(distinct):,} distinct values, more than the sheet's"
                f" {params.max_classes:,}: not a class label",
                observed=f"{int(distinct):,}",
            ),
        ]
    rows = data.query(f"SELECT __split, {value}, count(*) FROM ({data.select([label])}) GROUP BY ALL")
    counts: dict[str, dict[str, int]] = {}
    unlabeled: dict[str, int] = {}
    for split, cls, n in rows:
        name = ALL if split is None else str(split)
        if cls is None:
            unlabeled[name] = unlabeled.get(name, 0) + int(n)
        else:
            counts.setdefault(name, {})[str(cls)] = int(n)
    for split in sorted(set(counts) | set(unlabeled)):
        out.append(_split(rule, data, split, counts.get(split, {}), unlabeled.get(split, 0), targets, tolerance, least))
    claims = _claims(manifest, counts)
    if claims is not None:
        out.append(claims.result(rule) or finding(rule, "pass", "no class figures claimed"))
    return out


def _split(
    rule: Rule,
    data: Dataset,
    split: str,
    counts: dict[str, int],
    unlabeled: int,
    targets: dict[str, Decimal],
    tolerance: Decimal,
    least: int,
) -> Finding:
    labelled = sum(counts.values())
    goal = targets or ({c: CONTEXT.divide(Decimal(1), Decimal(len(counts))) for c in counts} if counts else {})
    where = f"split {split}" if split != ALL else "dataset"
    problems: list[str] = []
    if not labelled:
        problems.append("no labelled records")
    stray = sorted(set(counts) - set(goal))
    if stray:
        problems.append(f"classes not among the targets: {listing(stray)}")
    worst = Decimal(0)
    for cls in sorted(goal):
        share = rate(counts.get(cls, 0), labelled)
        gap = CONTEXT.abs(CONTEXT.subtract(share, goal[cls]))
        worst = max(worst, gap)
        if gap > tolerance:
            side = "above" if share > goal[cls] else "below"
            problems.append(
                f"class {cls} share {share_text(share)} is {share_text(gap)} {side} its target"
                f" {share_text(goal[cls])} (tolerance {fixed(tolerance)})"
            )
        if counts.get(cls, 0) < least:
            problems.append(f"class {cls} has {plural(counts.get(cls, 0), 'record')}, fewer than {least:,}")
    shares = ", ".join(f"{cls} {share_text(rate(n, labelled))}" for cls, n in sorted(counts.items())[:10])
    smallest = min(counts.values()) if counts else 0
    note = f"; {plural(unlabeled, 'record')} without a label" if unlabeled else ""
    summary = (
        f"{where}: {plural(len(counts), 'class', 'classes')} over {plural(labelled, 'labelled record')} ({shares})"
    )
    if problems:
        return settle(
            rule,
            data,
            False,
            f"{summary}: " + "; ".join(problems) + note,
            observed=share_text(worst),
            expected=f"≤ {fixed(tolerance)}",
        )
    return settle(
        rule,
        data,
        True,
        f"{summary}: every share within {fixed(tolerance)} of its target;"
        f" smallest class {smallest:,} ≥ {least:,}{note}",
        observed=share_text(worst),
        expected=f"≤ {fixed(tolerance)}",
    )


def _claims(manifest: Manifest, counts: dict[str, dict[str, int]]) -> Claims | None:
    stats = manifest.statistics
    if stats.class_counts is None and stats.class_shares is None:
        return None
    whole: dict[str, int] = {}
    for per in counts.values():
        for cls, n in per.items():
            whole[cls] = whole.get(cls, 0) + n
    by_split = {**counts, ALL: whole}
    claims = Claims("class figures")
    for split, claimed in (stats.class_counts or {}).items():
        derived = by_split.get(split)
        for cls, n in claimed.items():
            claims.count(f"{split}/{cls}", n, None if derived is None else derived.get(cls, 0), "no such split")
    for split, shares in (stats.class_shares or {}).items():
        derived = by_split.get(split)
        total = sum(derived.values()) if derived else 0
        for cls, share in shares.items():
            part = None if derived is None else derived.get(cls, 0)
            claims.rate(f"{split}/{cls} share", share, part, total, "no such split")
    return claims
