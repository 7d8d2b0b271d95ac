"""The `dataset_files` rule kind: the manifest's files are the evidence, read in full, as claimed.

One finding per manifest file: it names attached evidence whose sha256 the manifest
repeats, its bytes were fetched, it reads in its declared format, every record reads
(no ragged row, no byte that is not UTF-8, no over-long line), and the claimed `rows` is
the number of records the file holds. A media type the evidence was uploaded with that
names another format than the manifest's is flagged too.

One more finding when the manifest claims statistics that no rule of this sheet re-derives
(claim.OWNERS): each is a number a receipt would carry unchecked, so it is a high flag.
"""

from __future__ import annotations

from defendable_canonical.model import Finding
from defendable_referee.context import CheckContext
from defendable_referee.dataset.claim import OWNERS
from defendable_referee.dataset.manifest import MEDIA_TYPES, Manifest
from defendable_referee.dataset.params import FilesParams
from defendable_referee.dataset.report import plural, run
from defendable_referee.dataset.source import Dataset, FileView
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import Rule, params_for


def check_files(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, FilesParams)

    def body(manifest: Manifest, data: Dataset) -> list[Finding]:
        views = {v.entry.path: v for v in data.views}
        why = {u.entry.path: u.why for u in data.unbound}
        out = [
            _file(rule, params, views[f.path])
            if f.path in views
            else finding(rule, "flag", f"{f.path}: {why[f.path]}", tier="high")
            for f in manifest.files
        ]
        unowned = _unowned_claims(manifest, context)
        if unowned:
            out.append(
                finding(
                    rule,
                    "flag",
                    "claimed statistics this sheet does not re-derive: "
                    + listing([f"{name} (re-derived by {OWNERS[name]})" for name in unowned]),
                    tier="high",
                    observed=", ".join(unowned),
                )
            )
        return out

    return run(rule, context, body, need_files=False)


def _file(rule: Rule, params: FilesParams, view: FileView) -> Finding:
    probe = view.probe
    problems: list[str] = []
    if probe.records != view.entry.rows:
        problems.append(f"claims {view.entry.rows:,} rows, the file holds {plural(probe.records, 'record')}")
    if probe.rejected:
        kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(probe.rejected.items()))
        lines = ", ".join(f"{n:,}" for n in probe.reject_lines[: params.lines_reported])
        more = " (at least: DuckDB kept the first 100,000)" if probe.rejects_capped else ""
        problems.append(
            f"{plural(probe.rejected_total, 'record')}{more} of {probe.records:,} could not be read — {kinds}"
            + (f" — at line {lines}" if len(probe.reject_lines) == 1 else f" — at lines {lines}" if lines else "")
        )
    uploaded = MEDIA_TYPES.get(view.ref.media_type.strip().lower())
    if uploaded is not None and uploaded != view.format:
        problems.append(f"declared {view.entry.media_type} but the evidence was attached as {view.ref.media_type}")
    if problems:
        return finding(
            rule,
            "flag",
            f"{view.name}: " + "; ".join(problems),
            tier="high",
            observed=f"{probe.records} records, {probe.rejected_total} rejected",
            expected=f"{view.entry.rows} records, 0 rejected",
        )
    return finding(
        rule,
        "pass",
        f"{view.name}: {plural(probe.records, 'record')} read in full as {view.format.upper()}, as claimed;"
        f" sha256 matches evidence {view.ref.id}",
        observed=str(probe.records),
        expected=str(view.entry.rows),
    )


def _unowned_claims(manifest: Manifest, context: CheckContext) -> list[str]:
    kinds = {r.kind for r in context.sheet.rules}
    return [name for name in manifest.statistics.claimed() if OWNERS[name] not in kinds]
