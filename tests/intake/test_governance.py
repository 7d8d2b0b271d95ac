"""Governance: declared policies lock a lane for one agent profile, and incidents reach the chain
only once a human acknowledges them (issue 3). Pure: every test drives `observe` directly."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.digest import is_digest, sha256_digest
from defendable_canonical.incident import DarkAgentTrigger, HighFlagsTrigger, SpendCapTrigger, profile_key
from defendable_canonical.model import INCIDENT_RECEIPT_SCHEMA, LANES, AgentProfile, Lane
from defendable_intake.governance import (
    MAX_INCIDENTS,
    MAX_PROFILES,
    MAX_SEEN_RUNS,
    MAX_USAGE_ENTRIES,
    Acknowledged,
    AnyAction,
    AnyObservation,
    GovernanceState,
    Heartbeat,
    LockLane,
    MintIncidentReceipt,
    OpenIncident,
    RecordUnlock,
    Tick,
    Unlocked,
    UsageObserved,
    VerdictObserved,
    decode_state,
    encode_state,
    is_locked,
    lock_for,
    observe,
    refusal_reason,
)
from defendable_intake.governance_policy import NS, LoadedPolicy, PolicyInvalid, load_policy

DEFAULT_POLICY = Path(__file__).parents[2] / "services/intake/defendable_intake/policies/default_governance_v1.json"
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
S, H = NS, 3600 * NS
DAY = 24 * H
ORG = "org_gov"
AGENT = AgentProfile(model="gpt-5", harness="langgraph@0.3", tools=["search", "python"], runtime="py3.12")
OTHER = AgentProfile(model="gpt-5", harness="langgraph@0.3", tools=["search"], runtime="py3.12")
HIGH_FLAGS = "gov.high_flags.agent_work"


def policy(*clauses: dict[str, Any]) -> LoadedPolicy:
    doc = {"id": "test_policy", "version": "1.0.0", "title": "test", "clauses": list(clauses)}
    return load_policy(json.dumps(doc).encode(), source="test.json")


def high_flags(count: int = 3, window_s: int = 86400, lane: str = "agent_work") -> dict[str, Any]:
    return {"id": HIGH_FLAGS, "kind": "high_flags", "lane": lane, "count": count, "window_s": window_s}


def spend(**fields: Any) -> dict[str, Any]:
    return {"id": "gov.spend", "kind": "spend_cap", "lane": "*", "window_s": 3600, "response": "lock_lane", **fields}


def dark(response: str = "alert", window_s: int = 900, lane: str = "*") -> dict[str, Any]:
    return {"id": "gov.dark", "kind": "dark_agent", "lane": lane, "heartbeat_window_s": window_s, "response": response}


FLAGS = policy({**high_flags(), "response": "lock_lane"})


def verdict(
    run: str, at: int, profile: AgentProfile = AGENT, lane: Lane = "agent_work", high: int = 1
) -> VerdictObserved:
    return VerdictObserved(run_id=run, lane=lane, profile=profile, high_flags=high, at_ns=at)


def usage(run: str, at: int, tokens: int = 0, cost: str | None = None, lane: Lane = "agent_work") -> UsageObserved:
    return UsageObserved(run_id=run, lane=lane, profile=AGENT, tokens=tokens, cost=cost, at_ns=at)


def run_all(
    observations: Sequence[AnyObservation], pol: LoadedPolicy = FLAGS, state: GovernanceState | None = None
) -> tuple[GovernanceState, list[AnyAction]]:
    """Observe each in turn, `now` being the observation's own time (prompt delivery)."""
    state = state or GovernanceState(org_id=ORG)
    actions: list[AnyAction] = []
    for obs in observations:
        now = obs.now_ns if isinstance(obs, Tick) else obs.at_ns
        state, done = observe(state, obs, pol, now)
        actions += done
    return state, actions


def kinds(actions: list[AnyAction]) -> list[str]:
    return [type(a).__name__ for a in actions]


def locked_with(at: list[int], pol: LoadedPolicy = FLAGS) -> tuple[GovernanceState, list[AnyAction]]:
    return run_all([verdict(f"run_{i}", t) for i, t in enumerate(at)], pol)


# ---------------------------------------------------------------- the policy document


def test_default_policy_loads_and_its_hash_is_pinned() -> None:
    loaded = load_policy(DEFAULT_POLICY.read_bytes(), source=DEFAULT_POLICY.name)
    assert loaded.policy.key == "default_governance_v1@1.0.0"
    assert [c.id for c in loaded.policy.clauses] == [
        "gov.high_flags.agent_work",
        "gov.spend_cap.daily",
        "gov.dark_agent.15m",
    ]
    # Golden: a published policy never changes under the same version (edit = new version).
    assert loaded.sha256 == "sha256:85556c3324903f8a244b1cb731400f34ee763d27b3b857abb059304e749be037"


