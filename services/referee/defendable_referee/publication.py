"""Published sheets are immutable: `published.txt` pins each `id@version` to its hash.

A receipt names the sheet id, version and sha256 it was checked against. If the
file behind `id@version` could change, "re-derive this verdict years later"
would quietly use different rules. So a library directory carries a lock file,
one line per published sheet:

    cre_memo_dscr_ltv_v1@1.0.0 sha256:5c1f…

and loading the library refuses (a) a sheet whose hash differs from its line —
edit means new version —, (b) a sheet with no line — publish it first —, and
(c) a line whose sheet is gone — old receipts still name it. Lines are only
ever appended; `publish` refuses to rewrite one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

LOCK_NAME = "published.txt"
_LINE = re.compile(r"(?P<key>[a-z][a-z0-9_]{0,63}@[0-9A-Za-z.+-]{1,40}) (?P<digest>sha256:[0-9a-f]{64})")


class LockError(ValueError):
    """The lock file itself is malformed."""


def read_lock(text: str) -> dict[str, str]:
    """`id@version` -> digest; blank lines and `#` comments are ignored."""
    pinned: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise LockError(f"{LOCK_NAME} line {number}: expected 'id@version sha256:<64 hex>', got {line[:120]!r}")
        key = match["key"]
        if key in pinned:
            raise LockError(f"{LOCK_NAME} line {number}: {key} is pinned twice")
        pinned[key] = match["digest"]
    return pinned


def publication_problems(pinned: Mapping[str, str], found: Mapping[str, str]) -> list[str]:
    """Every way `found` (key -> digest of the files present) breaks the lock, sorted by key."""
    problems: list[str] = []
    for key in sorted(set(pinned) | set(found)):
        if key not in found:
            problems.append(f"{key} is published but its file is gone; receipts name it, so it must stay")
        elif key not in pinned:
            problems.append(f"{key} is not published: run `defendable flight-sheet publish` to pin its hash")
        elif pinned[key] != found[key]:
            problems.append(
                f"{key} changed after it was published ({found[key]}, pinned {pinned[key]}):"
                " an edit needs a new version"
            )
    return problems


def appended_lock(text: str, found: Iterable[tuple[str, str]]) -> tuple[str, list[str]]:
    """`text` with a line for each key it lacks, and the keys added. Pinned lines never change."""
    pinned = read_lock(text)
    added: list[str] = []
    lines = text if not text or text.endswith("\n") else text + "\n"
    for key, digest in sorted(found):
        if key in pinned:
            if pinned[key] != digest:
                raise LockError(f"{key} changed after it was published: give the edited sheet a new version")
            continue
        lines += f"{key} {digest}\n"
        added.append(key)
    return lines, added
