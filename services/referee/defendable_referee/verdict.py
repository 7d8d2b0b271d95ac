"""The verdict: a pure, deterministic function of the findings (DESIGN.md §1). No model opinion.

Exact rule, in this order:

* **Unsatisfied** findings are those with status "flag" or "open". An "open"
  finding (could not be decided) counts as a flag of its tier; a flag or open
  finding without a tier counts as high (fail closed).
* **score** = 100 × (findings with status "pass") ÷ (all findings), rounded
  half-up to two decimals, as a string: 5 of 6 → "83.33".
* **risk** = number of unsatisfied findings per tier.
* **severity**: honey when nothing is unsatisfied; jelly when the unsatisfied
  findings are all low or mid; propolis when any is high.
* **client_ready** = no high finding and no open finding.
* **recommended_action**:
    honey → approve;
    jelly → review;
    propolis → reject if any high *flag* (not open) comes from a structure,
    schema or policy rule (the work is unusable as delivered, or the deal it
    describes breaks a gate on the sheet's own figures), or from any rule of
    the Dataset or Compute lanes (those judge the delivered artifact itself —
    its data, its hardware, its measured figures — which no rewrite of the
    submission fixes); otherwise resubmit (math and evidence flags, and open
    findings, are fixable by the agent).
* **flags** = every unsatisfied finding as a RankedFlag, high → mid → low,
  ties kept in findings order (which is sheet rule order).

`decide([])` raises ValueError: a verdict over no checks would be a pass by
default, and a sheet always has at least one rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from defendable_canonical.model import Action, Finding, RankedFlag, RiskBreakdown, Severity, Tier, Verdict
from defendable_referee.numeric import CONTEXT, fixed, round_half_up
from defendable_referee.sheet import FILE_RULE_KINDS

_RANK: dict[Tier, int] = {"high": 0, "mid": 1, "low": 2}
_REJECTING_KINDS = frozenset({"structure", "schema", "policy"}) | FILE_RULE_KINDS


def tier_of(finding: Finding) -> Tier:
    return finding.tier if finding.tier is not None else "high"


def decide(findings: Sequence[Finding]) -> Verdict:
    if not findings:
        raise ValueError("no findings: a verdict needs at least one check")
    unsatisfied = [f for f in findings if f.status != "pass"]
    passed = len(findings) - len(unsatisfied)
    score = round_half_up(CONTEXT.divide(Decimal(100 * passed), Decimal(len(findings))), 2)

    counts = {tier: sum(1 for f in unsatisfied if tier_of(f) == tier) for tier in _RANK}
    severity: Severity = "honey" if not unsatisfied else "propolis" if counts["high"] else "jelly"
    action: Action
    if severity == "honey":
        action = "approve"
    elif severity == "jelly":
        action = "review"
    elif any(f.status == "flag" and tier_of(f) == "high" and f.kind in _REJECTING_KINDS for f in unsatisfied):
        action = "reject"
    else:
        action = "resubmit"

    ranked = sorted(unsatisfied, key=lambda f: _RANK[tier_of(f)])  # sorted() is stable: rule order within a tier
    return Verdict(
        score=fixed(score),
        severity=severity,
        risk=RiskBreakdown(high=counts["high"], mid=counts["mid"], low=counts["low"]),
        client_ready=not counts["high"] and not any(f.status == "open" for f in findings),
        recommended_action=action,
        flags=[RankedFlag(rule_id=f.rule_id, tier=tier_of(f), message=f.message) for f in ranked],
    )
