"""Governance on the wire: what intake observes from run events and commands, and the events it
publishes for what the state machine decided. Pure: no I/O, time is an argument.

Inputs (each becomes one or two `governance` observations):

* a `Checked` run → `VerdictObserved` (the verdict's `risk.high`) when it has a high flag, and
  `UsageObserved` when the run used anything. A run's usage is counted once, at its check:
  the larger, per dimension, of what its submitter declared (`Submit.usage`) and what its OTLP
  trail reports (`Checked.execution_trail`): the trail is measured, the declaration is a
  claim, and a run cannot lower its count by under-declaring. Tokens are input + output.
  The event time is the verdict's `occurred_at`.
* `Heartbeat`, `AcknowledgeIncident`, `UnlockLane` commands (see governor.py).

Outputs: `IncidentOpened`, `LaneLocked`, `IncidentAcknowledged` and `LaneUnlocked`. Their
ids derive from the incident (or unlock) id and the event type alone, so whichever input
caused them, however often it is redelivered, JetStream sees one id per fact.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Final

import msgspec

from defendable_canonical.events import (
    Checked,
    Event,
    IncidentAcknowledged,
    IncidentOpened,
    LaneLocked,
    LaneUnlocked,
    Usage,
    derive_id,
)
from defendable_canonical.incident import rfc3339_ms
from defendable_canonical.trail import TrailSummary

from .admission import PRODUCER, EnvelopeArgs, RunState
from .governance import (
    AnyAction,
    AnyObservation,
    GovernanceState,
    LaneLock,
    LockLane,
    MintIncidentReceipt,
    OpenIncident,
    RecordUnlock,
    UsageObserved,
    VerdictObserved,
    refusal_reason,
)
from .governance_policy import MAX_TOKENS, NS

_COST_PLACES: Final = Decimal("1e-12")
_MAX_COST: Final = Decimal("999999999999999.999999999999")  # governance's bound on one run's cost


def unix_ns(instant: str, default: int) -> int:
    """RFC 3339 text → unix nanoseconds (to the microsecond); `default` when it does not parse."""
    try:
        parsed = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    except ValueError:
        return default
    if parsed.tzinfo is None:
        return default
    return int(parsed.timestamp()) * NS + parsed.microsecond * 1000


def run_usage(declared: Usage | None, trail: TrailSummary | msgspec.UnsetType) -> tuple[int, str | None]:
    """(tokens, cost) one run counts: the larger of declared and measured, per dimension, bounded.

    Cost is rounded *up* to 12 places and capped (governance's input contract), so a bound
    never under-counts; an unparseable or negative reported cost counts as none.
    """
    tokens = 0
    cost: Decimal | None = None
    sources: list[tuple[int, str | None]] = []
    if declared is not None:
        sources.append((declared.input_tokens + declared.output_tokens, declared.cost))
    if isinstance(trail, TrailSummary):
        sources.append((trail.input_tokens + trail.output_tokens, trail.cost))
    for used, text in sources:
        tokens = max(tokens, used)
        amount = _decimal(text)
        if amount is not None:
            cost = amount if cost is None else max(cost, amount)
    if cost is None:
        return min(tokens, MAX_TOKENS), None
    bounded = min(cost, _MAX_COST).quantize(_COST_PLACES, rounding=ROUND_CEILING)
    return min(tokens, MAX_TOKENS), _plain(bounded)


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def _plain(amount: Decimal) -> str:
    """Decimal text without trailing zeros or exponent: "0.42", "500"."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def checked_observations(run: RunState, checked: Checked, now_ns: int) -> list[AnyObservation]:
    """What a verdict tells governance (nothing for a clean run that used nothing).

    The event time is the verdict's own, but never later than intake's clock (a referee
    clock running ahead must not stretch a window)."""
    at_ns = min(unix_ns(checked.occurred_at, now_ns), now_ns)
    observations: list[AnyObservation] = []
    if checked.verdict.risk.high > 0:
        observations.append(
            VerdictObserved(
                run_id=run.run_id,
                lane=run.lane,
                profile=run.agent_profile,
                high_flags=checked.verdict.risk.high,
                at_ns=at_ns,
            )
        )
    tokens, cost = run_usage(run.usage, checked.execution_trail)
    if tokens > 0 or (cost is not None and Decimal(cost) > 0):
        observations.append(
            UsageObserved(
                run_id=run.run_id, lane=run.lane, profile=run.agent_profile, tokens=tokens, cost=cost, at_ns=at_ns
            )
        )
    return observations


def _envelope(subject_id: str, kind: str, org_id: str, cause_id: str, now: str) -> EnvelopeArgs:
    return EnvelopeArgs(
        event_id=derive_id("ev", subject_id, kind),
        org_id=org_id,
        run_id=subject_id,
        occurred_at=now,
        producer=PRODUCER,
        causation_id=cause_id,
    )


def lock_reason(state: GovernanceState, lock: LaneLock) -> str:
    """The refusal text for `lock`, citing the policy and clause of the incident that set it."""
    return refusal_reason(lock, state.incidents[lock.incident_id].incident.policy)


def events_for(actions: list[AnyAction], state: GovernanceState, cause_id: str, now_ns: int) -> list[Event]:
    """The events that announce `actions` (taken in `state`, the state they produced)."""
    now = rfc3339_ms(now_ns)
    org = state.org_id
    events: list[Event] = []
    for action in actions:
        match action:
            case OpenIncident(incident=incident):
                events.append(
                    IncidentOpened(
                        **_envelope(incident.incident_id, "IncidentOpened", org, cause_id, now),
                        kind=incident.kind,
                        lane=incident.lane,
                        agent_profile=incident.profile,
                        profile_key=incident.profile_key,
                        trigger=incident.trigger,
                        response=incident.response,
                        policy=incident.policy,
                        opened_at=rfc3339_ms(incident.opened_at_ns),
                    )
                )
            case LockLane():
                lock = LaneLock(
                    lane=action.lane,
                    profile=action.profile,
                    profile_key=action.profile_key,
                    clause_id=action.clause_id,
                    incident_id=action.incident_id,
                    locked_at_ns=action.at_ns,
                )
                events.append(
                    LaneLocked(
                        **_envelope(action.incident_id, "LaneLocked", org, cause_id, now),
                        lane=action.lane,
                        agent_profile=action.profile,
                        profile_key=action.profile_key,
                        clause_id=action.clause_id,
                        incident_id=action.incident_id,
                        locked_at=rfc3339_ms(action.at_ns),
                        reason=lock_reason(state, lock),
                    )
                )
            case MintIncidentReceipt():
                events.append(
                    IncidentAcknowledged(
                        **_envelope(action.incident_id, "IncidentAcknowledged", org, cause_id, now), receipt=action.body
                    )
                )
            case RecordUnlock(record=record):
                events.append(
                    LaneUnlocked(**_envelope(record.unlock_id, "LaneUnlocked", org, cause_id, now), record=record)
                )
    return events
