"""The verdict table: deterministic from findings alone (DESIGN.md §1)."""

from __future__ import annotations

import pytest

from defendable_canonical.model import Finding, Status, Tier
from defendable_referee.verdict import decide


def f(kind: str, status: Status, tier: Tier | None = None, rule_id: str = "") -> Finding:
    return Finding(rule_id=rule_id or f"{kind}.r", kind=kind, status=status, tier=tier, message=f"{kind} {status}")


P = f("math", "pass")


@pytest.mark.parametrize(
    ("findings", "severity", "action", "client_ready", "score", "risk"),
    [
        ([P] * 3, "honey", "approve", True, "100.00", (0, 0, 0)),
        ([P] * 5 + [f("evidence", "flag", "low")], "jelly", "review", True, "83.33", (0, 0, 1)),
        ([P, f("evidence", "flag", "mid")], "jelly", "review", True, "50.00", (0, 1, 0)),
        ([P, f("evidence", "open", "mid")], "jelly", "review", False, "50.00", (0, 1, 0)),
        ([P, P, f("math", "flag", "high")], "propolis", "resubmit", False, "66.67", (1, 0, 0)),
        ([P, f("evidence", "flag", "high")], "propolis", "resubmit", False, "50.00", (1, 0, 0)),
        ([P, f("policy", "open", "high")], "propolis", "resubmit", False, "50.00", (1, 0, 0)),
        ([P, f("policy", "flag", "high")], "propolis", "reject", False, "50.00", (1, 0, 0)),
        ([P, f("schema", "flag", "high")], "propolis", "reject", False, "50.00", (1, 0, 0)),
        ([f("structure", "flag", "high")], "propolis", "reject", False, "0.00", (1, 0, 0)),
        # The Compute lane judges the hardware itself: a wrong GPU is not fixed by resubmitting.
        ([P, f("gpu_spec", "flag", "high")], "propolis", "reject", False, "50.00", (1, 0, 0)),
        ([P, f("measured_claims", "flag", "high")], "propolis", "reject", False, "50.00", (1, 0, 0)),
        ([P, f("gpu_spec", "open", "high")], "propolis", "resubmit", False, "50.00", (1, 0, 0)),
        ([P, f("schema", "flag", "mid")], "jelly", "review", True, "50.00", (0, 1, 0)),
        ([P, f("math", "flag", None)], "propolis", "resubmit", False, "50.00", (1, 0, 0)),  # no tier: fail closed
        (
            [P, P, f("math", "flag", "high"), f("policy", "flag", "high")],
            "propolis",
            "reject",
            False,
            "50.00",
            (2, 0, 0),
        ),
        ([P] * 2 + [f("math", "flag", "low")], "jelly", "review", True, "66.67", (0, 0, 1)),
        ([P] + [f("math", "flag", "low")] * 2, "jelly", "review", True, "33.33", (0, 0, 2)),
    ],
)
def test_verdict_table(
    findings: list[Finding], severity: str, action: str, client_ready: bool, score: str, risk: tuple[int, int, int]
) -> None:
    verdict = decide(findings)
    assert verdict.severity == severity
    assert verdict.recommended_action == action
    assert verdict.client_ready is client_ready
    assert verdict.score == score
    assert (verdict.risk.high, verdict.risk.mid, verdict.risk.low) == risk


def test_flags_are_ranked_high_to_low_and_stable_by_rule_order() -> None:
    findings = [
        f("structure", "flag", "low", "r1"),
        P,
        f("math", "flag", "high", "r2"),
        f("evidence", "flag", "mid", "r3"),
        f("math", "open", "high", "r4"),
        f("policy", "flag", "low", "r5"),
    ]
    assert [(x.rule_id, x.tier) for x in decide(findings).flags] == [
        ("r2", "high"),
        ("r4", "high"),
        ("r3", "mid"),
        ("r1", "low"),
        ("r5", "low"),
    ]


def test_score_rounds_half_up_to_two_decimals() -> None:
    # 1 of 8 = 12.5 exactly; 1 of 6 = 16.666… → 16.67; 2 of 3 = 66.666… → 66.67
    assert decide([P] + [f("math", "flag", "low")] * 7).score == "12.50"
    assert decide([P] + [f("math", "flag", "low")] * 5).score == "16.67"


def test_a_verdict_over_no_findings_is_refused() -> None:
    with pytest.raises(ValueError, match="no findings"):
        decide([])