def test_policy_hash_is_sha256_of_the_rfc8785_form_of_the_file_value() -> None:
    import rfc8785  # an independent JCS implementation (a dev dependency: never skipped)

    value = json.loads(DEFAULT_POLICY.read_text())
    assert load_policy(DEFAULT_POLICY.read_bytes(), source="d").sha256 == sha256_digest(rfc8785.dumps(value))


def test_policy_hash_ignores_formatting_and_key_order_but_not_content() -> None:
    doc: dict[str, Any] = {
        "title": "t",
        "version": "1",
        "id": "p",
        "clauses": [{**high_flags(), "response": "lock_lane"}],
    }
    compact = load_policy(json.dumps(doc, separators=(",", ":")).encode(), source="a").sha256
    spaced = load_policy(json.dumps(doc, indent=4, sort_keys=True).encode(), source="b").sha256
    assert compact == spaced == "sha256:f3f10790b20e3d67ef5f08642f3e21a2cd08a46841590adec0eca07585f18edd"
    doc["clauses"][0]["count"] = 4
    assert load_policy(json.dumps(doc).encode(), source="c").sha256 != compact


def test_an_incident_names_the_clause_exactly_as_the_file_states_it() -> None:
    ref = FLAGS.ref(HIGH_FLAGS)
    assert (ref.id, ref.version, ref.sha256, ref.clause_id) == ("test_policy", "1.0.0", FLAGS.sha256, HIGH_FLAGS)
    assert ref.clause == {**high_flags(), "response": "lock_lane"}


def valid() -> dict[str, Any]:
    return {
        "id": "p",
        "version": "1",
        "title": "t",
        "clauses": [
            {**high_flags(), "response": "lock_lane"},
            spend(max_cost="5.00", currency="USD"),
            dark(),
        ],
    }


def _set(path: str, value: Any) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _set("clauses.0.kind", "rogue_agent"),
            "clause 'gov.high_flags.agent_work' (clauses[0]) has unknown kind 'rogue_agent';"
            " known kinds: dark_agent, high_flags, spend_cap",
        ),
        (_set("clauses.0.window_s", -60), "Expected `int` >= 1 - at `$.clauses[0].window_s`"),
        (_set("clauses.0.window_s", 90 * 86400 + 1), "Expected `int` <= 7776000 - at `$.clauses[0].window_s`"),
        (_set("clauses.2.heartbeat_window_s", 0), "Expected `int` >= 1 - at `$.clauses[2].heartbeat_window_s`"),
        (_set("clauses.0.count", 10_001), "Expected `int` <= 10000 - at `$.clauses[0].count`"),
        (_set("clauses.0.count", 3.0), "Expected `int`, got `float` - at `$.clauses[0].count`"),
        (_set("clauses.0.colour", "red"), "Object contains unknown field `colour` - at `$.clauses[0]`"),
        (_set("owner", "me"), "Object contains unknown field `owner`"),
        (_set("clauses.0.response", "alert"), "Invalid enum value 'alert' - at `$.clauses[0].response`"),
        (_set("clauses.0.lane", "*"), "Invalid enum value '*' - at `$.clauses[0].lane`"),
        (_set("clauses", []), "Expected `array` of length >= 1 - at `$.clauses`"),
        (_set("clauses.1.id", HIGH_FLAGS), f"clause id {HIGH_FLAGS!r} is used twice"),
        (_set("clauses.1", spend()), "spend cap 'gov.spend' needs max_tokens, max_cost or both"),
        (
            _set("clauses.1", spend(max_cost="5")),
            "spend cap 'gov.spend' has max_cost but no currency (ISO 4217, e.g. USD)",
        ),
        (
            _set("clauses.1", spend(max_tokens=5, currency="USD")),
            "spend cap 'gov.spend' names currency 'USD' but has no max_cost",
        ),
        (_set("clauses.1.max_cost", "0.00"), "spend cap 'gov.spend' max_cost '0.00' is not above 0"),
        (_set("clauses.1.max_tokens", 10**12 + 1), "Expected `int` <= 1000000000000 - at `$.clauses[1].max_tokens`"),
        (
            _set("clauses.1.max_cost", "1e3"),
            "Expected `str` matching regex '^(0|[1-9][0-9]{0,14})(\\\\.[0-9]{1,6})?$' - at `$.clauses[1].max_cost`",
        ),
        (
            _set("clauses.2", {**spend(max_cost="1", currency="EUR"), "id": "gov.eur"}),
            "spend caps name currencies EUR, USD; a policy has one currency",
        ),
        (
            _set("clauses.2.response", "lock_everything"),
            "Invalid enum value 'lock_everything' - at `$.clauses[2].response`",
        ),
    ],
)
def test_invalid_policies_are_refused_with_a_message_that_names_the_place(edit: Any, message: str) -> None:
    doc = copy.deepcopy(valid())
    load_policy(json.dumps(doc).encode(), source="p.json")  # the base is valid
    edit(doc)
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(json.dumps(doc).encode(), source="p.json")
    assert str(caught.value) == f"p.json: {message}"


