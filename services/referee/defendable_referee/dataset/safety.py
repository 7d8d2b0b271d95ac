"""The `dataset_content_safety_scan` rule kind: personal data and secrets in the data's string values.

Every string value is scanned — the columns declared `string`, and any column a file
carries that the schema does not declare — by the detectors the sheet names (pii.py).
DuckDB extracts candidates (one pattern: the detectors' as alternatives) and groups them
by value; each distinct candidate is confirmed once in Python (checksum or
rule), so the cost in Python grows with distinct candidates, not rows. Phone numbers are
the slow confirmation (~80 µs each): past `max_phone_checks` distinct candidates, the
rest are counted as phone numbers unconfirmed, and the message says how many.

Findings: one per detector — how many matches were confirmed, against the sheet's
`max_matches` for that type (default 0) — with redacted samples and their rows; one for
the claimed `pii_counts`. No finding carries a matched value: only its redaction.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import Claims
from defendable_referee.dataset.manifest import Column, Manifest
from defendable_referee.dataset.params import ContentSafetyParams
from defendable_referee.dataset.pii import DETECTORS, PiiType
from defendable_referee.dataset.report import KEY_SQL, plural, row_names, rows_read, run, settle
from defendable_referee.dataset.source import Dataset
from defendable_referee.dataset.sql import ident, literal
from defendable_referee.sheet import Rule, params_for

# The order the detectors' patterns are tried in: the most specific first.
_ORDER: tuple[PiiType, ...] = ("secret", "email", "iban", "us_ssn", "payment_card", "phone")


@dataclass
class Tally:
    matches: int = 0
    unconfirmed: int = 0  # phone candidates past the confirmation budget, counted as matches
    samples: list[tuple[int, str]] = field(default_factory=list)  # (row key, redaction), a max-heap by key


def check_content_safety(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, ContentSafetyParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        return _scan(rule, params, manifest, data)

    return run(rule, context, body)


def scanned_columns(manifest: Manifest, data: Dataset) -> list[Column]:
    """Declared string columns, then undeclared columns in file order: everything that holds text."""
    declared = {c.name for c in manifest.columns}
    columns = [c for c in manifest.columns if c.type == "string" and any(v.has(c.name) for v in data.views)]
    extra: list[str] = []
    for view in data.views:
        extra += [n for n in view.probe.columns if n not in declared and n not in extra]
    return columns + [Column(name=n, type="string") for n in extra]


def _scan(rule: Rule, params: ContentSafetyParams, manifest: Manifest, data: Dataset) -> list[Finding]:
    columns = scanned_columns(manifest, data)
    tallies = {t: Tally() for t in params.detectors}
    if columns:
        _tally(params, data, columns, tallies)
    total = rows_read(data)
    where = f"{plural(len(columns), 'string column')} of {plural(total, 'record')}"
    out: list[Finding] = []
    for pii_type in params.detectors:
        detector, tally = DETECTORS[pii_type], tallies[pii_type]
        limit = params.max_matches.get(pii_type, 0)
        samples = sorted((-negated, text) for negated, text in tally.samples)
        shown = ", ".join(f"{text} ({row_names(data, [key])})" for key, text in samples)
        unconfirmed = (
            f" ({tally.unconfirmed:,} of them past the {params.max_phone_checks:,} confirmations budget,"
            " counted unconfirmed)"
            if tally.unconfirmed
            else ""
        )
        message = (
            f"{detector.label}: {plural(tally.matches, 'match', 'matches')}{unconfirmed} in {where}"
            f" ({'pattern only' if detector.checksum == 'pattern' else 'pattern, then ' + detector.checksum});"
            f" at most {limit:,} allowed"
        )
        if shown:
            message += f"; e.g. {shown}"
        out.append(
            settle(rule, data, tally.matches <= limit, message, observed=str(tally.matches), expected=f"≤ {limit}")
        )
    claimed = manifest.statistics.pii_counts
    if claimed is not None:
        claims = Claims("personal-data counts")
        for name, n in claimed.items():
            derived = next((t.matches for kind, t in tallies.items() if kind == name), None)
            claims.count(name, n, derived, "no detector of this sheet counts it")
        result = claims.result(rule)
        if result is not None:
            out.append(result)
    return out


def _tally(params: ContentSafetyParams, data: Dataset, columns: list[Column], tallies: dict[PiiType, Tally]) -> None:
    """1. DuckDB: every candidate, by value, with its count and first row — one pattern per
    value, the detectors' patterns as alternatives (leftmost match wins, so an IBAN's digits
    are not also read as a card number); 2. Python: each distinct candidate is classified by
    the first detector whose pattern matches it whole, then confirmed once; only redacted
    samples are kept."""
    # 1.
    combined = literal("|".join(f"(?:{DETECTORS[t].pattern})" for t in _ORDER if t in tallies))
    found = "flatten([" + ", ".join(f"regexp_extract_all({ident(c.name)}, {combined})" for c in columns) + "])"
    candidates = f"SELECT {KEY_SQL} AS key, {found} AS found FROM ({data.select(columns, rows=True)})"
    grouped = (
        "SELECT m, count(*) AS n, min(key) AS first FROM"
        f" (SELECT key, unnest(found) AS m FROM ({candidates}) WHERE len(found) > 0) GROUP BY m"
    )
    # 2.
    patterns = [(t, re.compile(DETECTORS[t].pattern, re.ASCII)) for t in _ORDER if t in tallies]
    phone_checks = 0
    for batch in data.batches(grouped):
        values, counts, firsts = (batch.column(i).to_pylist() for i in range(3))
        for value, n, first in zip(values, counts, firsts, strict=True):
            kind = next((t for t, pattern in patterns if pattern.fullmatch(value)), None)
            if kind is None:  # a boundary the whole-value match reads differently: not counted
                continue
            detector, tally = DETECTORS[kind], tallies[kind]
            if kind == "phone":
                if phone_checks >= params.max_phone_checks:
                    tally.matches += int(n)
                    tally.unconfirmed += int(n)
                    _sample(tally, int(first), detector.redact(value), params.samples)
                    continue
                phone_checks += 1
            if detector.confirm(value, params.phone_region):
                tally.matches += int(n)
                _sample(tally, int(first), detector.redact(value), params.samples)


def _sample(tally: Tally, key: int, redacted: str, keep: int) -> None:
    """Keep the `keep` earliest rows' redactions (a heap on −key: the latest is evicted first)."""
    if keep <= 0:
        return
    item = (-key, redacted)
    if len(tally.samples) < keep:
        heapq.heappush(tally.samples, item)
    elif item > tally.samples[0]:
        heapq.heapreplace(tally.samples, item)
