"""Everything that travels on JetStream: ingest commands and run events.

Both are tagged msgspec unions (tag field ``type``) decoded once at the edge by
the decoders below. Every message carries an envelope. Ids of derived events
are deterministic (`derive_id`), so a redelivered input yields the same output
id and JetStream's duplicate window (``Nats-Msg-Id``) drops the copy; the
consuming databases' unique constraints catch what the window misses.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec

from .cook import CheckedSide, CookDataset, CookItemScore, CookLift, CookReceiptBody, EvalSet, EvalSetRef
from .incident import (
    GovernancePolicyRef,
    IncidentKind,
    IncidentReceiptBody,
    IncidentTrigger,
    Response,
    Scope,
    UnlockRecord,
)
from .model import (
    AgentProfile,
    EvidenceKind,
    EvidenceRef,
    Finding,
    FlightSheetRef,
    Lane,
    ReceiptBody,
    Signature,
    Verdict,
)
from .redaction import Disclosure, RedactableField
from .trail import TrailSummary

SCHEMA_VERSION = 1


def derive_id(prefix: str, causation_id: str, *parts: str) -> str:
    """A deterministic id for something caused by `causation_id` (domain-separated by prefix)."""
    h = hashlib.sha256(prefix.encode())
    for part in (causation_id, *parts):
        h.update(b"\x00")
        h.update(part.encode())
    return f"{prefix}_{h.hexdigest()[:32]}"


# ---------------------------------------------------------------- commands (ingest.<kind>.<org>)


# gc=False throughout, as for the records in `model` (see there): no event or command can
# close a reference cycle, and services hold thousands of them at once.
class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """A request for intake to admit. `command_id` is the client's idempotency key."""

    command_id: str
    org_id: str
    run_id: str
    issued_at: str
    actor: str  # who asked: an API key id, or an SDK identity
    schema_version: int = SCHEMA_VERSION


class CreateRun(Command, frozen=True, kw_only=True, tag=True):
    project: str
    lane: Lane
    flight_sheet: FlightSheetRef
    agent_profile: AgentProfile
    assignment: str = ""


# Evidence up to this size may travel inside its AttachEvidence command (base64 in JSON:
# ~342 KiB, well inside one JetStream message) instead of being staged in S3 first.
MAX_INLINE_EVIDENCE_BYTES = 256 * 1024


class AttachEvidence(Command, frozen=True, kw_only=True, tag=True):
    """The bytes are either inline (`content`, small evidence) or already in S3 at
    `staging_key` (large evidence); exactly one is set. Intake re-hashes them either way
    before admitting, and stores them under their content-addressed key."""

    evidence_id: str
    kind: EvidenceKind
    name: str
    media_type: str
    size: int
    sha256: str
    staging_key: str | None = None
    content: bytes | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True, gc=False, forbid_unknown_fields=True):
    """A run's declared usage. `cost` is a decimal string in the org's accounting currency (the one
    its governance policy's spend caps name); bounds keep every sum exact and inside int64."""

    input_tokens: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    output_tokens: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    cost: Annotated[str, msgspec.Meta(pattern=r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,12})?$")] | None = None


class Submit(Command, frozen=True, kw_only=True, tag=True):
    submission: msgspec.Raw  # the submission as JSON; intake stores its canonical form
    # Evidence the submitter attached before submitting: intake admits the
    # submission only once each of these is attached (JetStream redelivery can
    # reorder commands), and refuses it if one of them was refused.
    evidence_ids: list[str] = []
    # What the work consumed, as its submitter declares it, beside (not inside) the submission: the
    # submission must match its Flight Sheet's schema. Counted by governance spend caps, never hashed.
    usage: Usage | None = None


class Decide(Command, frozen=True, kw_only=True, tag=True):
    decision: Literal["approve", "reject"]
    approver: str
    note: str = ""
    redact: list[RedactableField] = []  # the org's setting when it decided (redaction.py)


# -- cooks: run_id is the cook's id ("cook_<hex>"); its item runs are ordinary checked runs


