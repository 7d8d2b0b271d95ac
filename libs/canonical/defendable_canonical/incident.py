"""Incident and unlock receipts: governance events on an org's chain (DESIGN.md §1, §4).

An Incident receipt (`INCIDENT_RECEIPT_SCHEMA`) records that a governance policy clause
fired for one agent profile — recurring high flags, a spend cap breach, a dark agent —,
what it did about it (locked the lane for that profile, or alerted), and the named human
who acknowledged it. An unlock receipt (`UNLOCK_RECEIPT_SCHEMA`) records the approver who
lifted such a lock. Both are minted by the ledger on the same chain as every other receipt
of the org, exactly like `model.ReceiptPayload`: body + seq, parent_hash, minted_at; the
hash is ``"sha256:" + hex(SHA-256(JCS(payload)))``.

As in `model`: no floats (money is a decimal string), schemas evolve only by adding fields
with defaults, every record is frozen and `gc=False`. Instants are RFC 3339 UTC with
milliseconds (`rfc3339_ms`), like `Approval.decided_at`; the governance windows themselves
are decided on unix nanoseconds, so a trigger's printed instants are truncated to the
millisecond and may look up to 1 ms closer together than the comparison that fired.

The policy reference carries the clause itself (its JSON value as read from the policy
file) beside the policy's id, version and sha256: a reader sees the rule that fired without
fetching the policy, and anyone holding the policy file can re-hash it and find the clause.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from .digest import Digest, sha256_digest
from .jcs import CanonicalError, canonical_struct
from .model import INCIDENT_RECEIPT_SCHEMA, AgentProfile, Approval

UNLOCK_RECEIPT_SCHEMA: Final = "defendablecloud.unlock-receipt/v1"

IncidentKind = Literal["high_flags", "spend_cap", "dark_agent"]
INCIDENT_KINDS: Final[tuple[IncidentKind, ...]] = ("high_flags", "spend_cap", "dark_agent")
Response = Literal["lock_lane", "alert"]
# A lane, or "*": every lane of the profile at once (a spend cap or dark-agent clause may span lanes).
Scope = Literal["agent_work", "dataset", "compute", "*"]
ClauseValue = dict[str, str | int | None]  # a clause as read from the policy file: no floats, no nesting

MAX_TRIGGER_RUN_IDS: Final = 100  # a trigger lists at most this many run ids (the latest); `runs` counts all
_NS: Final = 1_000_000_000


def rfc3339_ms(unix_ns: int) -> str:
    """``2026-01-02T03:04:05.678Z`` for unix nanoseconds, truncated to the millisecond (pure)."""
    seconds, rest = divmod(unix_ns, _NS)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest // 1_000_000:03d}Z"


# ---------------------------------------------------------------- the agent profile key


class _KeyedProfile(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    schema: str = "defendablecloud.agent-profile-key/v1"  # domain separation from every other hash
    model: str
    harness: str
    tools: list[str]
    runtime: str


def profile_key(profile: AgentProfile) -> Digest:
    """sha256 of JCS({schema, model, harness, tools, runtime}): every field, exactly as given,
    except that `tools` is a set — sorted and de-duplicated —, so listing the same tools in
    another order is the same agent and cannot step around a lock. Locks, incidents and the
    gateway's 423 check are keyed on it."""
    keyed = _KeyedProfile(
        model=profile.model, harness=profile.harness, tools=sorted(set(profile.tools)), runtime=profile.runtime
    )
    return sha256_digest(canonical_struct(keyed))


def agent_id(profile: AgentProfile) -> str:
    """The run_id a `Heartbeat` carries: ``"agent_"`` + the first 32 hex of the profile key."""
    return "agent_" + profile_key(profile).removeprefix("sha256:")[:32]


# ---------------------------------------------------------------- triggers: what happened


class Trigger(msgspec.Struct, frozen=True, kw_only=True, gc=False, tag_field="kind"):
    """Tagged by `kind`, which always equals the receipt's `kind`."""


class HighFlagsTrigger(Trigger, frozen=True, kw_only=True, gc=False, tag="high_flags"):
    """`count` verdicts with at least one high flag, all within `window_s` of each other."""

    count: int
    window_s: int
    first_at: str  # the earliest of the counted verdicts
    last_at: str  # the latest; last - first < window_s
    run_ids: list[str]  # in time order, the latest MAX_TRIGGER_RUN_IDS
    runs: int  # how many runs were counted (== count)


class SpendCapTrigger(Trigger, frozen=True, kw_only=True, gc=False, tag="spend_cap"):
    """Usage in the window (window_start, window_end] exceeded a cap (`breached` says which)."""

    window_s: int
    window_start: str  # exclusive
    window_end: str  # inclusive: the usage observation that tipped it over
    tokens: int
    cost: str | None  # decimal string in `currency`; None when the clause caps tokens only
    currency: str | None
    max_tokens: int | None
    max_cost: str | None
    breached: list[Literal["tokens", "cost"]]
    run_ids: list[str]  # in time order, the latest MAX_TRIGGER_RUN_IDS
    runs: int


