"""What every Dataset check shares: opening the data, naming rows, wording counts and rates.

A check's shape (`run`): decode the manifest (a manifest that does not decode is one high
flag), open the files (none readable: one high flag), compute, and return findings. A
result computed while some manifest file could not be read, or some of its records were
rejected, never passes: it is "open", and says what was left out (the `dataset_files`
rule flags the cause itself).

Rows are named "train.csv row 17": the 1-based position among the records the file
yielded (for a CSV, after its header; rejected records are not counted; Parquet: the
file's own row number). Rejected records are named by their physical line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from defendable_canonical.model import Finding, Status
from defendable_referee.context import CheckContext
from defendable_referee.dataset import source
from defendable_referee.dataset.manifest import Column, Manifest, ManifestInvalid, read_manifest
from defendable_referee.dataset.source import Dataset, DatasetError
from defendable_referee.findings import finding
from defendable_referee.numeric import CONTEXT, fixed, round_half_up
from defendable_referee.sheet import Rule

ROW_KEY = 10_000_000_000  # sample keys are __file · ROW_KEY + __row: one BIGINT orders rows across files
KEY_SQL = f"(__file::BIGINT * {ROW_KEY} + __row)"

Body = Callable[[Manifest, Dataset], list[Finding]]


def run(rule: Rule, context: CheckContext, body: Body, *, need_files: bool = True) -> list[Finding]:
    try:
        manifest = read_manifest(context.document)
    except ManifestInvalid as exc:
        return [finding(rule, "flag", str(exc), tier="high")]
    try:
        with Dataset(manifest, context, source.DEFAULT_ENGINE) as data:
            if need_files and not data.views:
                why = "; ".join(f"{u.entry.path}: {u.why}" for u in data.unbound[:5])
                return [finding(rule, "flag", f"no manifest file can be read ({why})", tier="high")]
            return body(manifest, data)
    except DatasetError as exc:
        return [finding(rule, "flag", f"the data could not be read: {exc}", tier="high")]


def settle(
    rule: Rule,
    data: Dataset,
    ok: bool,
    message: str,
    *,
    observed: str | None = None,
    expected: str | None = None,
) -> Finding:
    """A pass that rests on incomplete data is open; a flag stays a flag."""
    status: Status = "flag"
    gaps = incomplete(data)
    if ok:
        status = "open" if gaps else "pass"
    if gaps:
        message += f" — over incomplete data: {gaps} (see dataset_files)"
    return finding(rule, status, message, observed=observed, expected=expected)


def incomplete(data: Dataset) -> str:
    parts = [f"{u.entry.path} unreadable" for u in data.unbound]
    parts += [
        f"{plural(v.probe.rejected_total, 'record')} of {v.name} rejected" for v in data.views if v.probe.rejected
    ]
    return ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")


def rows_read(data: Dataset) -> int:
    return sum(v.probe.read for v in data.views)


# -- wording --------------------------------------------------------------------


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def rate(part: int, whole: int) -> Decimal:
    return CONTEXT.divide(Decimal(part), Decimal(whole)) if whole else Decimal(0)


def share_text(value: Decimal, places: int = 4) -> str:
    return fixed(round_half_up(value, places))


def percent(part: int, whole: int) -> str:
    return fixed(round_half_up(CONTEXT.multiply(rate(part, whole), Decimal(100)), 2)) + "%"


def row_names(data: Dataset, keys: Sequence[int]) -> str:
    """'train.csv rows 4, 9; test.csv row 2' for sample keys (ROW_KEY-encoded)."""
    by_file: dict[int, list[int]] = {}
    for key in sorted(keys):
        by_file.setdefault(key // ROW_KEY, []).append(key % ROW_KEY)
    names = {v.index: v.name for v in data.views}
    parts = [
        f"{names.get(f, f'file {f}')} {'row' if len(rows) == 1 else 'rows'} {', '.join(f'{r:,}' for r in rows)}"
        for f, rows in by_file.items()
    ]
    return "; ".join(parts)


def column_label(column: Column) -> str:
    return f"column {column.name} ({column.type})"
