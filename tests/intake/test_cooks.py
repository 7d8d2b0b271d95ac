"""Cook admission: only this org's checked runs make a cook; only an eligible, checked cook is decided."""

from __future__ import annotations

import msgspec
import pytest

from defendable_canonical.cook import CheckedRun, CookDataset, EvalItem, EvalSet
from defendable_canonical.events import (
    Checked,
    CookApproved,
    CookPair,
    CookRejected,
    DecideCook,
    RequestCook,
    encode,
)
from defendable_canonical.model import AgentProfile, Approval, FlightSheetRef, RankedFlag, RiskBreakdown, Verdict
from defendable_gateway import cook_routes
from defendable_intake import cooks
from defendable_intake.admission import Refusal, RunState
from defendable_intake.cooks import MAX_COOK_EVENT_BYTES, CookRun, CookState
from defendable_referee import lift
from defendable_referee.cook_check import check_cook
from defendable_referee.sheet import load_library
from defendable_runtime.messaging import MAX_MESSAGE_BYTES

NOW = "2026-12-01T00:00:00.000Z"
ORG = "org_a"
COOK = "cook_" + "c" * 32
LIBRARY = load_library()
SHEET = LIBRARY.get("cre_memo_dscr_ltv_v1@1.0.0").ref()
DATASET = CookDataset(name="cre-memos", version="2026-11", sha256="sha256:" + "d" * 64)


def run_id(side: str, n: int) -> str:
    return f"run_{side}{n:031x}"


def verdict(score: str) -> Verdict:
    flags = [] if score == "100.00" else [RankedFlag(rule_id="math.calculations", tier="high", message="dscr off")]
    return Verdict(
        score=score, severity="propolis" if flags else "honey", risk=RiskBreakdown(high=len(flags)),
        client_ready=not flags, recommended_action="review" if flags else "approve", flags=flags,
    )  # fmt: skip


def run_state(
    rid: str, model: str, score: str | None, status: str = "checked", sheet: FlightSheetRef = SHEET
) -> RunState:
    checked = None
    if score is not None:
        checked = Checked(
            event_id="ev_" + rid, org_id=ORG, run_id=rid, occurred_at=NOW, producer="referee",
            flight_sheet=sheet, submission_sha256="sha256:" + "5" * 64, findings=[], verdict=verdict(score),
        )  # fmt: skip
    return RunState(
        org_id=ORG, run_id=rid, project="p", lane="agent_work", flight_sheet=sheet,
        agent_profile=AgentProfile(model=model, harness="pytest"), assignment_sha256="sha256:" + "6" * 64,
        status=status,  # type: ignore[arg-type]
        submission_sha256="sha256:" + "5" * 64 if score is not None else None, checked=checked,
    )  # fmt: skip


def run(rid: str, model: str, score: str | None, status: str = "checked", sheet: FlightSheetRef = SHEET) -> CookRun:
    """What cook_store.load_runs reads of such a run."""
    return cooks.cook_run(run_state(rid, model, score, status, sheet))


def request(n: int = 6, *, item: str = "q{}", command_id: str = "cmd_1") -> RequestCook:
    items = [item.format(i) for i in range(n)]
    return RequestCook(
        command_id=command_id, org_id=ORG, run_id=COOK, issued_at=NOW, actor="key", project="p",
        base_model="base-1", cooked_model="base-1-cook", dataset=DATASET,
        eval_set=EvalSet(name="holdout", items=[EvalItem(id=i, sha256="sha256:" + "e" * 64) for i in items]),
        pre=[CookPair(item_id=i, run_id=run_id("a", k)) for k, i in enumerate(items)],
        post=[CookPair(item_id=i, run_id=run_id("b", k)) for k, i in enumerate(items)],
    )  # fmt: skip


def known_runs(n: int = 6, pre_score: str = "86.67", post_score: str = "100.00") -> dict[str, CookRun]:
    pre = {run_id("a", k): run(run_id("a", k), "base-1", pre_score) for k in range(n)}
    post = {run_id("b", k): run(run_id("b", k), "base-1-cook", post_score) for k in range(n)}
    return pre | post


def test_a_cook_of_checked_runs_carries_each_runs_sheet_model_and_score() -> None:
    state, event = cooks.request_cook(request(), None, known_runs(), NOW)
    assert state.status == "requested" and state.requested_event_id == event.event_id
    assert [r.run_id for r in event.pre.runs] == [run_id("a", k) for k in range(6)]
    assert (event.pre.model, event.pre.flight_sheet, event.post.model) == ("base-1", SHEET, "base-1-cook")
    assert event.pre.runs[0] == CheckedRun(item_id="q0", run_id=run_id("a", 0), score="86.67")  # the score only
    assert cooks.request_cook(request(), None, known_runs(), NOW)[1] == event  # same command, same event id


