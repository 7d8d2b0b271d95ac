"""The pure state machine behind Incident receipts (issue 3).

The policy it applies — declared, versioned and hashed like a Flight Sheet — is
`governance_policy.py`; intake's wiring (what it observes, what it stores and publishes)
is `governor.py`.

`observe(state, observation, policy, now_ns)` is the whole machine: it returns the new
state and the actions intake must carry out (lock a lane, open an incident, ask the ledger
to mint an Incident receipt, record an unlock). It reads no clock — time is an argument —
and never mutates the state it is given. The promises, each tested in
tests/intake/test_governance.py:

1. Windows are half-open: a window of W seconds ending at t is (t - W, t]; something
   exactly W old has left it. `high_flags`: `count` verdicts with at least one high flag,
   of one profile in the clause's lane, whose times span *less* than W. `spend_cap`: the
   tokens or cost in some window (t - W, t] ending at a usage observation *exceed* the cap
   (reaching it exactly is allowed). `dark_agent`: on a Tick at `now`, a profile that has
   sent heartbeats is dark once none lies in (now - H, now], i.e. now - last >= H.
2. Event time: windows are computed on the observations' own `at_ns`; `now_ns` only
   prunes. An observation that arrives a clause's window or more after it happened
   (at_ns <= now_ns - W) is ignored by that clause: late history does not lock today's lane.
3. Idempotent: each run's verdict and each run's usage count once per profile (a
   redelivery, or a second source for the same run, is ignored). Incident ids derive
   from org, clause, profile key and what fired (the counted run ids; for a dark agent the
   last heartbeat), so a replay yields the same incident, and an incident already known is
   never opened twice.
4. One response at a time: while the clause's scope is locked for the profile (a lane, or
   "*" for every lane), or an incident of the same clause and profile awaits acknowledgement,
   further triggers open nothing.
5. An Incident receipt is minted only once a human acknowledges the incident, and once.
   Unlocking is an approver action: it lifts the lock, is recorded (`RecordUnlock`), and
   acknowledges the incident first if nobody had, so a lock is never lifted off the chain.
   Counting for the unlocked scope restarts: observations at or before the unlock's
   instant no longer count for its clauses, so only new evidence can lock it again.
6. Bounded: per clause and profile, at most `count` flag entries and MAX_USAGE_ENTRIES usage
   entries (the two oldest usage entries are merged at the later one's time, which never
   under-counts spend); MAX_SEEN_RUNS remembered run ids per profile (the oldest arrivals
   go first; intake's own command idempotency is the first line of de-duplication);
   MAX_PROFILES profiles per org (the least recently seen unlocked ones are forgotten
   first). Each Tick prunes what is older than twice the longest window (the retention),
   and forgets acknowledged incidents past it (their receipts are on the chain).
   Unacknowledged incidents stay: at most one per clause and profile. Locked profiles are
   never forgotten.

Time: observations carry their own `at_ns`; `now_ns` is intake's clock at processing, and a
Tick's `now_ns` should be the same value. Everything is unix nanoseconds, as int.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from decimal import Context, Decimal
from typing import Final, Literal, TypeVar

import msgspec

from defendable_canonical.digest import Digest
from defendable_canonical.events import derive_id
from defendable_canonical.incident import (
    MAX_TRIGGER_RUN_IDS,
    ClauseValue,
    DarkAgentTrigger,
    GovernancePolicyRef,
    HighFlagsTrigger,
    IncidentKind,
    IncidentReceiptBody,
    IncidentTrigger,
    Response,
    Scope,
    SpendCapTrigger,
    UnlockRecord,
    profile_key,
    rfc3339_ms,
)
from defendable_canonical.model import AgentProfile, Approval, Lane

from .governance_policy import (
    MAX_TOKENS,
    NS,
    AnyClause,
    DarkAgentClause,
    GovernanceError,
    HighFlagsClause,
    LoadedPolicy,
    SpendCapClause,
    window_s,
)

ProfileKey = Digest

MAX_USAGE_ENTRIES: Final = 1_000  # per spend clause and profile; older ones are merged, never dropped
MAX_SEEN_RUNS: Final = 10_000  # per profile: verdict and usage run ids remembered for de-duplication
MAX_PROFILES: Final = 1_000  # per org
MAX_INCIDENTS: Final = 10_000  # per org, acknowledged ones evicted first

_USAGE_COST: Final = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,12})?")
_MATH: Final = Context(prec=60)  # exact for every sum of bounded costs this module can form


class InvalidObservation(GovernanceError, ValueError):
    """An observation breaks the machine's input contract (intake validates before observing)."""


# ---------------------------------------------------------------- observations


class Observation(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="type"):
    pass


