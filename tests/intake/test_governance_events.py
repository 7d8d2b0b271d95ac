"""What intake observes from a verdict, and the events it publishes for governance (pure)."""

from __future__ import annotations

import msgspec
import pytest

from defendable_canonical.events import Checked, IncidentOpened, LaneLocked, Usage, encode, event_decoder
from defendable_canonical.model import AgentProfile, FlightSheetRef, RiskBreakdown, Severity, Verdict
from defendable_canonical.trail import KindCounts, TrailSummary
from defendable_intake.admission import RunState
from defendable_intake.governance import AnyAction, GovernanceState, UsageObserved, VerdictObserved, observe
from defendable_intake.governance_events import checked_observations, events_for, run_usage, unix_ns
from defendable_intake.governance_policy import NS, load_library

AGENT = AgentProfile(model="gpt-5", harness="h", tools=["search"])
SHEET = FlightSheetRef(id="s", version="1", sha256="sha256:" + "0" * 64)
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z


def trail(tokens: tuple[int, int], cost: str | None) -> TrailSummary:
    return TrailSummary(
        bundle_sha256="sha256:" + "1" * 64, steps=1, trace_ids=["a" * 32], kinds=KindCounts(llm=1),
        start_ns="1", end_ns="2", input_tokens=tokens[0], output_tokens=tokens[1], cost=cost, errors=0, problems=[],
    )  # fmt: skip


def run(usage: Usage | None = None) -> RunState:
    return RunState(
        org_id="org_a", run_id="run_1", project="p", lane="agent_work", flight_sheet=SHEET, agent_profile=AGENT,
        assignment_sha256="sha256:" + "2" * 64, status="submitted", submission_sha256="sha256:" + "3" * 64,
        usage=usage,
    )  # fmt: skip


def checked(high: int, execution_trail: TrailSummary | msgspec.UnsetType = msgspec.UNSET) -> Checked:
    severity: Severity = "propolis" if high else "honey"
    return Checked(
        event_id="ev_1", org_id="org_a", run_id="run_1", occurred_at="2026-01-01T00:00:01.500Z", producer="referee",
        flight_sheet=SHEET, submission_sha256="sha256:" + "3" * 64, findings=[],
        verdict=Verdict(score="50.00", severity=severity, risk=RiskBreakdown(high=high), client_ready=False,
                        recommended_action="review"),
        execution_trail=execution_trail,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("declared", "measured", "expected"),
    [
        (None, None, (0, None)),
        (Usage(input_tokens=100, output_tokens=20, cost="0.50"), None, (120, "0.5")),
        (None, trail((300, 30), "0.25"), (330, "0.25")),
        # The larger per dimension: a run cannot lower its count by under-declaring.
        (Usage(input_tokens=1, cost="9"), trail((300, 30), "0.25"), (330, "9")),
        (Usage(input_tokens=900), trail((300, 30), None), (900, None)),
        # Bounded: tokens capped, cost rounded up to 12 places, unusable costs ignored.
        (Usage(input_tokens=10**12, output_tokens=10**12), None, (10**12, None)),
        (None, trail((0, 0), "0.0000000000001"), (0, "0.000000000001")),
        (None, trail((0, 0), "-4"), (0, None)),
        (None, trail((0, 0), "NaN"), (0, None)),
        (None, trail((0, 0), "1e30"), (0, "999999999999999.999999999999")),
    ],
)
def test_a_runs_usage_is_the_larger_of_declared_and_measured_and_bounded(
    declared: Usage | None, measured: TrailSummary | None, expected: tuple[int, str | None]
) -> None:
    assert run_usage(declared, msgspec.UNSET if measured is None else measured) == expected


def test_a_clean_run_that_used_nothing_tells_governance_nothing() -> None:
    assert checked_observations(run(), checked(0), T0 + 5 * NS) == []


def test_a_flagged_run_with_usage_is_one_verdict_and_one_usage_at_the_verdicts_time() -> None:
    observed = checked_observations(run(Usage(input_tokens=10, cost="0.1")), checked(2), T0 + 5 * NS)
    at = T0 + 1_500_000_000
    assert observed == [
        VerdictObserved(run_id="run_1", lane="agent_work", profile=AGENT, high_flags=2, at_ns=at),
        UsageObserved(run_id="run_1", lane="agent_work", profile=AGENT, tokens=10, cost="0.1", at_ns=at),
    ]


def test_a_verdict_from_a_clock_running_ahead_is_taken_at_intakes_time() -> None:
    (observed,) = checked_observations(run(), checked(1), T0)
    assert isinstance(observed, VerdictObserved) and observed.at_ns == T0
    assert unix_ns("not a time", 7) == 7 and unix_ns("2026-01-01T00:00:00", 7) == 7  # no zone: not trusted


def test_governance_events_have_ids_of_the_fact_not_of_its_cause() -> None:
    policy = load_library()["default_governance_v1@1.0.0"]
    state = GovernanceState(org_id="org_a")
    actions: list[AnyAction] = []
    for i in range(3):
        verdict = VerdictObserved(run_id=f"run_{i}", lane="agent_work", profile=AGENT, high_flags=1, at_ns=T0 + i)
        state, actions = observe(state, verdict, policy, T0 + 10)
    first = events_for(actions, state, "ev_cause_a", T0 + 10)
    again = events_for(actions, state, "ev_cause_b", T0 + 99)
    assert [type(e) for e in first] == [IncidentOpened, LaneLocked]
    assert [e.event_id for e in first] == [e.event_id for e in again]  # a replay from another cause: same ids
    opened, locked = first
    assert isinstance(opened, IncidentOpened) and isinstance(locked, LaneLocked)
    assert opened.run_id == locked.run_id == locked.incident_id
    assert locked.reason.startswith(
        "lane agent_work is locked for this agent profile by policy default_governance_v1@1.0.0"
        " clause gov.high_flags.agent_work: 3 high-flag verdicts within 86400 s;"
    )
    assert [event_decoder.decode(encode(e)) for e in first] == first
