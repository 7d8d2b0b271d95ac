"""`defendable flight-sheet lint | publish`: the library as files a person edits."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from defendable_referee.errors import FlightSheetInvalid
from defendable_referee.lint import LintReport, lint_file
from defendable_referee.publication import LOCK_NAME, appended_lock
from defendable_referee.sheet import load_sheet, packaged_directory


def lint_files(paths: list[Path], *, as_json: bool) -> int:
    """Exit 0 when every file is clean, 1 when any has a problem."""
    reports = [lint_file(path) for path in paths]
    if as_json:
        sys.stdout.buffer.write(msgspec.json.encode(reports) + b"\n")
    else:
        for report in reports:
            _print(report)
    return 0 if all(r.ok for r in reports) else 1


def _print(report: LintReport) -> None:
    if report.ok:
        state = f", {report.published}" if report.published else ""
        print(f"{report.source}: ok — {report.key} {report.sha256}{state}")
        return
    count = len(report.problems)
    print(f"{report.source}: {count} problem{'s' if count != 1 else ''}")
    for problem in report.problems:
        where = f"{problem.path}: " if problem.path else ""
        print(f"  {where}{problem.message}")


def publish_directory(directory: Path | None) -> int:
    """Append a lock line for every sheet not yet published; refuse if a published one changed."""
    root = directory or Path(str(packaged_directory()))
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory")
    found: list[tuple[str, str]] = []
    for path in sorted(root.glob("*.json")):
        report = lint_file(path)
        if not report.ok:
            _print(report)
            raise ValueError(f"{path.name} does not lint clean; nothing was published")
        try:
            loaded = load_sheet(path.read_bytes(), source=path.name)
        except FlightSheetInvalid as exc:  # lint passed, so only a race with an editor gets here
            raise ValueError(str(exc)) from exc
        found.append((loaded.sheet.key, loaded.sha256))
    lock = root / LOCK_NAME
    text, added = appended_lock(lock.read_text("utf-8") if lock.is_file() else _HEADER, found)
    if added:
        lock.write_text(text, "utf-8")
    for key in added:
        print(f"published {key}")
    print(f"{lock}: {len(found)} sheets, {len(added)} newly published")
    return 0


_HEADER = (
    "# Published Flight Sheets: id@version and the sha256 of its canonical JSON.\n"
    "# Lines are only appended (defendable flight-sheet publish); a published sheet never changes.\n"
)