def test_runs_of_another_org_or_unknown_are_refused_as_not_found() -> None:
    runs = known_runs()
    del runs[run_id("b", 3)]  # what load_runs leaves out: another org's run, or none at all
    with pytest.raises(Refusal, match=f"runs not found in this organisation: {run_id('b', 3)}$"):
        cooks.request_cook(request(), None, runs, NOW)


def test_a_run_without_a_verdict_is_refused() -> None:
    runs = known_runs() | {run_id("a", 2): run(run_id("a", 2), "base-1", None, status="created")}
    with pytest.raises(Refusal, match=rf"runs without a verdict: {run_id('a', 2)} \(created\)"):
        cooks.request_cook(request(), None, runs, NOW)
    submitted = known_runs() | {run_id("a", 1): run(run_id("a", 1), "base-1", None, status="submitted")}
    assert cooks.awaiting_verdict(submitted.values()) == [run_id("a", 1)]  # cook_flow waits for these


def test_a_side_whose_runs_are_not_of_its_declared_model_is_refused() -> None:
    runs = known_runs() | {run_id("b", 4): run(run_id("b", 4), "base-1", "100.00")}
    with pytest.raises(
        Refusal, match=rf"post runs not of the cooked model 'base-1-cook': {run_id('b', 4)} \('base-1'\)"
    ):
        cooks.request_cook(request(), None, runs, NOW)


def test_a_second_request_for_one_cook_is_refused() -> None:
    state, _ = cooks.request_cook(request(), None, known_runs(), NOW)
    with pytest.raises(Refusal, match="already exists"):
        cooks.request_cook(request(command_id="cmd_2"), state, known_runs(), NOW)


def test_more_items_than_a_cook_allows_are_refused_before_any_lookup() -> None:
    assert cooks.MAX_ITEMS == lift.MAX_ITEMS
    big = msgspec.structs.replace(request(), pre=request().pre * 1700)  # 10,200 pairs
    with pytest.raises(Refusal, match="pre has 10200 items; a cook allows at most 10000"):
        cooks.run_ids(big)


def test_the_view_of_a_stored_run_is_what_a_cook_reads_of_it() -> None:
    state = run_state(run_id("a", 0), "base-1", "86.67")
    stored = msgspec.json.encode(state)  # intake.runs.state
    view = msgspec.json.decode(stored, type=CookRun)  # cook_store.load_runs
    assert view == cooks.cook_run(state)
    assert view.checked is not None and view.checked.verdict.score == "86.67"
    assert (view.run_id, view.status, view.agent_profile.model, view.checked.flight_sheet) == (
        run_id("a", 0), "checked", "base-1", SHEET,
    )  # fmt: skip
    created = msgspec.json.decode(
        msgspec.json.encode(run_state(run_id("a", 1), "base-1", None, "created")), type=CookRun
    )
    assert created.checked is None and created.status == "created"


def test_a_side_whose_runs_were_checked_under_several_sheets_is_refused() -> None:
    other = msgspec.structs.replace(SHEET, sha256="sha256:" + "9" * 64)
    runs = known_runs() | {run_id("a", k): run(run_id("a", k), "base-1", "86.67", sheet=other) for k in (4, 5)}
    with pytest.raises(Refusal) as refused:
        cooks.request_cook(request(), None, runs, NOW)
    assert str(refused.value) == (
        f"cook {COOK}: pre runs were checked under more than one flight sheet: "
        f"{SHEET.id}@{SHEET.version} ({SHEET.sha256}) for {', '.join(run_id('a', k) for k in range(4))}; "
        f"{SHEET.id}@{SHEET.version} ({other.sha256}) for {run_id('a', 4)}, {run_id('a', 5)}"
    )
    empty = msgspec.structs.replace(request(), post=[])
    with pytest.raises(Refusal, match="each side names at least one run"):
        cooks.request_cook(empty, None, known_runs(), NOW)


