"""Published documents are immutable: `published.txt` pins each `id@version` to its hash.

A receipt names the Flight Sheet (or governance policy) id, version and sha256 it was
decided under. If the file behind `id@version` could change, "re-derive this years
later" would quietly use different rules. So a library directory carries a lock file,
one line per published document:

    cre_memo_dscr_ltv_v1@1.0.0 sha256:5c1f…

and loading the library refuses (a) a document whose hash differs from its line —
edit means new version —, (b) a document with no line — publish it first —, and
(c) a line whose document is gone — old receipts still name it. Lines are only
ever appended; `appended_lock` refuses to rewrite one.

Pure: text in, text and messages out. The referee's Flight Sheet library and intake's
governance policies share it (`defendable_referee.publication` re-exports it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

LOCK_NAME: Final = "published.txt"
SHEET_PUBLISH_HINT: Final = "run `defendable flight-sheet publish` to pin its hash"
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


def publication_problems(
    pinned: Mapping[str, str], found: Mapping[str, str], *, publish_hint: str = SHEET_PUBLISH_HINT
) -> list[str]:
    """Every way `found` (key -> digest of the files present) breaks the lock, sorted by key."""
    problems: list[str] = []
    for key in sorted(set(pinned) | set(found)):
        if key not in found:
            problems.append(f"{key} is published but its file is gone; receipts name it, so it must stay")
        elif key not in pinned:
            problems.append(f"{key} is not published: {publish_hint}")
        elif pinned[key] != found[key]:
            problems.append(
                f"{key} changed after it was published ({found[key]}, pinned {pinned[key]}):"
                " an edit needs a new version"
            )
    return problems


def appended_lock(text: str, found: Iterable[tuple[str, str]], *, what: str = "sheet") -> tuple[str, list[str]]:
    """`text` with a line for each key it lacks, and the keys added. Pinned lines never change."""
    pinned = read_lock(text)
    added: list[str] = []
    lines = text if not text or text.endswith("\n") else text + "\n"
    for key, digest in sorted(found):
        if key in pinned:
            if pinned[key] != digest:
                raise LockError(f"{key} changed after it was published: give the edited {what} a new version")
            continue
        lines += f"{key} {digest}\n"
        added.append(key)
    return lines, added
