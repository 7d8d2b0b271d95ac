"""A run's stages in the order they happen: a run's stage only moves forward, and a later rank
never goes back (rejected ranks with approved: a decision was made either way)."""

from __future__ import annotations

from typing import Final

RUN_STAGES: Final = {
    "requested": 0,
    "created": 1,
    "submitted": 2,
    "checked": 3,
    "approved": 4,
    "rejected": 4,
    "minted": 5,
    "rendered": 6,
    "refused": 7,
}