def test_a_policy_that_is_not_json_is_refused_naming_the_file() -> None:
    with pytest.raises(PolicyInvalid, match=r"^broken\.json: "):
        load_policy(b'{"id": ', source="broken.json")


# ---------------------------------------------------------------- the profile key


def test_profile_key_covers_every_field_but_not_the_order_of_tools() -> None:
    key = profile_key(AGENT)
    assert is_digest(key)
    assert profile_key(msgspec.structs.replace(AGENT, tools=["python", "search", "python"])) == key
    for changed in (
        msgspec.structs.replace(AGENT, model="gpt-5-mini"),
        msgspec.structs.replace(AGENT, harness="langgraph@0.4"),
        msgspec.structs.replace(AGENT, tools=["search"]),
        msgspec.structs.replace(AGENT, runtime="py3.13"),
    ):
        assert profile_key(changed) != key


# ---------------------------------------------------------------- high flags


def test_n_minus_one_high_flag_verdicts_do_not_lock() -> None:
    state, actions = locked_with([T0, T0 + H])
    assert actions == []
    assert is_locked(state, "agent_work", AGENT) is None


def test_exactly_n_high_flag_verdicts_within_the_window_lock_the_lane_citing_the_clause() -> None:
    state, actions = locked_with([T0, T0 + H, T0 + 2 * H])
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    opened, lock = actions
    assert isinstance(opened, OpenIncident) and isinstance(lock, LockLane)
    incident = opened.incident
    assert (incident.kind, incident.clause_id, incident.lane, incident.response) == (
        "high_flags",
        HIGH_FLAGS,
        "agent_work",
        "lock_lane",
    )
    assert incident.profile == AGENT and incident.profile_key == profile_key(AGENT)
    assert incident.trigger == HighFlagsTrigger(
        count=3,
        window_s=86400,
        first_at="2026-01-01T00:00:00.000Z",
        last_at="2026-01-01T02:00:00.000Z",
        run_ids=["run_0", "run_1", "run_2"],
        runs=3,
    )
    assert (lock.lane, lock.clause_id, lock.incident_id) == ("agent_work", HIGH_FLAGS, incident.incident_id)
    assert is_locked(state, "agent_work", AGENT) == HIGH_FLAGS
    held = lock_for(state, "agent_work", AGENT)
    assert held is not None
    assert refusal_reason(held, incident.policy) == (
        f"lane agent_work is locked for this agent profile by policy test_policy@1.0.0 clause {HIGH_FLAGS}:"
        " 3 high-flag verdicts within 86400 s;"
        f" an approver can unlock it: POST /incidents/{incident.incident_id}/unlock"
    )


def test_n_verdicts_spread_wider_than_the_window_do_not_lock() -> None:
    state, actions = locked_with([T0, T0 + 13 * H, T0 + 25 * H, T0 + 38 * H])
    assert actions == []
    assert is_locked(state, "agent_work", AGENT) is None


@pytest.mark.parametrize(
    ("last", "locks"),
    [(T0 + DAY - 1, True), (T0 + DAY, False)],
    ids=["last-one-nanosecond-inside", "last-exactly-one-window-after-the-first"],
)
def test_the_window_is_half_open_a_verdict_exactly_one_window_old_has_left_it(last: int, locks: bool) -> None:
    """Window (t - W, t]: N verdicts lock only when last - first < W."""
    state, _ = locked_with([T0, T0 + H, last])
    assert (is_locked(state, "agent_work", AGENT) == HIGH_FLAGS) is locks


def test_verdicts_without_a_high_flag_do_not_count() -> None:
    obs = [verdict("run_0", T0), verdict("run_1", T0 + S, high=0), verdict("run_2", T0 + 2 * S)]
    state, actions = run_all(list(obs))
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None


