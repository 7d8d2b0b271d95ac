"""Cook admission, pure: which cook requests and decisions intake admits, and what they yield.

A cook (run_id "cook_<hex>") pairs checked runs of a base model (pre) and of its cooked
model (post) over one frozen eval set. Intake's part is what only intake knows: that every
run named belongs to the org and has a verdict, and what that verdict, sheet and model were.
Whether the pairs are comparable and the lift is real is the referee's decision
(CookChecked); intake then admits a human's decision only on a cook the referee found
eligible, and builds the receipt body from that decision. No I/O here: `cook_flow.py`
loads the state, calls these, and stores the result with its events in one transaction.

States: requested (CookRequested emitted) → checked (CookChecked recorded) → approved
(CookApproved) | rejected (CookRejected). A cook the referee refused stays `checked`, with
`checked.eligible` False: there is nothing left to decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

import msgspec

from defendable_canonical.cook import COOK_RECEIPT_SCHEMA, CheckedRun, CookDataset, CookReceiptBody, CookSide
from defendable_canonical.events import (
    CookApproved,
    CookChecked,
    CookRejected,
    CookRequested,
    DecideCook,
    RequestCook,
    encode,
)
from defendable_canonical.model import Approval

from .admission import Refusal, RunState, envelope

# The referee's lift.MAX_ITEMS (services share no code but libs/canonical): a side or an
# eval set beyond it is refused before any run is looked up.
MAX_ITEMS: Final = 10_000
# What a cook event may weigh: below JetStream's 1 MiB message limit
# (defendable_runtime.messaging.MAX_MESSAGE_BYTES), with room for headers.
MAX_COOK_EVENT_BYTES: Final = 1_000_000
_MOST_LISTED: Final = 5
_COOK_ID: Final = re.compile(r"cook_[0-9a-f]{32}")

CookStatus = Literal["requested", "checked", "approved", "rejected"]


class CookState(msgspec.Struct, kw_only=True):
    """Intake's own record of a cook (service-private)."""

    org_id: str
    cook_id: str
    project: str
    dataset: CookDataset
    status: CookStatus
    requested_event_id: str  # the CookRequested whose decision (CookChecked.causation_id) counts
    checked: CookChecked | None = None


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MOST_LISTED])
    return shown if len(names) <= _MOST_LISTED else f"{shown} and {len(names) - _MOST_LISTED} more"


def check_cook_id(cook_id: str) -> None:
    """A cook's events share the RUNS stream with runs' events; the prefix keeps their read models apart."""
    if _COOK_ID.fullmatch(cook_id) is None:
        raise Refusal(f"{cook_id} is not a cook id: a cook's run_id is cook_ and 32 lowercase hex digits")


def run_ids(cmd: RequestCook) -> list[str]:
    """The distinct runs a cook names, in order of first mention; Refusal beyond the item limit."""
    check_cook_id(cmd.run_id)
    for what, count in (("eval set", len(cmd.eval_set.items)), ("pre", len(cmd.pre)), ("post", len(cmd.post))):
        if count > MAX_ITEMS:
            raise Refusal(f"cook {cmd.run_id}: {what} has {count} items; a cook allows at most {MAX_ITEMS}")
    return list(dict.fromkeys(pair.run_id for pair in (*cmd.pre, *cmd.post)))


def awaiting_verdict(runs: Iterable[RunState]) -> list[str]:
    """Runs submitted whose verdict intake has not recorded yet (it may be on its way)."""
    return [run.run_id for run in runs if run.status == "submitted"]


def _checked_run(item_id: str, run: RunState) -> CheckedRun:
    assert run.checked is not None
    # The verdict without its ranked flags: they stay on the run (GET /runs/{id}); a cook compares
    # scores, and this keeps an item's weight fixed, so the event's size follows the item count.
    verdict = msgspec.structs.replace(run.checked.verdict, flags=[])
    return CheckedRun(
        item_id=item_id, run_id=run.run_id, flight_sheet=run.checked.flight_sheet, model=run.agent_profile.model,
        verdict=verdict,
    )  # fmt: skip


