"""A cook's check: CookRequested in, CookChecked out. Pure; `app.py` moves the bytes.

The decision is `lift.decide_cook`'s; this module adds what only the referee's library
knows: each side's Flight Sheet must be one this referee has, with the hash the runs were
checked under, and the sheet declares how far above noise a lift must be (`cook.noise_floor`)
and on how many items (`cook.min_items`).

Plan: 1. look up both sides' sheets (id@version and sha256) in the library; 2. take the
noise floor and item minimum of the one sheet they share (of two, the strictest of those
known: the cook is refused for mixing sheets anyway, and the event still says which floor
applied); 3. decide; 4. add the library's reasons, so that `eligible` is True exactly when
no reason is left.

Bounded: the event is at most one JetStream message (messaging.MAX_MESSAGE_BYTES, 8 MiB; a
10,000-item cook makes at most ~6.4 MB), `decide_cook` refuses more than lift.MAX_ITEMS
items before any resampling, and caps n × resamples at lift.MAX_WORK.
"""

from __future__ import annotations

from collections.abc import Iterable

from defendable_canonical.cook import LIFT_METHOD, CookLift
from defendable_canonical.events import CookChecked, CookRequested, derive_id
from defendable_canonical.model import FlightSheetRef
from defendable_referee.lift import MIN_ITEMS, CookDecision, check_noise_floor, decide_cook
from defendable_referee.sheet import CookPolicy, Library, UnknownFlightSheet

PRODUCER = "referee"
_MOST_LISTED = 5


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_MOST_LISTED])
    return shown if len(names) <= _MOST_LISTED else f"{shown} and {len(names) - _MOST_LISTED} more"


def sheet_policy(refs: Iterable[FlightSheetRef], library: Library) -> tuple[CookPolicy, list[str]]:
    """The cook policy that applies to runs checked under `refs`, and why those sheets will not do.

    One known sheet: its policy. Several: the highest floor and item minimum among the known
    ones. None known: the defaults (the cook is refused for the reasons returned).
    """
    policies: list[CookPolicy] = []
    unknown: list[str] = []
    moved: list[str] = []
    for ref in sorted(set(refs), key=lambda r: (r.id, r.version, r.sha256)):
        try:
            loaded = library.get(ref.id, ref.version)
        except UnknownFlightSheet:
            unknown.append(f"{ref.id}@{ref.version}")
            continue
        if loaded.sha256 != ref.sha256:
            moved.append(f"{ref.id}@{ref.version} (runs: {ref.sha256}, library: {loaded.sha256})")
            continue
        policies.append(loaded.sheet.cook)
    reasons = []
    if unknown:
        reasons.append(f"flight sheets this referee does not have: {_listed(unknown)}")
    if moved:
        reasons.append(f"flight sheets whose hash differs from the library's: {_listed(moved)}")
    if not policies:
        return CookPolicy(), reasons
    floor = max(policies, key=lambda p: check_noise_floor(p.noise_floor)).noise_floor
    return CookPolicy(noise_floor=floor, min_items=max(p.min_items for p in policies)), reasons


def check_cook(event: CookRequested, library: Library, now: str) -> CookChecked:
    """The referee's decision on a cook (module docstring); its event id derives from the request's."""
    # 1./2. The sheets and the policy they declare.
    policy, sheet_reasons = sheet_policy((event.pre.flight_sheet, event.post.flight_sheet), library)
    # 3. The decision proper.
    decision: CookDecision = decide_cook(event.pre, event.post, event.eval_set, policy.noise_floor)
    # 4. What only the library knows.
    reasons = [*decision.reasons, *sheet_reasons]
    n = len(event.eval_set.items)
    if MIN_ITEMS <= n < policy.min_items:
        reasons.append(f"eval set has {n} items; the flight sheet asks a cook for at least {policy.min_items}")
    estimate = decision.estimate
    lift = None
    if estimate is not None:  # as cook_receipt_body words it, so the receipt repeats this event
        lift = CookLift(
            method=LIFT_METHOD,
            mean_difference=estimate.mean_difference,
            lower=estimate.lower,
            upper=estimate.upper,
            confidence=estimate.confidence,
            resamples=estimate.resamples,
            seed=estimate.seed,
            noise_floor=policy.noise_floor,
        )
    return CookChecked(
        event_id=derive_id("ev", event.event_id, "CookChecked"),
        org_id=event.org_id,
        run_id=event.run_id,
        occurred_at=now,
        producer=PRODUCER,
        causation_id=event.event_id,
        eligible=not reasons,
        reasons=reasons,
        noise_floor=policy.noise_floor,
        flight_sheet=decision.flight_sheet,
        base_model=decision.base_model,
        cooked_model=decision.cooked_model,
        eval_set=decision.eval_set,
        pre=decision.pre,
        post=decision.post,
        lift=lift,
        mean_pre=None if estimate is None else estimate.mean_pre,
        mean_post=None if estimate is None else estimate.mean_post,
    )