def test_the_lock_holds_for_that_profile_in_that_lane_only() -> None:
    two_lanes = policy(
        {**high_flags(), "response": "lock_lane"},
        {**high_flags(lane="dataset"), "id": "gov.hf.ds", "response": "lock_lane"},
    )
    obs: list[AnyObservation] = [verdict(f"a{i}", T0 + i * S) for i in range(3)]
    obs += [verdict(f"b{i}", T0 + i * S, profile=OTHER) for i in range(2)]  # another profile: two only
    obs += [verdict(f"d{i}", T0 + i * S, lane="dataset") for i in range(2)]  # the same profile, another lane
    state, actions = run_all(obs, two_lanes)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    assert is_locked(state, "agent_work", AGENT) == HIGH_FLAGS
    assert is_locked(state, "agent_work", OTHER) is None
    assert is_locked(state, "dataset", AGENT) is None
    assert is_locked(state, "compute", AGENT) is None
    # The other profile's count is its own: one more locks it, the first profile's lock is untouched.
    state, actions = run_all([verdict("b2", T0 + 3 * S, profile=OTHER)], two_lanes, state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    assert is_locked(state, "agent_work", OTHER) == HIGH_FLAGS


def test_listing_the_same_tools_in_another_order_does_not_step_around_the_lock() -> None:
    state, _ = locked_with([T0, T0 + H, T0 + 2 * H])
    reordered = msgspec.structs.replace(AGENT, tools=list(reversed(AGENT.tools)))
    assert is_locked(state, "agent_work", reordered) == HIGH_FLAGS


def test_a_redelivered_verdict_counts_once_and_changes_nothing() -> None:
    first = verdict("run_0", T0)
    state, _ = run_all([first, verdict("run_1", T0 + H)])
    again, actions = run_all([first, first], state=state)
    assert actions == [] and again == state
    assert is_locked(again, "agent_work", AGENT) is None


def test_a_second_verdict_for_the_same_run_counts_once_even_at_another_time() -> None:
    state, actions = run_all([verdict("run_0", T0), verdict("run_0", T0 + H), verdict("run_1", T0 + 2 * H)])
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None


def test_further_triggers_while_the_lane_is_locked_open_no_more_incidents() -> None:
    state, actions = locked_with([T0 + i * H for i in range(3)])
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    state, more = run_all([verdict(f"late_{i}", T0 + (3 + i) * H) for i in range(6)], state=state)
    assert more == []
    assert len(state.incidents) == 1 and len(state.locks) == 1


def test_incident_ids_are_deterministic_and_differ_between_orgs() -> None:
    times = [T0, T0 + H, T0 + 2 * H]
    _, first = locked_with(times)
    _, replay = locked_with(times)
    assert first == replay
    other_org, _ = run_all([verdict(f"run_{i}", t) for i, t in enumerate(times)], state=GovernanceState(org_id="org_b"))
    (opened,) = [a for a in first if isinstance(a, OpenIncident)]
    assert opened.incident.incident_id.startswith("inc_")
    assert opened.incident.incident_id not in other_org.incidents


def test_a_late_verdict_that_completes_a_window_locks_and_names_the_runs_in_time_order() -> None:
    obs = [verdict("run_b", T0 + 2 * H), verdict("run_c", T0 + 3 * H), verdict("run_a", T0 + H)]
    now = T0 + 4 * H  # all three delivered by then, the last one late
    state = GovernanceState(org_id=ORG)
    actions: list[AnyAction] = []
    for o in obs:
        state, done = observe(state, o, FLAGS, now)
        actions += done
    (opened,) = [a for a in actions if isinstance(a, OpenIncident)]
    assert isinstance(opened.incident.trigger, HighFlagsTrigger)
    assert opened.incident.trigger.run_ids == ["run_a", "run_b", "run_c"]


def test_an_observation_delivered_a_window_or_more_after_it_happened_is_ignored() -> None:
    state = GovernanceState(org_id=ORG)
    for i in range(3):
        state, actions = observe(state, verdict(f"run_{i}", T0 + i * S), FLAGS, T0 + DAY + 2 * S)
        assert actions == []
    assert is_locked(state, "agent_work", AGENT) is None


def test_observe_leaves_the_state_it_was_given_as_it_was() -> None:
    state, _ = locked_with([T0, T0 + H])
    before = encode_state(state)
    observe(state, verdict("run_2", T0 + 2 * H), FLAGS, T0 + 2 * H)
    assert encode_state(state) == before


# ---------------------------------------------------------------- acknowledgement and unlock


def _opened(actions: list[AnyAction]) -> str:
    (opened,) = [a for a in actions if isinstance(a, OpenIncident)]
    return opened.incident.incident_id


def test_the_incident_receipt_is_minted_only_after_acknowledgement_and_only_once() -> None:
    state, actions = locked_with([T0, T0 + H, T0 + 2 * H])
    assert not any(isinstance(a, MintIncidentReceipt) for a in actions)
    incident_id = _opened(actions)
    ack = Acknowledged(incident_id=incident_id, approver="ops@acme.test", at_ns=T0 + 3 * H, note="looking into it")
    state, minted = observe(state, ack, FLAGS, T0 + 3 * H)
    assert kinds(minted) == ["MintIncidentReceipt"]
    (mint,) = minted
    assert isinstance(mint, MintIncidentReceipt)
    body = mint.body
    assert (body.schema, body.org_id, body.incident_id, body.kind) == (
        INCIDENT_RECEIPT_SCHEMA,
        ORG,
        incident_id,
        "high_flags",
    )
    assert (body.policy.id, body.policy.version, body.policy.sha256, body.policy.clause_id) == (
        "test_policy",
        "1.0.0",
        FLAGS.sha256,
        HIGH_FLAGS,
    )
    assert (body.acknowledgement.approver, body.acknowledgement.decided_at, body.acknowledgement.note) == (
        "ops@acme.test",
        "2026-01-01T03:00:00.000Z",
        "looking into it",
    )
    assert body.opened_at == "2026-01-01T02:00:00.000Z" and body.response == "lock_lane"
    # Acknowledging again (a redelivery, or a second approver) mints nothing more.
    state, again = observe(state, ack, FLAGS, T0 + 4 * H)
    assert again == []
    later = Acknowledged(incident_id=incident_id, approver="cto@acme.test", at_ns=T0 + 5 * H)
    assert observe(state, later, FLAGS, T0 + 5 * H)[1] == []
    # An acknowledgement does not lift the lock: only an unlock does.
    assert is_locked(state, "agent_work", AGENT) == HIGH_FLAGS


def test_acknowledging_an_unknown_incident_does_nothing() -> None:
    state = GovernanceState(org_id=ORG)
    ack = Acknowledged(incident_id="inc_nope", approver="ops@acme.test", at_ns=T0)
    assert observe(state, ack, FLAGS, T0) == (state, [])


def test_unlock_lifts_the_lock_is_recorded_and_only_new_verdicts_can_lock_again() -> None:
    state, actions = locked_with([T0, T0 + H, T0 + 2 * H])
    incident_id = _opened(actions)
    state, _ = observe(
        state, Acknowledged(incident_id=incident_id, approver="ops", at_ns=T0 + 3 * H), FLAGS, T0 + 3 * H
    )
    unlock = Unlocked(lane="agent_work", profile=AGENT, approver="lead@acme.test", at_ns=T0 + 4 * H, note="retrained")
    state, done = observe(state, unlock, FLAGS, T0 + 4 * H)
    assert kinds(done) == ["RecordUnlock"]  # acknowledged already: nothing more to mint
    (recorded,) = done
    assert isinstance(recorded, RecordUnlock)
    record = recorded.record
    assert (record.incident_id, record.lane, record.agent_profile, record.policy.clause_id) == (
        incident_id,
        "agent_work",
        AGENT,
        HIGH_FLAGS,
    )
    assert (record.approval.approver, record.approval.decided_at, record.approval.note) == (
        "lead@acme.test",
        "2026-01-01T04:00:00.000Z",
        "retrained",
    )
    assert record.locked_at == "2026-01-01T02:00:00.000Z"
    assert is_locked(state, "agent_work", AGENT) is None
    # A redelivered unlock finds nothing locked.
    assert observe(state, unlock, FLAGS, T0 + 4 * H) == (state, [])
    # The verdicts before the unlock no longer count: two new ones do not lock, a third does.
    state, actions = run_all([verdict("new_0", T0 + 5 * H), verdict("new_1", T0 + 6 * H)], state=state)
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None
    state, actions = run_all([verdict("new_2", T0 + 7 * H)], state=state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    assert _opened(actions) != incident_id
    assert is_locked(state, "agent_work", AGENT) == HIGH_FLAGS


def test_unlocking_an_unacknowledged_incident_acknowledges_it_first() -> None:
    state, actions = locked_with([T0, T0 + H, T0 + 2 * H])
    unlock = Unlocked(lane="agent_work", profile=AGENT, approver="lead@acme.test", at_ns=T0 + 3 * H)
    state, done = observe(state, unlock, FLAGS, T0 + 3 * H)
    assert kinds(done) == ["MintIncidentReceipt", "RecordUnlock"]
    mint, recorded = done
    assert isinstance(mint, MintIncidentReceipt) and isinstance(recorded, RecordUnlock)
    assert mint.incident_id == recorded.record.incident_id == _opened(actions)
    assert mint.body.acknowledgement == recorded.record.approval
    ack = Acknowledged(incident_id=mint.incident_id, approver="ops", at_ns=T0 + 4 * H)
    assert observe(state, ack, FLAGS, T0 + 4 * H)[1] == []


def test_unlocking_a_lane_that_is_not_locked_does_nothing() -> None:
    state, _ = locked_with([T0, T0 + H, T0 + 2 * H])
    for unlock in (
        Unlocked(lane="dataset", profile=AGENT, approver="lead", at_ns=T0 + 3 * H),
        Unlocked(lane="agent_work", profile=OTHER, approver="lead", at_ns=T0 + 3 * H),
        Unlocked(lane="*", profile=AGENT, approver="lead", at_ns=T0 + 3 * H),
    ):
        assert observe(state, unlock, FLAGS, T0 + 3 * H) == (state, [])


# ---------------------------------------------------------------- spend caps

TOKENS = policy(spend(max_tokens=1000))
COST = policy(spend(max_cost="10.00", currency="USD"))


def test_spend_cap_by_tokens_reaching_the_cap_is_allowed_exceeding_it_locks_every_lane() -> None:
    state, actions = run_all([usage("u0", T0, tokens=600), usage("u1", T0 + S, tokens=400, lane="dataset")], TOKENS)
    assert actions == []
    state, actions = run_all([usage("u2", T0 + 2 * S, tokens=1, lane="compute")], TOKENS, state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    opened = actions[0]
    assert isinstance(opened, OpenIncident)
    assert opened.incident.trigger == SpendCapTrigger(
        window_s=3600,
        window_start="2025-12-31T23:00:02.000Z",
        window_end="2026-01-01T00:00:02.000Z",
        tokens=1001,
        cost=None,
        currency=None,
        max_tokens=1000,
        max_cost=None,
        breached=["tokens"],
        run_ids=["u0", "u1", "u2"],
        runs=3,
    )
    assert opened.incident.lane == "*"
    for lane in LANES:
        assert is_locked(state, lane, AGENT) == "gov.spend"
    assert is_locked(state, "agent_work", OTHER) is None


def test_spend_cap_by_cost_sums_decimals_exactly() -> None:
    obs: list[AnyObservation] = [usage(f"u{i}", T0 + i * S, cost=c) for i, c in enumerate(["3.33", "3.33", "3.34"])]
    state, actions = run_all(obs, COST)
    assert actions == []  # exactly 10.00: not above the cap
    state, actions = run_all([usage("u3", T0 + 3 * S, cost="0.000000000001")], COST, state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    trigger = actions[0].incident.trigger  # type: ignore[union-attr]  # checked by kinds()
    assert isinstance(trigger, SpendCapTrigger)
    assert (trigger.cost, trigger.currency, trigger.max_cost, trigger.breached) == (
        "10.000000000001",
        "USD",
        "10.00",
        ["cost"],
    )
    assert trigger.cost is not None and Decimal(trigger.cost) == sum(
        Decimal(c) for c in ["3.33", "3.33", "3.34", "0.000000000001"]
    )


@pytest.mark.parametrize(
    ("second", "locks"), [(T0 + H - 1, True), (T0 + H, False)], ids=["inside-the-window", "first-usage-has-left"]
)
def test_the_spend_window_slides_usage_exactly_one_window_old_no_longer_counts(second: int, locks: bool) -> None:
    state, _ = run_all([usage("u0", T0, tokens=800), usage("u1", second, tokens=300)], TOKENS)
    assert (is_locked(state, "agent_work", AGENT) is not None) is locks


def test_the_window_keeps_sliding_spend_leaves_as_it_ages() -> None:
    obs: list[AnyObservation] = [usage(f"u{i}", T0 + i * 20 * 60 * S, tokens=300) for i in range(12)]
    state, actions = run_all(obs, TOKENS)  # 300 every 20 min: at most 900 in any hour
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None


def test_a_late_usage_report_tips_over_the_window_it_belongs_to() -> None:
    state = GovernanceState(org_id=ORG)
    state, actions = observe(state, usage("u1", T0 + 30 * 60 * S, tokens=600), TOKENS, T0 + 30 * 60 * S)
    assert actions == []
    state, actions = observe(state, usage("u0", T0, tokens=500), TOKENS, T0 + 31 * 60 * S)  # delivered late
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    trigger = actions[0].incident.trigger  # type: ignore[union-attr]  # checked by kinds()
    assert isinstance(trigger, SpendCapTrigger)
    assert (trigger.window_end, trigger.tokens, trigger.run_ids) == ("2026-01-01T00:30:00.000Z", 1100, ["u0", "u1"])


def test_costs_are_written_as_plain_decimals_never_in_exponent_notation() -> None:
    pol = policy(spend(max_cost="0.000001", currency="USD"))
    state, actions = run_all([usage(f"u{i}", T0 + i * S, cost="0.0000001") for i in range(11)], pol)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    trigger = actions[0].incident.trigger  # type: ignore[union-attr]  # checked by kinds()
    assert isinstance(trigger, SpendCapTrigger) and trigger.cost == "0.0000011"
    entries = state.profiles[profile_key(AGENT)].usage["gov.spend"]
    assert [e.cost for e in entries[:1]] == ["0.0000001"] and "E" not in encode_state(state).decode()


def test_a_lane_spend_cap_counts_only_its_lane() -> None:
    pol = policy(spend(lane="dataset", max_tokens=100))
    state, actions = run_all([usage("u0", T0, tokens=500), usage("u1", T0 + S, tokens=50, lane="dataset")], pol)
    assert actions == []
    state, actions = run_all([usage("u2", T0 + 2 * S, tokens=51, lane="dataset")], pol, state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    assert is_locked(state, "dataset", AGENT) == "gov.spend" and is_locked(state, "agent_work", AGENT) is None


def test_a_runs_usage_counts_once() -> None:
    state, actions = run_all([usage("u0", T0, tokens=600)] * 2 + [usage("u0", T0 + S, tokens=600)], TOKENS)
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None


def test_merging_old_usage_never_undercounts_spend() -> None:
    count = MAX_USAGE_ENTRIES + 500
    pol = policy(spend(max_tokens=count, window_s=86400))
    state, actions = run_all([usage(f"u{i}", T0 + i * S, tokens=1) for i in range(count)], pol)
    assert actions == []
    (entries,) = state.profiles[profile_key(AGENT)].usage.values()
    assert len(entries) == MAX_USAGE_ENTRIES and sum(e.runs for e in entries) == count
    state, actions = run_all([usage("over", T0 + count * S, tokens=1)], pol, state)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    trigger = actions[0].incident.trigger  # type: ignore[union-attr]  # checked by kinds()
    assert isinstance(trigger, SpendCapTrigger)
    assert (trigger.tokens, trigger.runs, len(trigger.run_ids)) == (count + 1, count + 1, 100)


def test_unlocking_a_spend_cap_restarts_its_count() -> None:
    state, actions = run_all([usage("u0", T0, tokens=1001)], TOKENS)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    state, _ = observe(state, Unlocked(lane="*", profile=AGENT, approver="lead", at_ns=T0 + S), TOKENS, T0 + S)
    state, actions = run_all([usage("u1", T0 + 2 * S, tokens=999)], TOKENS, state)
    assert actions == [] and is_locked(state, "agent_work", AGENT) is None


def test_usage_outside_the_contract_is_refused_with_the_facts() -> None:
    state = GovernanceState(org_id=ORG)
    with pytest.raises(ValueError, match=r"^run u0: cost '1e3' is not a decimal string"):
        observe(state, usage("u0", T0, cost="1e3"), COST, T0)
    with pytest.raises(ValueError, match=r"^run u0: tokens -1 is outside 0\.\.1000000000000$"):
        observe(state, usage("u0", T0, tokens=-1), TOKENS, T0)


# ---------------------------------------------------------------- dark agents

DARK = policy(dark())


def test_a_dark_agent_is_detected_by_a_tick_after_its_heartbeat_window_not_before() -> None:
    window = 900 * S
    state, actions = run_all(
        [Heartbeat(profile=AGENT, lane="agent_work", at_ns=T0), Tick(now_ns=T0 + window - 1)], DARK
    )
    assert actions == []
    state, actions = run_all([Tick(now_ns=T0 + window)], DARK, state)  # none in (now - H, now]: dark
    assert kinds(actions) == ["OpenIncident"]  # response "alert": nothing is locked
    opened = actions[0]
    assert isinstance(opened, OpenIncident)
    assert opened.incident.trigger == DarkAgentTrigger(
        heartbeat_window_s=900,
        last_heartbeat_at="2026-01-01T00:00:00.000Z",
        detected_at="2026-01-01T00:15:00.000Z",
        silent_s=900,
    )
    assert is_locked(state, "agent_work", AGENT) is None
    # The same silence raises one incident, however many ticks see it.
    state, actions = run_all([Tick(now_ns=T0 + 2 * window), Tick(now_ns=T0 + 3 * window)], DARK, state)
    assert actions == []


def test_a_heartbeat_resets_the_dark_agent_clock() -> None:
    window = 900 * S
    obs: list[AnyObservation] = [
        Heartbeat(profile=AGENT, lane="agent_work", at_ns=T0),
        Heartbeat(profile=AGENT, lane="compute", at_ns=T0 + 600 * S),  # "*": a heartbeat in any lane counts
        Tick(now_ns=T0 + window),
        Tick(now_ns=T0 + 600 * S + window - 1),
    ]
    state, actions = run_all(obs, DARK)
    assert actions == []
    state, actions = run_all([Tick(now_ns=T0 + 600 * S + window)], DARK, state)
    assert kinds(actions) == ["OpenIncident"]
    first = _opened(actions)
    state, _ = observe(state, Acknowledged(incident_id=first, approver="ops", at_ns=T0 + H), DARK, T0 + H)
    # Back, then silent again: a new silence, a new incident.
    state, actions = run_all(
        [Heartbeat(profile=AGENT, lane="agent_work", at_ns=T0 + 2 * H), Tick(now_ns=T0 + 2 * H + window)], DARK, state
    )
    assert kinds(actions) == ["OpenIncident"] and _opened(actions) != first


def test_an_unacknowledged_dark_alert_holds_back_the_next_one_for_that_profile() -> None:
    window = 900 * S
    obs: list[AnyObservation] = [
        Heartbeat(profile=AGENT, lane="agent_work", at_ns=T0),
        Tick(now_ns=T0 + window),
        Heartbeat(profile=AGENT, lane="agent_work", at_ns=T0 + H),
        Tick(now_ns=T0 + H + window),
    ]
    _, actions = run_all(obs, DARK)
    assert kinds(actions) == ["OpenIncident"]


def test_a_dark_agent_clause_may_lock_and_a_profile_that_never_beat_is_never_dark() -> None:
    pol = policy(dark(response="lock_lane", lane="compute"))
    obs: list[AnyObservation] = [
        Heartbeat(profile=AGENT, lane="compute", at_ns=T0),
        Heartbeat(profile=OTHER, lane="agent_work", at_ns=T0),  # beats, but not in the clause's lane
        Tick(now_ns=T0 + DAY),
    ]
    state, actions = run_all(obs, pol)
    assert kinds(actions) == ["OpenIncident", "LockLane"]
    assert is_locked(state, "compute", AGENT) == "gov.dark"
    assert is_locked(state, "compute", OTHER) is None


# ---------------------------------------------------------------- state


def test_state_round_trips_through_its_serialised_form() -> None:
    pol = policy({**high_flags(), "response": "lock_lane"}, spend(max_cost="1.00", currency="USD"), dark())
    obs: list[AnyObservation] = [verdict(f"r{i}", T0 + i * S) for i in range(3)]
    obs += [usage("u0", T0, tokens=5, cost="0.25"), Heartbeat(profile=OTHER, lane="compute", at_ns=T0)]
    obs += [Tick(now_ns=T0 + H)]
    state, actions = run_all(obs, pol)
    assert {type(a) for a in actions} == {OpenIncident, LockLane}
    state, _ = observe(state, Acknowledged(incident_id=_opened(actions[:2]), approver="ops", at_ns=T0 + H), pol, T0 + H)
    assert state.locks and state.incidents and state.open_incidents and state.profiles
    data = encode_state(state)
    assert decode_state(data) == state
    assert encode_state(decode_state(data)) == data
    # Observations and actions are tagged unions too, for an outbox or a replay log.
    assert msgspec.json.decode(msgspec.json.encode(obs), type=list[AnyObservation]) == obs
    assert msgspec.json.decode(msgspec.json.encode(actions), type=list[AnyAction]) == actions


def test_state_stays_bounded_over_100000_observations() -> None:
    """Sizes, not time: 1,500 profiles (over the cap), one of them busy enough to be locked and to
    overflow its usage window, verdicts, usage, heartbeats and ticks over 40 days."""
    pol = policy({**high_flags(count=50), "response": "lock_lane"}, spend(max_tokens=10**9, window_s=7 * 86400), dark())
    profiles = [msgspec.structs.replace(AGENT, runtime=f"rt{i}") for i in range(1_500)]
    heavy = profiles[0]
    state = GovernanceState(org_id=ORG)
    now = T0
    for i in range(100_000):
        now = T0 + i * 35 * S  # ~40 days in all
        profile = heavy if i % 3 == 0 else profiles[i % len(profiles)]
        obs: AnyObservation
        match i % 4:
            case 0:
                obs = verdict(f"v{i}", now, profile=profile, high=int(i % 8 == 0))
            case 1:
                obs = UsageObserved(
                    run_id=f"u{i}", lane="agent_work", profile=profile, tokens=1_000, cost=None, at_ns=now
                )
            case 2:
                obs = Heartbeat(profile=profile, lane="agent_work", at_ns=now)
            case _:
                obs = Tick(now_ns=now) if i % 400 == 3 else usage(f"w{i}", now, tokens=10)
        state, _ = observe(state, obs, pol, now)
        assert len(state.profiles) <= MAX_PROFILES
    assert len(state.incidents) <= MAX_INCIDENTS
    for track in state.profiles.values():
        assert len(track.seen) <= MAX_SEEN_RUNS
        assert all(len(e) <= 50 for e in track.flags.values())
        assert all(len(e) <= MAX_USAGE_ENTRIES for e in track.usage.values())
    heavy_track = state.profiles[profile_key(heavy)]
    assert sum(e.runs for e in heavy_track.usage["gov.spend"]) > MAX_USAGE_ENTRIES  # merged, not dropped
    # Long after the last observation, a tick forgets everything except the locks and what they pin.
    state, _ = observe(state, Tick(now_ns=now + 30 * DAY), pol, now + 30 * DAY)
    locked = {lock.profile_key for lock in state.locks.values()}
    assert locked == {profile_key(heavy)}  # its 50 high flags a day locked it
    assert set(state.profiles) == locked
    assert all(
        s.acknowledgement is None or s.incident.incident_id in {x.incident_id for x in state.locks.values()}
        for s in state.incidents.values()
    )
    assert all(not t.seen and not t.heartbeats for t in state.profiles.values())