class DarkAgentTrigger(Trigger, frozen=True, kw_only=True, gc=False, tag="dark_agent"):
    """No heartbeat in (detected_at - heartbeat_window_s, detected_at]."""

    heartbeat_window_s: int
    last_heartbeat_at: str
    detected_at: str
    silent_s: int  # whole seconds between the last heartbeat and detection


IncidentTrigger = HighFlagsTrigger | SpendCapTrigger | DarkAgentTrigger


def trigger_kind(trigger: IncidentTrigger) -> IncidentKind:
    kind: IncidentKind = type(trigger).__struct_config__.tag  # type: ignore[assignment]  # tags are IncidentKind literals
    return kind


# ---------------------------------------------------------------- receipts


class GovernancePolicyRef(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Which policy, at which version and hash, and which clause of it fired."""

    id: str
    version: str
    sha256: str
    clause_id: str
    clause: ClauseValue


def _check(kind: IncidentKind, trigger: IncidentTrigger) -> None:
    if trigger_kind(trigger) != kind:
        raise ValueError(f"incident of kind {kind!r} carries a {trigger_kind(trigger)!r} trigger")


class IncidentReceiptBody(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Everything an Incident receipt holds once a human has acknowledged it; the ledger adds the chain fields."""

    schema: str = INCIDENT_RECEIPT_SCHEMA
    org_id: str
    incident_id: str  # deterministic (governance.py): a redelivered trigger names the same incident
    kind: IncidentKind
    lane: Scope
    agent_profile: AgentProfile
    profile_key: str  # sha256 digest the lock is keyed on (governance.profile_key)
    trigger: IncidentTrigger
    response: Response
    policy: GovernancePolicyRef
    opened_at: str
    acknowledgement: Approval

    def __post_init__(self) -> None:
        _check(self.kind, self.trigger)


class IncidentReceiptPayload(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The hashed Incident receipt: the body's fields plus seq, parent_hash and minted_at (as ReceiptPayload)."""

    schema: str
    org_id: str
    seq: int
    parent_hash: str
    incident_id: str
    kind: IncidentKind
    lane: Scope
    agent_profile: AgentProfile
    profile_key: str
    trigger: IncidentTrigger
    response: Response
    policy: GovernancePolicyRef
    opened_at: str
    acknowledgement: Approval
    minted_at: str

    def __post_init__(self) -> None:
        _check(self.kind, self.trigger)


class UnlockRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An approver lifted a governance lock: which lane, for which profile, set by which clause and incident."""

    schema: str = UNLOCK_RECEIPT_SCHEMA
    org_id: str
    unlock_id: str  # deterministic: derived from the incident and the unlock's instant
    incident_id: str  # the Incident receipt whose lock this lifts
    lane: Scope
    agent_profile: AgentProfile
    profile_key: str
    policy: GovernancePolicyRef  # the clause that set the lock, as the incident names it
    locked_at: str
    approval: Approval  # who unlocked, when, and why


class UnlockReceiptPayload(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    schema: str
    org_id: str
    seq: int
    parent_hash: str
    unlock_id: str
    incident_id: str
    lane: Scope
    agent_profile: AgentProfile
    profile_key: str
    policy: GovernancePolicyRef
    locked_at: str
    approval: Approval
    minted_at: str


def build_incident_payload(
    body: IncidentReceiptBody, seq: int, parent_hash: str, minted_at: str
) -> IncidentReceiptPayload:
    return IncidentReceiptPayload(**msgspec.structs.asdict(body), seq=seq, parent_hash=parent_hash, minted_at=minted_at)


def build_unlock_payload(record: UnlockRecord, seq: int, parent_hash: str, minted_at: str) -> UnlockReceiptPayload:
    return UnlockReceiptPayload(**msgspec.structs.asdict(record), seq=seq, parent_hash=parent_hash, minted_at=minted_at)


_incident_decoder: msgspec.json.Decoder[IncidentReceiptPayload] = msgspec.json.Decoder(IncidentReceiptPayload)
_unlock_decoder: msgspec.json.Decoder[UnlockReceiptPayload] = msgspec.json.Decoder(UnlockReceiptPayload)


def decode_incident_payload(data: bytes) -> IncidentReceiptPayload:
    """Typed view of stored payload bytes; raises CanonicalError when they are not an Incident receipt."""
    try:
        payload = _incident_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CanonicalError(f"not an incident receipt payload: {exc}") from None
    if payload.schema != INCIDENT_RECEIPT_SCHEMA:
        raise CanonicalError(f"not an incident receipt payload: schema is {payload.schema!r}")
    return payload


def decode_unlock_payload(data: bytes) -> UnlockReceiptPayload:
    """Typed view of stored payload bytes; raises CanonicalError when they are not an unlock receipt."""
    try:
        payload = _unlock_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CanonicalError(f"not an unlock receipt payload: {exc}") from None
    if payload.schema != UNLOCK_RECEIPT_SCHEMA:
        raise CanonicalError(f"not an unlock receipt payload: schema is {payload.schema!r}")
    return payload