def request_cook(
    cmd: RequestCook, existing: CookState | None, runs: Mapping[str, RunState], now: str
) -> tuple[CookState, CookRequested]:
    """Admit a cook whose every run is in this org and checked, each side on its declared model.

    `runs` holds those of `run_ids(cmd)` that intake knows *in this org*: another org's run
    is missing from it, and refused exactly like one that does not exist.
    """
    if existing is not None:
        raise Refusal(f"cook {cmd.run_id} already exists in org {cmd.org_id}")
    wanted = run_ids(cmd)
    if missing := [run_id for run_id in wanted if run_id not in runs]:
        raise Refusal(f"cook {cmd.run_id}: runs not found in this organisation: {_listed(missing)}")
    if unchecked := [f"{r.run_id} ({r.status})" for r in (runs[i] for i in wanted) if r.checked is None]:
        raise Refusal(f"cook {cmd.run_id}: runs without a verdict: {_listed(unchecked)}; cook checked runs only")
    for side, pairs, model in (("pre", cmd.pre, cmd.base_model), ("post", cmd.post, cmd.cooked_model)):
        if others := [
            f"{p.run_id} ({runs[p.run_id].agent_profile.model!r})"
            for p in pairs
            if runs[p.run_id].agent_profile.model != model
        ]:
            role = "base" if side == "pre" else "cooked"
            raise Refusal(f"cook {cmd.run_id}: {side} runs not of the {role} model {model!r}: {_listed(others)}")
    event = CookRequested(
        **envelope(cmd.command_id, cmd.org_id, cmd.run_id, "CookRequested", now),
        project=cmd.project,
        base_model=cmd.base_model,
        cooked_model=cmd.cooked_model,
        dataset=cmd.dataset,
        eval_set=cmd.eval_set,
        pre=[_checked_run(p.item_id, runs[p.run_id]) for p in cmd.pre],
        post=[_checked_run(p.item_id, runs[p.run_id]) for p in cmd.post],
    )
    if (size := len(encode(event))) > MAX_COOK_EVENT_BYTES:
        raise Refusal(
            f"cook {cmd.run_id}: its {len(cmd.eval_set.items)} items make a {size}-byte event; a cook event may be"
            f" at most {MAX_COOK_EVENT_BYTES} bytes (one JetStream message): split the eval set"
        )
    state = CookState(
        org_id=cmd.org_id,
        cook_id=cmd.run_id,
        project=cmd.project,
        dataset=cmd.dataset,
        status="requested",
        requested_event_id=event.event_id,
    )
    return state, event


def record_checked(state: CookState | None, checked: CookChecked) -> bool:
    """Record the referee's decision on a requested cook; False when it does not apply (idempotent)."""
    if state is None or state.status != "requested" or checked.causation_id != state.requested_event_id:
        return False
    state.status = "checked"
    state.checked = checked
    return True


def decide(cmd: DecideCook, state: CookState | None, now: str) -> CookApproved | CookRejected:
    """Only a checked, eligible, undecided cook may be decided; approval yields the receipt body."""
    check_cook_id(cmd.run_id)
    if state is None:
        raise Refusal(f"cook {cmd.run_id} does not exist")
    if state.status in ("approved", "rejected"):
        raise Refusal(f"cook {cmd.run_id} was already {state.status}")
    checked = state.checked
    if state.status != "checked" or checked is None:
        raise Refusal(f"cook {cmd.run_id} has not been checked yet; decide once the referee has decided it")
    if not checked.eligible:
        raise Refusal(f"cook {cmd.run_id} was refused, so there is nothing to decide: {'; '.join(checked.reasons)}")
    if cmd.decision == "reject":
        state.status = "rejected"
        return CookRejected(
            **envelope(cmd.command_id, state.org_id, state.cook_id, "CookRejected", now),
            approver=cmd.approver,
            decided_at=now,
            note=cmd.note,
        )
    body = cook_receipt_body(state, checked, Approval(approver=cmd.approver, decided_at=now, note=cmd.note))
    state.status = "approved"
    return CookApproved(**envelope(cmd.command_id, state.org_id, state.cook_id, "CookApproved", now), receipt=body)


def cook_receipt_body(state: CookState, checked: CookChecked, approval: Approval) -> CookReceiptBody:
    """The hashed body, field for field as the referee's `lift.cook_receipt_body` builds it from
    the same decision (tests/intake/test_cooks.py compares the two); ValueError for a decision
    that is not eligible or lacks what an eligible one carries."""
    if not checked.eligible:
        raise ValueError(f"cook {state.cook_id}: a refused cook gets no receipt")
    sheet, ref, lift = checked.flight_sheet, checked.eval_set, checked.lift
    base, cooked, mean_pre, mean_post = checked.base_model, checked.cooked_model, checked.mean_pre, checked.mean_post
    if sheet is None or ref is None or lift is None or base is None or cooked is None:
        raise ValueError(f"cook {state.cook_id}: the eligible decision lacks its sheet, eval set, lift or models")
    if mean_pre is None or mean_post is None:
        raise ValueError(f"cook {state.cook_id}: the eligible decision lacks its mean scores")
    return CookReceiptBody(
        schema=COOK_RECEIPT_SCHEMA,
        org_id=state.org_id,
        run_id=state.cook_id,
        project=state.project,
        flight_sheet=sheet,
        base_model=base,
        cooked_model=cooked,
        dataset=state.dataset,
        eval_set=ref,
        pre=CookSide(mean_score=mean_pre, items=checked.pre),
        post=CookSide(mean_score=mean_post, items=checked.post),
        lift=lift,
        approval=approval,
    )
