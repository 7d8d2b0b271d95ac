"""Pure admission rules: given a command and what intake knows of its run, decide.

No I/O here. `app.py` loads the run state, calls these, and stores the result
with its events in one transaction.
"""

from __future__ import annotations

from typing import Literal, TypedDict

import msgspec

from defendable_canonical.digest import sha256_digest
from defendable_canonical.events import (
    Approved,
    Checked,
    CommandRefused,
    CreateRun,
    Decide,
    Event,
    EvidenceAttached,
    Rejected,
    RunCreated,
    Submit,
    Submitted,
    Usage,
    derive_id,
)
from defendable_canonical.model import (
    AgentProfile,
    Approval,
    EvidenceRef,
    FlightSheetRef,
    Lane,
    ReceiptBody,
    receipt_schema_for,
)
from defendable_canonical.redaction import redact_body

PRODUCER = "intake"
MAX_SUBMISSION_BYTES = 256 * 1024

RunStatus = Literal["created", "submitted", "checked", "approved", "rejected"]


class RunState(msgspec.Struct, kw_only=True):
    """Intake's own record of a run (service-private)."""

    org_id: str
    run_id: str
    project: str
    lane: Lane
    flight_sheet: FlightSheetRef
    agent_profile: AgentProfile
    assignment_sha256: str
    status: RunStatus
    submission_sha256: str | None = None
    checked: Checked | None = None
    usage: Usage | None = None  # as the submitter declared it (Submit.usage), for governance spend caps


class Refusal(Exception):
    """The command cannot be admitted; the message says what to fix."""


def event_id(command_id: str, kind: str) -> str:
    return derive_id("ev", command_id, kind)


class EnvelopeArgs(TypedDict):
    event_id: str
    org_id: str
    run_id: str
    occurred_at: str
    producer: str
    causation_id: str


def envelope(command_id: str, org_id: str, run_id: str, kind: str, now: str) -> EnvelopeArgs:
    """The envelope of an event caused by a command: its id derives from the command's (DESIGN.md §3)."""
    return EnvelopeArgs(
        event_id=event_id(command_id, kind),
        org_id=org_id,
        run_id=run_id,
        occurred_at=now,
        producer=PRODUCER,
        causation_id=command_id,
    )


def refused(command_id: str, org_id: str, run_id: str, command_type: str, reason: str, now: str) -> CommandRefused:
    return CommandRefused(
        **envelope(command_id, org_id, run_id, "CommandRefused", now),
        command_id=command_id,
        command_type=command_type,
        reason=reason,
    )


def create_run(cmd: CreateRun, existing: RunState | None, now: str) -> tuple[RunState, RunCreated]:
    if existing is not None:
        raise Refusal(f"run {cmd.run_id} already exists in org {cmd.org_id}")
    state = RunState(
        org_id=cmd.org_id,
        run_id=cmd.run_id,
        project=cmd.project,
        lane=cmd.lane,
        flight_sheet=cmd.flight_sheet,
        agent_profile=cmd.agent_profile,
        assignment_sha256=sha256_digest(cmd.assignment.encode()),
        status="created",
    )
    event = RunCreated(
        **envelope(cmd.command_id, cmd.org_id, cmd.run_id, "RunCreated", now),
        project=cmd.project,
        lane=cmd.lane,
        flight_sheet=cmd.flight_sheet,
        agent_profile=cmd.agent_profile,
        assignment=cmd.assignment,
        assignment_sha256=state.assignment_sha256,
    )
    return state, event


def require_open_run(run: RunState | None, run_id: str, what: str) -> RunState:
    if run is None:
        raise Refusal(f"run {run_id} does not exist")
    if run.status != "created":
        raise Refusal(f"run {run_id} is {run.status}: {what} is only accepted before submission")
    return run


def attach_evidence(
    command_id: str, run: RunState, ref: EvidenceRef, kind: str, storage_key: str, now: str
) -> EvidenceAttached:
    return EvidenceAttached(
        **envelope(command_id, run.org_id, run.run_id, "EvidenceAttached", now),
        evidence=ref,
        kind=kind,  # type: ignore[arg-type]  # validated by the command's Literal type
        storage_key=storage_key,
    )


def submit(cmd: Submit, run: RunState | None, canonical: bytes, evidence: list[EvidenceRef], now: str) -> Submitted:
    state = require_open_run(run, cmd.run_id, "a submission")
    digest = sha256_digest(canonical)
    state.status = "submitted"
    state.submission_sha256 = digest
    state.usage = cmd.usage
    return Submitted(
        **envelope(cmd.command_id, cmd.org_id, cmd.run_id, "Submitted", now),
        lane=state.lane,
        flight_sheet=state.flight_sheet,
        evidence=evidence,
        submission_sha256=digest,
        submission=msgspec.Raw(canonical),
    )


def record_checked(run: RunState | None, checked: Checked) -> bool:
    """Apply a verdict to an undecided, submitted run; False when it does not apply (idempotent)."""
    if run is None or run.status != "submitted" or run.submission_sha256 != checked.submission_sha256:
        return False
    run.status = "checked"
    run.checked = checked
    return True


def decide(cmd: Decide, run: RunState | None, evidence: list[EvidenceRef], now: str) -> Event:
    """Only a checked, undecided run may be decided (DESIGN.md §2, intake)."""
    if run is None:
        raise Refusal(f"run {cmd.run_id} does not exist")
    if run.status in ("approved", "rejected"):
        raise Refusal(f"run {cmd.run_id} was already {run.status}")
    if run.status != "checked" or run.checked is None:
        raise Refusal(f"run {cmd.run_id} has no verdict yet (status {run.status}); decide after the checks")
    assert run.submission_sha256 is not None
    if cmd.decision == "reject":
        run.status = "rejected"
        return Rejected(
            **envelope(cmd.command_id, run.org_id, run.run_id, "Rejected", now),
            approver=cmd.approver,
            decided_at=now,
            note=cmd.note,
        )
    run.status = "approved"
    body = ReceiptBody(
        schema=receipt_schema_for(run.lane),
        org_id=run.org_id,
        run_id=run.run_id,
        lane=run.lane,
        project=run.project,
        flight_sheet=run.checked.flight_sheet,
        agent_profile=run.agent_profile,
        assignment_sha256=run.assignment_sha256,
        evidence=evidence,
        submission_sha256=run.submission_sha256,
        findings=run.checked.findings,
        verdict=run.checked.verdict,
        approval=Approval(approver=cmd.approver, decided_at=now, note=cmd.note),
        execution_trail=run.checked.execution_trail,
    )
    body, disclosures = redact_body(body, cmd.redact)
    return Approved(
        **envelope(cmd.command_id, run.org_id, run.run_id, "Approved", now),
        receipt=body,
        disclosures=disclosures,
    )
