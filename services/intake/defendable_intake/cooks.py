"""Cook admission, pure: which cook requests and decisions intake admits, and what they yield.

A cook (run_id "cook_<hex>") pairs checked runs of a base model (pre) and of its cooked
model (post) over one frozen eval set. Intake's part is what only intake knows: that every
run named belongs to the org and has a verdict, that each side's runs share one model (the
one the cook names) and one flight sheet, and what each run scored.
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

from defendable_canonical.cook import (
    COOK_RECEIPT_SCHEMA,
    CheckedRun,
    CheckedSide,
    CookDataset,
    CookReceiptBody,
    CookSide,
)
from defendable_canonical.events import (
    CookApproved,
    CookChecked,
    CookRejected,
    CookRequested,
    DecideCook,
    RequestCook,
    encode,
)
from defendable_canonical.model import Approval, FlightSheetRef

from .admission import Refusal, RunStatus, envelope

# The referee's lift.MAX_ITEMS (services share no code but libs/canonical): a side or an
# eval set beyond it is refused before any run is looked up.
MAX_ITEMS: Final = 10_000
# What a cook event may weigh: one stored JetStream message (defendable_runtime.messaging.
# MAX_MESSAGE_BYTES, 8 MiB less 64 KiB) less 64 KiB for its headers (a dead letter adds its
# reason). A 10,000-item cook makes at most ~6.4 MB (item ids of 128 characters; ~2.8 MB with
# ids of 10): docs/decisions.md, "Cooks of 10,000 items".
MAX_COOK_EVENT_BYTES: Final = 8 * 1024 * 1024 - 128 * 1024
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


# ---------------------------------------------------------------- what a cook reads of a run


class RunProfile(msgspec.Struct, frozen=True, gc=False):
    model: str


class RunScore(msgspec.Struct, frozen=True, gc=False):
    score: str


class RunCheck(msgspec.Struct, frozen=True, gc=False):
    flight_sheet: FlightSheetRef
    verdict: RunScore


class CookRun(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a cook reads of one of intake's runs: a view of `admission.RunState`.

    `cook_store.load_runs` decodes the stored RunState straight into it, so the findings and
    the rest of the verdict of up to 20,000 runs are skipped by the decoder, never held.
    """

    run_id: str
    status: RunStatus
    agent_profile: RunProfile
    checked: RunCheck | None = None


def cook_run(run: object) -> CookRun:
    """The view of a RunState (or anything shaped like one) that `request_cook` reads."""
    return msgspec.convert(run, CookRun, from_attributes=True)


def awaiting_verdict(runs: Iterable[CookRun]) -> list[str]:
    """Runs submitted whose verdict intake has not recorded yet (it may be on its way)."""
    return [run.run_id for run in runs if run.status == "submitted"]


def _sheet(ref: FlightSheetRef) -> str:
    return f"{ref.id}@{ref.version} ({ref.sha256})"


def _side(cmd: RequestCook, side: str, runs: Mapping[str, CookRun]) -> CheckedSide:
    """One side as the event carries it: the runs' one model (the cook's) and one sheet, and each score."""
    pairs, model = (cmd.pre, cmd.base_model) if side == "pre" else (cmd.post, cmd.cooked_model)
    named = [runs[p.run_id] for p in pairs]
    if others := [f"{r.run_id} ({r.agent_profile.model!r})" for r in named if r.agent_profile.model != model]:
        role = "base" if side == "pre" else "cooked"
        raise Refusal(f"cook {cmd.run_id}: {side} runs not of the {role} model {model!r}: {_listed(others)}")
    checks = [r.checked for r in named if r.checked is not None]
    sheets: dict[FlightSheetRef, list[str]] = {}
    for run, check in zip(named, checks, strict=True):
        sheets.setdefault(check.flight_sheet, []).append(run.run_id)
    if len(sheets) > 1:
        parts = "; ".join(f"{_sheet(ref)} for {_listed(ids)}" for ref, ids in sheets.items())
        raise Refusal(f"cook {cmd.run_id}: {side} runs were checked under more than one flight sheet: {parts}")
    return CheckedSide(
        model=model,
        flight_sheet=checks[0].flight_sheet,
        runs=[
            CheckedRun(item_id=p.item_id, run_id=p.run_id, score=c.verdict.score)
            for p, c in zip(pairs, checks, strict=True)
        ],
    )


def request_cook(
    cmd: RequestCook, existing: CookState | None, runs: Mapping[str, CookRun], now: str
) -> tuple[CookState, CookRequested]:
    """Admit a cook whose every run is in this org and checked, each side of its declared model
    and of one flight sheet.

    `runs` holds those of `run_ids(cmd)` that intake knows *in this org*: another org's run
    is missing from it, and refused exactly like one that does not exist.
    """
    if existing is not None:
        raise Refusal(f"cook {cmd.run_id} already exists in org {cmd.org_id}")
    wanted = run_ids(cmd)
    if not cmd.pre or not cmd.post:
        raise Refusal(f"cook {cmd.run_id}: each side names at least one run")
    if missing := [run_id for run_id in wanted if run_id not in runs]:
        raise Refusal(f"cook {cmd.run_id}: runs not found in this organisation: {_listed(missing)}")
    if unchecked := [f"{r.run_id} ({r.status})" for r in (runs[i] for i in wanted) if r.checked is None]:
        raise Refusal(f"cook {cmd.run_id}: runs without a verdict: {_listed(unchecked)}; cook checked runs only")
    pre, post = _side(cmd, "pre", runs), _side(cmd, "post", runs)
    event = CookRequested(
        **envelope(cmd.command_id, cmd.org_id, cmd.run_id, "CookRequested", now),
        project=cmd.project,
        dataset=cmd.dataset,
        eval_set=cmd.eval_set,
        pre=pre,
        post=post,
    )
    if (size := len(encode(event))) > MAX_COOK_EVENT_BYTES:
        raise Refusal(
            f"cook {cmd.run_id}: its {len(cmd.eval_set.items)} items make a {size}-byte event; a cook event may be"
            f" at most {MAX_COOK_EVENT_BYTES} bytes (one JetStream message): shorten its ids or split the eval set"
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