def test_the_largest_cook_the_gateway_admits_stays_one_message_at_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 items with item ids of 128 characters (the gateway's limits): every cook message
    fits one JetStream message with room for headers, and CookRequested outgrows the command it
    comes from by less than the 512 KiB the gateway keeps for it (cook_routes.MAX_COOK_COMMAND_BYTES)."""
    assert MAX_COOK_EVENT_BYTES == MAX_MESSAGE_BYTES - 64 * 1024 == cook_routes.MAX_COOK_COMMAND_BYTES + 512 * 1024
    n = lift.MAX_ITEMS
    template = "{:05d}" + "x" * 123  # 128 characters
    cmd = request(n, item=template)
    state, event = cooks.request_cook(cmd, None, known_runs(n), NOW)
    command, requested = len(encode(cmd)), len(encode(event))
    assert requested - command < 512 * 1024
    assert requested <= MAX_COOK_EVENT_BYTES
    monkeypatch.setattr(lift, "default_resamples", lambda n: 10)  # the sizes, not the bootstrap, are tested here
    checked = check_cook(event, LIBRARY, NOW)
    assert checked.eligible, checked.reasons
    assert cooks.record_checked(state, checked)
    approved = cooks.decide(_decision("approve"), state, NOW)
    assert isinstance(approved, CookApproved)
    assert len(encode(checked)) < len(encode(approved)) < requested
    assert len(approved.receipt.pre.items) == len(approved.receipt.post.items) == n


def test_an_event_beyond_one_message_is_refused() -> None:
    """Only a command published straight to NATS can get here: the gateway bounds ids at 128 characters."""
    n = 4_000
    cmd = request(n, item="{:05d}" + "y" * 995)  # item ids of 1,000 characters
    with pytest.raises(
        Refusal, match=rf"its {n} items make a \d+-byte event; a cook event may be at most {MAX_COOK_EVENT_BYTES} bytes"
    ):
        cooks.request_cook(cmd, None, known_runs(n), NOW)


def _decision(decision: str, command_id: str = "cmd_d") -> DecideCook:
    return DecideCook(
        command_id=command_id, org_id=ORG, run_id=COOK, issued_at=NOW, actor="key",
        decision=decision,  # type: ignore[arg-type]
        approver="Zoë Ångström", note="lift is real",
    )  # fmt: skip


def _checked_state(pre_score: str = "86.67") -> CookState:
    state, event = cooks.request_cook(request(), None, known_runs(pre_score=pre_score), NOW)
    assert cooks.record_checked(state, check_cook(event, LIBRARY, NOW))
    return state


def test_the_referees_decision_is_recorded_once_and_only_for_the_request_it_answers() -> None:
    state, event = cooks.request_cook(request(), None, known_runs(), NOW)
    checked = check_cook(event, LIBRARY, NOW)
    stranger = msgspec.structs.replace(checked, causation_id="ev_other")
    assert not cooks.record_checked(state, stranger) and state.checked is None
    assert cooks.record_checked(state, checked)
    assert msgspec.structs.asdict(state)["status"] == "checked"  # (asdict: mypy narrowed `status` above)
    assert msgspec.structs.asdict(state)["checked"] == checked
    assert not cooks.record_checked(state, checked)  # a redelivery changes nothing
    assert not cooks.record_checked(None, checked)


def test_approval_yields_the_receipt_body_the_referee_would_build_from_the_same_decision() -> None:
    state = _checked_state()
    _, event = cooks.request_cook(request(), None, known_runs(), NOW)
    approved = cooks.decide(_decision("approve"), state, NOW)
    assert isinstance(approved, CookApproved) and state.status == "approved"
    approval = Approval(approver="Zoë Ångström", decided_at=NOW, note="lift is real")
    decision = lift.decide_cook(event.pre, event.post, event.eval_set, "0")
    expected = lift.cook_receipt_body(
        decision, org_id=ORG, run_id=COOK, project="p", dataset=DATASET, approval=approval
    )
    assert approved.receipt == expected
    assert approved.run_id == COOK and approved.causation_id == "cmd_d"
    with pytest.raises(Refusal, match="was already approved"):
        cooks.decide(_decision("reject", "cmd_e"), state, NOW)


def test_rejection_yields_no_receipt() -> None:
    state = _checked_state()
    rejected = cooks.decide(_decision("reject"), state, NOW)
    assert isinstance(rejected, CookRejected) and rejected.approver == "Zoë Ångström"
    assert state.status == "rejected"


def test_a_refused_cook_cannot_be_approved_and_the_refusal_names_the_reasons() -> None:
    state = _checked_state(pre_score="100.00")  # no lift at all
    for decision in ("approve", "reject"):
        with pytest.raises(Refusal) as refused:
            cooks.decide(_decision(decision), state, NOW)
        assert str(refused.value) == (
            f"cook {COOK} was refused, so there is nothing to decide: "
            "did not beat the baseline: lower bound 0.0000 ≤ noise floor 0"
        )
    assert state.status == "checked"


def test_a_cook_command_whose_id_is_not_a_cooks_is_refused() -> None:
    with pytest.raises(Refusal, match="run_x is not a cook id"):
        cooks.run_ids(msgspec.structs.replace(request(), run_id="run_x"))
    with pytest.raises(Refusal, match="run_x is not a cook id"):
        cooks.decide(msgspec.structs.replace(_decision("approve"), run_id="run_x"), None, NOW)


def test_an_unknown_or_unchecked_cook_cannot_be_decided() -> None:
    with pytest.raises(Refusal, match="does not exist"):
        cooks.decide(_decision("approve"), None, NOW)
    state, _ = cooks.request_cook(request(), None, known_runs(), NOW)
    with pytest.raises(Refusal, match="has not been checked yet"):
        cooks.decide(_decision("approve"), state, NOW)
