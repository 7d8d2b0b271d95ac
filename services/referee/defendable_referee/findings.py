"""Building findings: the one shape every rule kind returns (rules.py, text_rules.py, trail_rules.py)."""

from __future__ import annotations

from collections.abc import Sequence

from defendable_canonical.model import Finding, Status, Tier
from defendable_referee.sheet import Rule

MAX_LISTED = 5  # items named in one message; the rest are counted


def finding(
    rule: Rule,
    status: Status,
    message: str,
    *,
    tier: Tier | None = None,
    observed: str | None = None,
    expected: str | None = None,
) -> Finding:
    """A pass carries no tier; anything else carries `tier`, or the rule's own."""
    return Finding(
        rule_id=rule.id,
        kind=rule.kind,
        status=status,
        tier=None if status == "pass" else (tier or rule.tier),
        message=message,
        observed=observed,
        expected=expected,
    )


def listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown if len(items) <= MAX_LISTED else f"{shown} and {len(items) - MAX_LISTED} more"
