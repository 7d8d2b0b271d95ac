"""Published sheets are immutable: `published.txt` pins each `id@version` to its hash.

The lock format and its checks live in `defendable_canonical.publication`, shared with
intake's governance policies; this module keeps the referee's names for them.
"""

from __future__ import annotations

from defendable_canonical.publication import LOCK_NAME, LockError, appended_lock, publication_problems, read_lock

__all__ = ["LOCK_NAME", "LockError", "appended_lock", "publication_problems", "read_lock"]