class CookPair(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    item_id: str  # an EvalSet item id
    run_id: str  # the checked run that evaluated that item


class RequestCook(Command, frozen=True, kw_only=True, tag=True):
    """Evaluate a fine-tune: the same eval set, checked before (base model) and after (cooked model)."""

    project: str
    base_model: str
    cooked_model: str
    dataset: CookDataset  # what the model was cooked on
    eval_set: EvalSet  # frozen, ordered items with content digests
    pre: list[CookPair]
    post: list[CookPair]


class DecideCook(Command, frozen=True, kw_only=True, tag=True):
    decision: Literal["approve", "reject"]
    approver: str
    note: str = ""


# -- governance: run_id is the incident's id ("inc_<hex>"), or the agent's for a heartbeat


class Heartbeat(Command, frozen=True, kw_only=True, tag=True):
    """An agent is alive (dark-agent clauses). run_id: "agent_" + the first 32 hex of its profile key."""

    agent_profile: AgentProfile
    lane: Lane


class AcknowledgeIncident(Command, frozen=True, kw_only=True, tag=True):
    approver: str
    note: str = ""


class UnlockLane(Command, frozen=True, kw_only=True, tag=True):
    """Lift the lock the incident `run_id` set; an approver action, recorded on the chain."""

    approver: str
    note: str = ""


AnyCommand = (
    CreateRun
    | AttachEvidence
    | Submit
    | Decide
    | RequestCook
    | DecideCook
    | Heartbeat
    | AcknowledgeIncident
    | UnlockLane
)

COMMAND_KINDS: dict[type[Command], str] = {
    CreateRun: "create_run",
    AttachEvidence: "attach_evidence",
    Submit: "submit",
    Decide: "decide",
    RequestCook: "request_cook",
    DecideCook: "decide_cook",
    Heartbeat: "heartbeat",
    AcknowledgeIncident: "acknowledge_incident",
    UnlockLane: "unlock_lane",
}


# ---------------------------------------------------------------- events (run.<event>.<org>.<run>)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    event_id: str
    org_id: str
    run_id: str
    occurred_at: str
    producer: str
    causation_id: str | None = None
    schema_version: int = SCHEMA_VERSION


class RunCreated(Event, frozen=True, kw_only=True, tag=True):
    project: str
    lane: Lane
    flight_sheet: FlightSheetRef
    agent_profile: AgentProfile
    assignment: str
    assignment_sha256: str


class EvidenceAttached(Event, frozen=True, kw_only=True, tag=True):
    evidence: EvidenceRef
    kind: EvidenceKind
    storage_key: str  # content-addressed: evidence/sha256/<hex>


class Submitted(Event, frozen=True, kw_only=True, tag=True):
    """Carries what the referee needs and nothing it must fetch: sheet, evidence list, submission."""

    lane: Lane
    flight_sheet: FlightSheetRef
    evidence: list[EvidenceRef]
    submission_sha256: str
    submission: msgspec.Raw  # canonical JSON bytes, bounded by intake


class Checked(Event, frozen=True, kw_only=True, tag=True):
    flight_sheet: FlightSheetRef
    submission_sha256: str
    findings: list[Finding]
    verdict: Verdict
    execution_trail: TrailSummary | msgspec.UnsetType = msgspec.UNSET  # when OTLP evidence was attached
    trail_key: str = ""  # S3 key of the normalised step records (JSON Lines), for GET /runs/{id}/trail


class Approved(Event, frozen=True, kw_only=True, tag=True):
    """The approval plus the whole receipt body, so the ledger needs nothing else."""

    receipt: ReceiptBody
    # What reveals each redacted field of the receipt (redaction.py): the org's to keep, never
    # part of the receipt. Empty when the org redacts nothing.
    disclosures: list[Disclosure] = []


class Rejected(Event, frozen=True, kw_only=True, tag=True):
    approver: str
    decided_at: str
    note: str = ""


class CommandRefused(Event, frozen=True, kw_only=True, tag=True):
    """Intake would not admit a command; the reason says what to fix."""

    command_id: str
    command_type: str
    reason: str


class Minted(Event, frozen=True, kw_only=True, tag=True):
    seq: int
    receipt_hash: str
    parent_hash: str
    payload: msgspec.Raw  # canonical payload bytes, exactly as hashed
    signature: Signature
    share_token: str


class Rendered(Event, frozen=True, kw_only=True, tag=True):
    receipt_hash: str
    pdf_key: str
    pdf_sha256: str
    pdf_size: int


# -- cooks (run_id: the cook id)


class CookRequested(Event, frozen=True, kw_only=True, tag=True):
    """Intake admitted a cook: every item run belongs to the org and is checked; the referee decides.

    Each side names its one model (the base model's for pre, the cooked model's for post) and
    its one flight sheet, and each run's score only: a 10,000-item cook stays one message
    (docs/decisions.md, "Cooks of 10,000 items")."""

    project: str
    dataset: CookDataset
    eval_set: EvalSet
    pre: CheckedSide  # pre.model is the cook's base model
    post: CheckedSide  # post.model is its cooked model


class CookChecked(Event, frozen=True, kw_only=True, tag=True):
    """The referee's decision (lift.decide_cook). Only an eligible cook may be approved."""

    eligible: bool
    reasons: list[str]  # empty exactly when eligible
    noise_floor: str
    flight_sheet: FlightSheetRef | None = None
    base_model: str | None = None
    cooked_model: str | None = None
    eval_set: EvalSetRef | None = None
    pre: list[CookItemScore] = []
    post: list[CookItemScore] = []
    lift: CookLift | None = None  # set when the bootstrap ran, eligible or not
    # Each side's mean score (CookSide.mean_score), set with `lift`: intake builds the receipt from this event.
    mean_pre: str | None = None
    mean_post: str | None = None


class CookApproved(Event, frozen=True, kw_only=True, tag=True):
    receipt: CookReceiptBody


class CookRejected(Event, frozen=True, kw_only=True, tag=True):
    approver: str
    decided_at: str
    note: str = ""


# -- governance (run_id: the incident id; for LaneUnlocked, the unlock id)


class IncidentOpened(Event, frozen=True, kw_only=True, tag=True):
    kind: IncidentKind
    lane: Scope
    agent_profile: AgentProfile
    profile_key: str
    trigger: IncidentTrigger
    response: Response
    policy: GovernancePolicyRef
    opened_at: str


class LaneLocked(Event, frozen=True, kw_only=True, tag=True):
    """New runs of `agent_profile` in `lane` ("*": every lane) are refused with 423, citing `clause_id`."""

    lane: Scope
    agent_profile: AgentProfile
    profile_key: str
    clause_id: str
    incident_id: str
    locked_at: str
    reason: str  # the refusal text, policy clause cited


class IncidentAcknowledged(Event, frozen=True, kw_only=True, tag=True):
    """A human acknowledged the incident: the ledger mints its receipt."""

    receipt: IncidentReceiptBody


class LaneUnlocked(Event, frozen=True, kw_only=True, tag=True):
    """An approver lifted a lock: the gateway stops refusing, the ledger mints the unlock receipt."""

    record: UnlockRecord


# -- the transparency log (run_id: `tree_run_id(size)`; docs/transparency.md)


def tree_run_id(size: int) -> str:
    """The subject token of a checkpoint's events: one per (org, tree size)."""
    return f"tree-{size}"


class CheckpointSigned(Event, frozen=True, kw_only=True, tag=True):
    """The ledger signed the org's log at `size`, after a mint batch (C2SP tlog-checkpoint)."""

    origin: str
    size: int
    root_hash: str  # standard base64 of the 32-byte RFC 9162 root, as in the note
    checkpoint: str  # the signed note, verbatim (log signature only)


class CheckpointCosigned(Event, frozen=True, kw_only=True, tag=True):
    """A witness checked `checkpoint` against the last one it cosigned and cosigned it."""

    origin: str
    size: int
    witness: str  # the cosigner's key name
    witness_vkey: str  # its C2SP vkey (type 0x04): for display; verifiers pin witness keys themselves
    cosigned: str  # the checkpoint note with the witness's cosignature line (tlog-cosignature)


class WitnessAlert(Event, frozen=True, kw_only=True, tag=True):
    """A witness refused a checkpoint: a rewritten history or a fork shown to it."""

    origin: str
    size: int
    witness: str
    reason: str
    held: str  # the checkpoint it had cosigned before, verbatim
    offered: str  # the checkpoint it refused, verbatim


AnyEvent = (
    RunCreated
    | EvidenceAttached
    | Submitted
    | Checked
    | Approved
    | Rejected
    | CommandRefused
    | Minted
    | Rendered
    | CookRequested
    | CookChecked
    | CookApproved
    | CookRejected
    | IncidentOpened
    | LaneLocked
    | IncidentAcknowledged
    | LaneUnlocked
    | CheckpointSigned
    | CheckpointCosigned
    | WitnessAlert
)

EVENT_NAMES: dict[type[Event], str] = {
    RunCreated: "created",
    EvidenceAttached: "evidence",
    Submitted: "submitted",
    Checked: "checked",
    Approved: "approved",
    Rejected: "rejected",
    CommandRefused: "refused",
    Minted: "minted",
    Rendered: "rendered",
    CookRequested: "cook_requested",
    CookChecked: "cook_checked",
    CookApproved: "cook_approved",
    CookRejected: "cook_rejected",
    IncidentOpened: "incident_opened",
    LaneLocked: "lane_locked",
    IncidentAcknowledged: "incident_acknowledged",
    LaneUnlocked: "lane_unlocked",
    CheckpointSigned: "checkpoint_signed",
    CheckpointCosigned: "checkpoint_cosigned",
    WitnessAlert: "witness_alert",
}
TRANSPARENCY_EVENTS = (CheckpointSigned, CheckpointCosigned, WitnessAlert)

command_decoder: msgspec.json.Decoder[AnyCommand] = msgspec.json.Decoder(AnyCommand)
event_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)
_encoder = msgspec.json.Encoder()


def encode(message: Command | Event) -> bytes:
    return _encoder.encode(message)
