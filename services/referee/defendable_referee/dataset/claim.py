"""The manifest's own numbers are claims: each is compared with the figure the referee derived.

A count must equal the count. A rate or share is re-derived at the precision it is
stated in (rounded half-up): "0.333" re-derives 1/3, "0.33" too, "0.3" does not. A claim
the check could not derive at all (the figure was not computed, or only over part of the
data) is "not derivable". Either failure is a high flag: a receipt must not repeat a
number nobody re-derived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from defendable_canonical.model import Finding
from defendable_referee.findings import finding, listing
from defendable_referee.numeric import CONTEXT, MAX_PLACES, fixed, round_half_up
from defendable_referee.sheet import Rule

# Which rule kind re-derives each Statistics field (dataset_files reports the rest as not derivable).
OWNERS: dict[str, str] = {
    "class_counts": "dataset_class_balance",
    "class_shares": "dataset_class_balance",
    "missing_counts": "dataset_missing_value_audit",
    "missing_rates": "dataset_missing_value_audit",
    "exact_duplicate_rows": "dataset_duplicate_detection",
    "near_duplicate_rows": "dataset_duplicate_detection",
    "pii_counts": "dataset_content_safety_scan",
    "cross_split_duplicates": "dataset_train_test_integrity",
    "shared_group_keys": "dataset_train_test_integrity",
}


def places_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return min(MAX_PLACES, max(0, -exponent)) if isinstance(exponent, int) else 0


@dataclass
class Claims:
    """Claimed figures of one check, compared as they come; `finding` sums them up."""

    subject: str  # "class counts"
    checked: int = 0
    wrong: list[str] = field(default_factory=list)
    underivable: list[str] = field(default_factory=list)

    def count(self, name: str, claimed: int, derived: int | None, why: str = "") -> None:
        self.checked += 1
        if derived is None:
            self.underivable.append(f"{name} ({why})" if why else name)
        elif claimed != derived:
            self.wrong.append(f"{name} claimed {claimed:,}, counted {derived:,}")

    def rate(self, name: str, claimed: Decimal, part: int | None, whole: int, why: str = "") -> None:
        self.checked += 1
        if part is None:
            self.underivable.append(f"{name} ({why})" if why else name)
            return
        places = places_of(claimed)
        derived = round_half_up(CONTEXT.divide(Decimal(part), Decimal(whole)) if whole else Decimal(0), places)
        if derived != claimed:
            self.wrong.append(f"{name} claimed {fixed(claimed)}, re-derived {fixed(derived)} ({part:,}/{whole:,})")

    def counts(self, claimed: Mapping[str, int], derived: Mapping[str, int], prefix: str = "") -> None:
        for name, value in claimed.items():
            self.count(prefix + name, value, derived.get(name, 0))

    def result(self, rule: Rule) -> Finding | None:
        if not self.checked:
            return None
        if not self.wrong and not self.underivable:
            return finding(rule, "pass", f"claimed {self.subject} re-derived: {self.checked} of {self.checked}")
        parts = []
        if self.wrong:
            parts.append(f"{len(self.wrong)} not as derived: {listing(self.wrong)}")
        if self.underivable:
            parts.append(f"{len(self.underivable)} not derivable: {listing(self.underivable)}")
        return finding(
            rule,
            "flag",
            f"claimed {self.subject}: " + "; ".join(parts),
            tier="high",
            observed=f"{self.checked - len(self.wrong) - len(self.underivable)} of {self.checked} re-derived",
            expected=f"{self.checked} of {self.checked}",
        )
