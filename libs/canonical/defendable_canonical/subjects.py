"""Stream and subject names (DESIGN.md §3). Ids inside subjects are token-safe by construction."""

from __future__ import annotations

import re

from .events import COMMAND_KINDS, EVENT_NAMES, Command, Event

RUNS_STREAM = "RUNS"
INGEST_STREAM = "INGEST"
DEAD_STREAM = "DEAD"

RUNS_SUBJECTS = "run.>"
INGEST_SUBJECTS = "ingest.>"
DEAD_SUBJECTS = "dead.>"

# Read-only questions answered by the owning service (NATS request-reply).
LEDGER_VERIFY = "svc.ledger.verify"
LEDGER_KEYS = "svc.ledger.keys"  # the published key set: every key the ledger signed with
LEDGER_TLOG = "svc.ledger.tlog"  # checkpoints and Merkle proofs of an org's log (docs/transparency.md)
REFEREE_FLIGHT_SHEET = "svc.referee.flight-sheet"
REFEREE_FLIGHT_SHEETS = "svc.referee.flight-sheets"

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_token(value: str, what: str) -> str:
    """Ids become subject tokens; refuse anything that could widen a subscription."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"{what} must be 1-64 of [A-Za-z0-9_-], got {value[:80]!r}")
    return value


def ingest_subject(command: Command) -> str:
    return f"ingest.{COMMAND_KINDS[type(command)]}.{check_token(command.org_id, 'org_id')}"


def event_subject(event: Event) -> str:
    name = EVENT_NAMES[type(event)]
    return f"run.{name}.{check_token(event.org_id, 'org_id')}.{check_token(event.run_id, 'run_id')}"


def event_filter(name: str) -> str:
    """Subject filter for one event type across all orgs and runs, e.g. run.approved.>"""
    return f"run.{name}.>"


def dead_subject(service: str, original_subject: str) -> str:
    return f"dead.{service}.{original_subject}"