class VerdictObserved(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    """A run's verdict (from Checked): only `high_flags` >= 1 counts towards a high_flags clause."""

    run_id: str
    lane: Lane
    profile: AgentProfile
    high_flags: int
    at_ns: int


class UsageObserved(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    """A run's total usage, from its submission or its OTLP trail. `cost` is a decimal string in
    the org's accounting currency — the one the policy's spend caps name. Nothing converts: a
    submitter declares usage in that currency, and a trail's cost is taken as already in it."""

    run_id: str
    lane: Lane
    profile: AgentProfile
    tokens: int
    cost: str | None
    at_ns: int


class Heartbeat(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    profile: AgentProfile
    lane: Lane
    at_ns: int


class Tick(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    """Time passes: dark agents are detected, and the state is pruned."""

    now_ns: int


class Acknowledged(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    incident_id: str
    approver: str
    at_ns: int
    note: str = ""


class Unlocked(Observation, frozen=True, kw_only=True, gc=False, tag=True):
    lane: Scope  # the scope that is locked: a lane, or "*"
    profile: AgentProfile
    approver: str
    at_ns: int
    note: str = ""


AnyObservation = VerdictObserved | UsageObserved | Heartbeat | Tick | Acknowledged | Unlocked


# ---------------------------------------------------------------- state (msgspec, so intake can store it)


class FlagEntry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    at_ns: int
    run_id: str


class UsageEntry(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One run's usage (or several merged: `runs`), with running totals from the list's start
    (`cum_*` include this entry), so a window's sum is two look-ups."""

    at_ns: int
    run_id: str
    tokens: int
    cost: str
    runs: int
    cum_tokens: int
    cum_cost: str


class ProfileTrack(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What governance remembers of one agent profile of the org."""

    profile: AgentProfile
    last_seen_ns: int  # now_ns of the latest observation of it; the eviction and pruning order
    seen: dict[str, int] = {}  # "v/<run>", "u/<run>" -> at_ns, in arrival order
    flags: dict[str, list[FlagEntry]] = {}  # high_flags clause id -> verdicts, sorted by (at_ns, run_id)
    usage: dict[str, list[UsageEntry]] = {}  # spend_cap clause id -> usage, sorted by (at_ns, run_id)
    heartbeats: dict[str, int] = {}  # lane -> latest heartbeat at_ns
    dark_alerted: dict[str, int] = {}  # dark_agent clause id -> the last heartbeat its incident was for


class LaneLock(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    lane: Scope
    profile: AgentProfile
    profile_key: str
    clause_id: str
    incident_id: str
    locked_at_ns: int


class Incident(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An incident as opened: what fired, for whom, and what was done about it."""

    incident_id: str
    kind: IncidentKind
    clause_id: str
    lane: Scope
    profile: AgentProfile
    profile_key: str
    trigger: IncidentTrigger
    response: Response
    policy: GovernancePolicyRef  # as at opening: a later policy version does not rewrite it
    opened_at_ns: int


class IncidentState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    incident: Incident
    acknowledgement: Approval | None = None


class GovernanceState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One org's governance state. Never mutated: `observe` returns a new one."""

    org_id: str
    profiles: dict[str, ProfileTrack] = {}  # profile key -> track
    locks: dict[str, LaneLock] = {}  # "<scope>|<profile key>" -> lock
    incidents: dict[str, IncidentState] = {}
    open_incidents: dict[str, str] = {}  # "<clause id>|<profile key>" -> incident id, until acknowledged


_state_decoder: msgspec.json.Decoder[GovernanceState] = msgspec.json.Decoder(GovernanceState)


def encode_state(state: GovernanceState) -> bytes:
    return msgspec.json.encode(state)


def decode_state(data: bytes) -> GovernanceState:
    return _state_decoder.decode(data)


# ---------------------------------------------------------------- actions: what intake must do


class Action(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="type"):
    pass


class OpenIncident(Action, frozen=True, kw_only=True, gc=False, tag=True):
    """Record the incident (and tell the approvers); nothing is minted yet."""

    incident: Incident


class LockLane(Action, frozen=True, kw_only=True, gc=False, tag=True):
    """From now on refuse new runs of `profile_key` in `lane` ("*": every lane) with 423, citing `clause_id`."""

    lane: Scope
    profile: AgentProfile
    profile_key: str
    clause_id: str
    incident_id: str
    at_ns: int


class MintIncidentReceipt(Action, frozen=True, kw_only=True, gc=False, tag=True):
    """A human acknowledged the incident: ask the ledger to mint this body on the org's chain."""

    incident_id: str
    body: IncidentReceiptBody


class RecordUnlock(Action, frozen=True, kw_only=True, gc=False, tag=True):
    """An approver lifted a lock: lift it, and ask the ledger to mint the record."""

    record: UnlockRecord


AnyAction = OpenIncident | LockLane | MintIncidentReceipt | RecordUnlock


# ---------------------------------------------------------------- queries


def _lock_key(scope: Scope, key: str) -> str:
    return f"{scope}|{key}"


def lock_for(state: GovernanceState, lane: Lane, profile: AgentProfile) -> LaneLock | None:
    """The lock that refuses a new run of `profile` in `lane`: the lane's own, else the profile's "*"."""
    key = profile_key(profile)
    return state.locks.get(_lock_key(lane, key)) or state.locks.get(_lock_key("*", key))


def is_locked(state: GovernanceState, lane: Lane, profile: AgentProfile) -> str | None:
    """The clause id a 423 refusal must cite, or None when the lane is open for this profile."""
    lock = lock_for(state, lane, profile)
    return lock.clause_id if lock is not None else None


def refusal_reason(lock: LaneLock, policy: GovernancePolicyRef) -> str:
    """What a refused run is told (HTTP 423, CommandRefused): the policy, the clause and what it
    says, and how to lift the lock. `policy` is the locking incident's (`Incident.policy`)."""
    where = "every lane" if lock.lane == "*" else f"lane {lock.lane}"
    return (
        f"{where} is locked for this agent profile by policy {policy.id}@{policy.version}"
        f" clause {lock.clause_id}: {clause_summary(policy.clause)};"
        f" an approver can unlock it: POST /incidents/{lock.incident_id}/unlock"
    )


def clause_summary(clause: ClauseValue) -> str:
    """A clause in a few words, from its value as the policy file states it."""
    match clause.get("kind"):
        case "high_flags":
            return f"{clause.get('count')} high-flag verdicts within {clause.get('window_s')} s"
        case "spend_cap":
            caps = [f"{clause['max_tokens']} tokens"] if clause.get("max_tokens") is not None else []
            if clause.get("max_cost") is not None:
                caps.append(f"{clause['max_cost']} {clause.get('currency')}")
            return f"usage above {' or '.join(caps)} within {clause.get('window_s')} s"
        case "dark_agent":
            return f"no heartbeat for {clause.get('heartbeat_window_s')} s"
    return f"clause kind {clause.get('kind')!r}"


def incident_body(org_id: str, incident: Incident, acknowledgement: Approval) -> IncidentReceiptBody:
    return IncidentReceiptBody(
        org_id=org_id,
        incident_id=incident.incident_id,
        kind=incident.kind,
        lane=incident.lane,
        agent_profile=incident.profile,
        profile_key=incident.profile_key,
        trigger=incident.trigger,
        response=incident.response,
        policy=incident.policy,
        opened_at=rfc3339_ms(incident.opened_at_ns),
        acknowledgement=acknowledgement,
    )


# ---------------------------------------------------------------- the machine


def observe(
    state: GovernanceState, observation: AnyObservation, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    """The new state and the actions to carry out, in order. `state` is left as it was."""
    match observation:
        case VerdictObserved():
            return _on_verdict(state, observation, policy, now_ns)
        case UsageObserved():
            return _on_usage(state, observation, policy, now_ns)
        case Heartbeat():
            return _on_heartbeat(state, observation, policy, now_ns)
        case Tick():
            return _on_tick(state, observation, policy, now_ns)
        case Acknowledged():
            return _on_acknowledged(state, observation)
        case Unlocked():
            return _on_unlocked(state, observation, policy, now_ns)
    raise InvalidObservation(f"unknown observation {type(observation).__name__}")  # pragma: no cover


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidObservation(message)


def _track(state: GovernanceState, key: str, profile: AgentProfile, now_ns: int) -> ProfileTrack:
    track = state.profiles.get(key)
    if track is None:
        return ProfileTrack(profile=profile, last_seen_ns=now_ns)
    return msgspec.structs.replace(track, last_seen_ns=max(track.last_seen_ns, now_ns))


def _remember(seen: dict[str, int], run: str, at_ns: int) -> dict[str, int]:
    """`seen` plus `run`; over the cap, the oldest arrivals are forgotten, down to 90 % (amortised).
    Ticks prune by age (`_pruned_state`)."""
    kept = {**seen, run: at_ns}
    if len(kept) > MAX_SEEN_RUNS:
        kept = dict(list(kept.items())[-(MAX_SEEN_RUNS * 9 // 10) :])
    return kept


def _with_track(state: GovernanceState, key: str, track: ProfileTrack) -> GovernanceState:
    profiles = {**state.profiles, key: track}
    if len(profiles) > MAX_PROFILES:
        profiles = _evicted(profiles, state.locks.values(), keep=key)
    return msgspec.structs.replace(state, profiles=profiles)


def _evicted(profiles: dict[str, ProfileTrack], locks: Iterable[LaneLock], keep: str) -> dict[str, ProfileTrack]:
    """Forget the least recently seen unlocked profiles, down to 90 % of the cap (amortised)."""
    locked = {lock.profile_key for lock in locks} | {keep}
    candidates = sorted((t.last_seen_ns, k) for k, t in profiles.items() if k not in locked)
    excess = len(profiles) - MAX_PROFILES * 9 // 10
    dropped = {k for _, k in candidates[:excess]}
    return {k: t for k, t in profiles.items() if k not in dropped}


def _verdict_clauses(policy: LoadedPolicy, lane: Lane) -> list[HighFlagsClause]:
    return [c for c in policy.policy.clauses if isinstance(c, HighFlagsClause) and c.lane == lane]


def _spend_clauses(policy: LoadedPolicy, lane: Lane) -> list[SpendCapClause]:
    return [c for c in policy.policy.clauses if isinstance(c, SpendCapClause) and c.lane in (lane, "*")]


def _on_verdict(
    state: GovernanceState, obs: VerdictObserved, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    _require(bool(obs.run_id), "a verdict observation needs a run_id")
    _require(obs.high_flags >= 0, f"run {obs.run_id}: high_flags {obs.high_flags} is negative")
    clauses = _verdict_clauses(policy, obs.lane)
    if obs.high_flags == 0 or not clauses:
        return state, []
    key = profile_key(obs.profile)
    track = _track(state, key, obs.profile, now_ns)
    run = f"v/{obs.run_id}"
    if run in track.seen:
        return state, []  # redelivered, or a second verdict for the same run: counted once
    flags = dict(track.flags)
    fired: list[tuple[HighFlagsClause, list[FlagEntry]]] = []
    entry = FlagEntry(at_ns=obs.at_ns, run_id=obs.run_id)
    for clause in clauses:
        window = clause.window_s * NS
        if obs.at_ns <= now_ns - window:
            continue  # stale for this clause (promise 2)
        entries = _pruned(flags.get(clause.id, []), now_ns - 2 * window)
        at = bisect_left(entries, (entry.at_ns, entry.run_id), key=_flag_order)
        entries = [*entries[:at], entry, *entries[at:]]
        group = _flag_group(entries, at, clause.count, window)
        if group is not None:
            fired.append((clause, group))
        flags[clause.id] = entries[-clause.count :]  # only the latest `count` can complete a future group
    track = msgspec.structs.replace(track, flags=flags, seen=_remember(track.seen, run, obs.at_ns))
    state = _with_track(state, key, track)
    actions: list[AnyAction] = []
    for clause, group in fired:
        if _answered(state, clause, key):
            continue
        trigger = HighFlagsTrigger(
            count=clause.count,
            window_s=clause.window_s,
            first_at=rfc3339_ms(group[0].at_ns),
            last_at=rfc3339_ms(group[-1].at_ns),
            run_ids=[e.run_id for e in group[-MAX_TRIGGER_RUN_IDS:]],
            runs=len(group),
        )
        state, done = _fire(state, policy, clause, key, obs.profile, trigger, sorted(e.run_id for e in group), now_ns)
        actions += done
    return state, actions


def _flag_order(entry: FlagEntry) -> tuple[int, str]:
    return entry.at_ns, entry.run_id


def _at(entry: FlagEntry | UsageEntry) -> int:
    return entry.at_ns


_E = TypeVar("_E", FlagEntry, UsageEntry)


def _pruned(entries: list[_E], horizon_ns: int) -> list[_E]:
    """Entries after the horizon (the lists are sorted by time)."""
    cut = bisect_right(entries, horizon_ns, key=_at)
    return entries[cut:] if cut else entries


def _flag_group(entries: Sequence[FlagEntry], at: int, count: int, window_ns: int) -> list[FlagEntry] | None:
    """The earliest `count` consecutive entries that include index `at` and span less than the window."""
    for start in range(max(0, at - count + 1), at + 1):
        end = start + count - 1
        if end >= len(entries):
            break
        if entries[end].at_ns - entries[start].at_ns < window_ns:
            return list(entries[start : end + 1])
    return None


def _on_usage(
    state: GovernanceState, obs: UsageObserved, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    _require(bool(obs.run_id), "a usage observation needs a run_id")
    _require(0 <= obs.tokens <= MAX_TOKENS, f"run {obs.run_id}: tokens {obs.tokens} is outside 0..{MAX_TOKENS}")
    _require(
        obs.cost is None or _USAGE_COST.fullmatch(obs.cost) is not None,
        f"run {obs.run_id}: cost {obs.cost!r} is not a decimal string ≥ 0 (at most 15 digits . 12 digits)",
    )
    cost = Decimal(obs.cost) if obs.cost is not None else Decimal(0)
    clauses = _spend_clauses(policy, obs.lane)
    if not clauses or (obs.tokens == 0 and cost == 0):
        return state, []
    key = profile_key(obs.profile)
    track = _track(state, key, obs.profile, now_ns)
    run = f"u/{obs.run_id}"
    if run in track.seen:
        return state, []
    usage = dict(track.usage)
    fired: list[tuple[SpendCapClause, SpendCapTrigger, list[str]]] = []
    for clause in clauses:
        window = clause.window_s * NS
        if obs.at_ns <= now_ns - window:
            continue
        entries = _inserted(_pruned(usage.get(clause.id, []), now_ns - 2 * window), obs, cost)
        breach = None if _answered(state, clause, key) else _spend_breach(entries, obs.at_ns, clause)
        if breach is not None:
            fired.append((clause, *breach))
        usage[clause.id] = _merged_to_cap(entries)
    track = msgspec.structs.replace(track, usage=usage, seen=_remember(track.seen, run, obs.at_ns))
    state = _with_track(state, key, track)
    actions: list[AnyAction] = []
    for clause, trigger, run_ids in fired:
        state, done = _fire(state, policy, clause, key, obs.profile, trigger, run_ids, now_ns)
        actions += done
    return state, actions


def _text(amount: Decimal) -> str:
    """Plain decimal text, never exponent notation (str(Decimal("0.0000001")) is "1E-7")."""
    return format(amount, "f")


def _usage_order(entry: UsageEntry) -> tuple[int, str]:
    return entry.at_ns, entry.run_id


def _before(entries: Sequence[UsageEntry], index: int) -> tuple[int, Decimal]:
    """Running totals just before `index` (the lists' first entry need not start at zero)."""
    if index < len(entries):
        e = entries[index]
        return e.cum_tokens - e.tokens, _MATH.subtract(Decimal(e.cum_cost), Decimal(e.cost))
    if entries:
        return entries[-1].cum_tokens, Decimal(entries[-1].cum_cost)
    return 0, Decimal(0)


def _inserted(entries: list[UsageEntry], obs: UsageObserved, cost: Decimal) -> list[UsageEntry]:
    """`entries` with the observation in time order; running totals after it shift by its usage."""
    at = bisect_left(entries, (obs.at_ns, obs.run_id), key=_usage_order)
    base_tokens, base_cost = _before(entries, at)
    if base_tokens > 2**62:  # keep running totals inside int64 for msgspec: restart them from zero
        entries = _rebased(entries)
        base_tokens, base_cost = _before(entries, at)
    entry = UsageEntry(
        at_ns=obs.at_ns,
        run_id=obs.run_id,
        tokens=obs.tokens,
        cost=_text(cost),
        runs=1,
        cum_tokens=base_tokens + obs.tokens,
        cum_cost=_text(_MATH.add(base_cost, cost)),
    )
    later = [
        msgspec.structs.replace(
            e, cum_tokens=e.cum_tokens + obs.tokens, cum_cost=_text(_MATH.add(Decimal(e.cum_cost), cost))
        )
        for e in entries[at:]
    ]
    return [*entries[:at], entry, *later]


def _rebased(entries: list[UsageEntry]) -> list[UsageEntry]:
    tokens, cost = 0, Decimal(0)
    out: list[UsageEntry] = []
    for e in entries:
        tokens, cost = tokens + e.tokens, _MATH.add(cost, Decimal(e.cost))
        out.append(msgspec.structs.replace(e, cum_tokens=tokens, cum_cost=_text(cost)))
    return out


def _merged_to_cap(entries: list[UsageEntry]) -> list[UsageEntry]:
    """Over the cap, the oldest entry is folded into the next one, at the next one's time:
    its spend then stays in windows a little longer than it should, never shorter."""
    while len(entries) > MAX_USAGE_ENTRIES:
        first, second = entries[0], entries[1]
        merged = msgspec.structs.replace(
            second,
            tokens=first.tokens + second.tokens,
            cost=_text(_MATH.add(Decimal(first.cost), Decimal(second.cost))),
            runs=first.runs + second.runs,
        )
        entries = [merged, *entries[2:]]
    return entries


def _window(entries: Sequence[UsageEntry], after_ns: int, until_ns: int) -> tuple[int, int, int, Decimal]:
    """Index range and totals of the entries with after_ns < at_ns <= until_ns."""
    lo, hi = bisect_right(entries, after_ns, key=_at), bisect_right(entries, until_ns, key=_at)
    if hi <= lo:
        return lo, hi, 0, Decimal(0)
    tokens_before, cost_before = _before(entries, lo)
    last = entries[hi - 1]
    return lo, hi, last.cum_tokens - tokens_before, _MATH.subtract(Decimal(last.cum_cost), cost_before)


def _spend_breach(
    entries: list[UsageEntry], at_ns: int, clause: SpendCapClause
) -> tuple[SpendCapTrigger, list[str]] | None:
    """The earliest window (t - W, t] ending at an entry at or after the new one that exceeds a cap.

    In order (the usual case) that is the window ending at the new entry; a late arrival can
    also tip over windows that end at later entries within W of it.
    """
    window = clause.window_s * NS
    ends = sorted({e.at_ns for e in entries[bisect_left(entries, at_ns, key=_at) :] if e.at_ns < at_ns + window})
    max_cost = Decimal(clause.max_cost) if clause.max_cost is not None else None
    for end in ends:
        lo, hi, tokens, cost = _window(entries, end - window, end)
        breached: list[Literal["tokens", "cost"]] = []
        if clause.max_tokens is not None and tokens > clause.max_tokens:
            breached.append("tokens")
        if max_cost is not None and cost > max_cost:
            breached.append("cost")
        if not breached:
            continue
        inside = entries[lo:hi]
        trigger = SpendCapTrigger(
            window_s=clause.window_s,
            window_start=rfc3339_ms(end - window),
            window_end=rfc3339_ms(end),
            tokens=tokens,
            cost=_text(cost) if max_cost is not None else None,
            currency=clause.currency,
            max_tokens=clause.max_tokens,
            max_cost=clause.max_cost,
            breached=breached,
            run_ids=[e.run_id for e in inside[-MAX_TRIGGER_RUN_IDS:]],
            runs=sum(e.runs for e in inside),
        )
        return trigger, sorted(e.run_id for e in inside)
    return None


def _on_heartbeat(
    state: GovernanceState, obs: Heartbeat, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    if not any(isinstance(c, DarkAgentClause) for c in policy.policy.clauses):
        return state, []
    key = profile_key(obs.profile)
    track = _track(state, key, obs.profile, now_ns)
    if track.heartbeats.get(obs.lane, obs.at_ns - 1) >= obs.at_ns:
        return _with_track(state, key, track), []
    track = msgspec.structs.replace(track, heartbeats={**track.heartbeats, obs.lane: obs.at_ns})
    return _with_track(state, key, track), []


def _last_heartbeat(track: ProfileTrack, scope: Scope) -> int | None:
    if scope == "*":
        return max(track.heartbeats.values(), default=None)
    return track.heartbeats.get(scope)


def _on_tick(
    state: GovernanceState, tick: Tick, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    actions: list[AnyAction] = []
    dark = [c for c in policy.policy.clauses if isinstance(c, DarkAgentClause)]
    for key in sorted(state.profiles) if dark else []:
        for clause in dark:
            track = state.profiles[key]
            last = _last_heartbeat(track, clause.lane)
            if last is None or tick.now_ns - last < clause.heartbeat_window_s * NS:
                continue
            if track.dark_alerted.get(clause.id) == last or _answered(state, clause, key):
                continue  # this silence already has its incident, or the clause is being answered
            trigger = DarkAgentTrigger(
                heartbeat_window_s=clause.heartbeat_window_s,
                last_heartbeat_at=rfc3339_ms(last),
                detected_at=rfc3339_ms(tick.now_ns),
                silent_s=(tick.now_ns - last) // NS,
            )
            state, done = _fire(state, policy, clause, key, track.profile, trigger, [str(last)], tick.now_ns)
            if done:
                alerted = msgspec.structs.replace(track, dark_alerted={**track.dark_alerted, clause.id: last})
                state = msgspec.structs.replace(state, profiles={**state.profiles, key: alerted})
            actions += done
    return _pruned_state(state, policy, now_ns), actions


def dark_deadline_ns(state: GovernanceState, policy: LoadedPolicy) -> int | None:
    """The earliest instant at which a Tick would find a profile dark (None: no Tick can), so
    intake need not tick an org before it. Silences that already have their incident, and
    clauses being answered (promise 4), set no deadline."""
    deadline: int | None = None
    dark = [c for c in policy.policy.clauses if isinstance(c, DarkAgentClause)]
    for key, track in state.profiles.items() if dark else ():
        for clause in dark:
            last = _last_heartbeat(track, clause.lane)
            if last is None or track.dark_alerted.get(clause.id) == last or _answered(state, clause, key):
                continue
            due = last + clause.heartbeat_window_s * NS
            deadline = due if deadline is None else min(deadline, due)
    return deadline


def _answered(state: GovernanceState, clause: AnyClause, key: str) -> bool:
    """Promise 4: the clause's scope is locked for the profile (by any clause; "*" covers every
    lane), or an incident of this clause for this profile awaits acknowledgement."""
    scope: Scope = clause.lane
    if _lock_key(scope, key) in state.locks or (scope != "*" and _lock_key("*", key) in state.locks):
        return True
    return f"{clause.id}|{key}" in state.open_incidents


def _fire(
    state: GovernanceState,
    policy: LoadedPolicy,
    clause: AnyClause,
    key: str,
    profile: AgentProfile,
    trigger: IncidentTrigger,
    id_parts: list[str],
    now_ns: int,
) -> tuple[GovernanceState, list[AnyAction]]:
    """Open an incident (and lock) for a clause that fired, unless one is already answering it (promise 4)."""
    if _answered(state, clause, key):
        return state, []
    scope: Scope = clause.lane
    open_key = f"{clause.id}|{key}"
    incident_id = derive_id("inc", state.org_id, clause.id, key, *id_parts)
    if incident_id in state.incidents:
        return state, []
    response: Response = clause.response
    incident = Incident(
        incident_id=incident_id,
        kind=type(clause).__struct_config__.tag,  # type: ignore[arg-type]  # clause tags are IncidentKind literals
        clause_id=clause.id,
        lane=scope,
        profile=profile,
        profile_key=key,
        trigger=trigger,
        response=response,
        policy=policy.ref(clause.id),
        opened_at_ns=now_ns,
    )
    incidents = {**state.incidents, incident_id: IncidentState(incident=incident)}
    if len(incidents) > MAX_INCIDENTS:
        incidents = _incidents_evicted(incidents, state.locks.values())
    actions: list[AnyAction] = [OpenIncident(incident=incident)]
    locks = state.locks
    if response == "lock_lane":
        lock = LaneLock(
            lane=scope,
            profile=profile,
            profile_key=key,
            clause_id=clause.id,
            incident_id=incident_id,
            locked_at_ns=now_ns,
        )
        locks = {**locks, _lock_key(scope, key): lock}
        actions.append(
            LockLane(
                lane=scope, profile=profile, profile_key=key, clause_id=clause.id, incident_id=incident_id, at_ns=now_ns
            )
        )
    state = msgspec.structs.replace(
        state, incidents=incidents, locks=locks, open_incidents={**state.open_incidents, open_key: incident_id}
    )
    return state, actions


def _incidents_evicted(incidents: dict[str, IncidentState], locks: Iterable[LaneLock]) -> dict[str, IncidentState]:
    """Acknowledged incidents no lock names, oldest first, down to 90 % of the cap."""
    held = {lock.incident_id for lock in locks}
    done = sorted(
        (s.incident.opened_at_ns, i) for i, s in incidents.items() if s.acknowledgement is not None and i not in held
    )
    dropped = {i for _, i in done[: len(incidents) - MAX_INCIDENTS * 9 // 10]}
    return {i: s for i, s in incidents.items() if i not in dropped}


def _acknowledge(state: GovernanceState, record: IncidentState, ack: Approval) -> GovernanceState:
    incident = record.incident
    open_key = f"{incident.clause_id}|{incident.profile_key}"
    open_incidents = {k: v for k, v in state.open_incidents.items() if k != open_key}
    incidents = {**state.incidents, incident.incident_id: msgspec.structs.replace(record, acknowledgement=ack)}
    return msgspec.structs.replace(state, incidents=incidents, open_incidents=open_incidents)


def _on_acknowledged(state: GovernanceState, obs: Acknowledged) -> tuple[GovernanceState, list[AnyAction]]:
    _require(bool(obs.approver), f"incident {obs.incident_id}: an acknowledgement needs a named approver")
    record = state.incidents.get(obs.incident_id)
    if record is None or record.acknowledgement is not None:
        return state, []  # unknown (or long since forgotten) incident, or acknowledged already: minted once
    ack = Approval(approver=obs.approver, decided_at=rfc3339_ms(obs.at_ns), note=obs.note)
    state = _acknowledge(state, record, ack)
    body = incident_body(state.org_id, record.incident, ack)
    return state, [MintIncidentReceipt(incident_id=obs.incident_id, body=body)]


def _on_unlocked(
    state: GovernanceState, obs: Unlocked, policy: LoadedPolicy, now_ns: int
) -> tuple[GovernanceState, list[AnyAction]]:
    _require(bool(obs.approver), "an unlock needs a named approver")
    key = profile_key(obs.profile)
    lock = state.locks.get(_lock_key(obs.lane, key))
    if lock is None:
        return state, []  # not locked (or unlocked already: a redelivery)
    record = state.incidents.get(lock.incident_id)
    if record is None:  # locks pin their incidents against eviction
        raise GovernanceError(f"org {state.org_id}: lock {obs.lane}|{key} names unknown incident {lock.incident_id}")
    approval = Approval(approver=obs.approver, decided_at=rfc3339_ms(obs.at_ns), note=obs.note)
    actions: list[AnyAction] = []
    if record.acknowledgement is None:  # promise 5: a lock is never lifted off the chain
        state = _acknowledge(state, record, approval)
        actions.append(
            MintIncidentReceipt(
                incident_id=lock.incident_id, body=incident_body(state.org_id, record.incident, approval)
            )
        )
    locks = {k: v for k, v in state.locks.items() if k != _lock_key(obs.lane, key)}
    state = msgspec.structs.replace(state, locks=locks)
    track = state.profiles.get(key)
    if track is not None:  # counting for the unlocked scope restarts after the unlock's instant
        state = _with_track(state, key, _restarted(track, policy, obs.lane, obs.at_ns))
    record_ = UnlockRecord(
        org_id=state.org_id,
        unlock_id=derive_id("unl", state.org_id, lock.incident_id, str(obs.at_ns)),
        incident_id=lock.incident_id,
        lane=obs.lane,
        agent_profile=lock.profile,
        profile_key=key,
        policy=record.incident.policy,
        locked_at=rfc3339_ms(lock.locked_at_ns),
        approval=approval,
    )
    actions.append(RecordUnlock(record=record_))
    return state, actions


def _restarted(track: ProfileTrack, policy: LoadedPolicy, scope: Scope, at_ns: int) -> ProfileTrack:
    ids = {c.id for c in policy.policy.clauses if not isinstance(c, DarkAgentClause) and c.lane == scope}
    flags = {cid: _pruned(e, at_ns) if cid in ids else e for cid, e in track.flags.items()}
    usage = {cid: _pruned(e, at_ns) if cid in ids else e for cid, e in track.usage.items()}
    return msgspec.structs.replace(track, flags=flags, usage=usage)


def _pruned_state(state: GovernanceState, policy: LoadedPolicy, now_ns: int) -> GovernanceState:
    """Drop what no window can reach any more (promise 6); runs on every Tick."""
    horizon = now_ns - policy.retention_ns
    locked = {lock.profile_key for lock in state.locks.values()}
    windows = {c.id: 2 * NS * window_s(c) for c in policy.policy.clauses}
    profiles = {
        key: _pruned_track(track, windows, now_ns, horizon)
        for key, track in state.profiles.items()
        if track.last_seen_ns > horizon or key in locked
    }
    held = {lock.incident_id for lock in state.locks.values()}
    incidents = {
        i: s
        for i, s in state.incidents.items()
        if s.acknowledgement is None or i in held or s.incident.opened_at_ns > horizon
    }
    return msgspec.structs.replace(state, profiles=profiles, incidents=incidents)


def _pruned_track(track: ProfileTrack, windows: dict[str, int], now_ns: int, horizon: int) -> ProfileTrack:
    """The track without entries past their clause's horizon, nor lists of clauses the policy lost;
    the same object when nothing is old (most ticks, most profiles)."""
    flags = _pruned_lists(track.flags, windows, now_ns)
    usage = _pruned_lists(track.usage, windows, now_ns)
    # `seen` is in arrival order: when its first entry is young, keep it whole until it is not.
    seen = track.seen
    if seen and next(iter(seen.values())) <= horizon:
        seen = {run: at for run, at in seen.items() if at > horizon}
    heartbeats = track.heartbeats
    if any(at <= horizon for at in heartbeats.values()):
        heartbeats = {lane: at for lane, at in heartbeats.items() if at > horizon}
    alerted = track.dark_alerted
    if any(c not in windows or at <= horizon for c, at in alerted.items()):
        alerted = {c: at for c, at in alerted.items() if c in windows and at > horizon}
    unchanged = (flags, usage, seen, heartbeats, alerted)
    if all(new is old for new, old in zip(unchanged, _parts(track), strict=True)):
        return track
    return msgspec.structs.replace(
        track, flags=flags, usage=usage, seen=seen, heartbeats=heartbeats, dark_alerted=alerted
    )


def _parts(track: ProfileTrack) -> tuple[object, ...]:
    return track.flags, track.usage, track.seen, track.heartbeats, track.dark_alerted


def _pruned_lists(lists: dict[str, list[_E]], windows: dict[str, int], now_ns: int) -> dict[str, list[_E]]:
    kept: dict[str, list[_E]] = {}
    changed = False
    for clause_id, entries in lists.items():
        pruned = _pruned(entries, now_ns - windows[clause_id]) if clause_id in windows else []
        changed |= pruned is not entries
        if pruned:
            kept[clause_id] = pruned
    return kept if changed else lists
