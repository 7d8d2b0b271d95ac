"""Governance over HTTP (issue 3): heartbeats, incidents, acknowledgements, unlocks, and the 423
that a locked lane answers to `POST /runs`.

Thin, as routes.py: authenticate, validate, publish a command for intake to admit, answer 202;
the read model (incident_store.py) catches up from `run.>` events; the 423 is lane_lock.py. Intake's governor decides
everything: the gateway's 409s and 423s are early answers from its copy, and intake refuses
again, authoritatively, what slips past them.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any, Final

import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from defendable_canonical.events import AcknowledgeIncident, Heartbeat, UnlockLane
from defendable_canonical.incident import agent_id, profile_key
from defendable_canonical.model import Lane

from . import incident_store, store
from .lane_lock import agent_profile
from .routes import command_base, holder, principal_of, problem, receipt_doc, require_key
from .schemas import AgentProfileIn, DecisionRequest

_INCIDENT_ID: Final = re.compile(r"inc_[0-9a-f]{32}")


class HeartbeatRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    agent_profile: AgentProfileIn
    lane: Lane


class HeartbeatAccepted(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str  # "agent_" + 32 hex of the profile key: the Heartbeat command's run_id
    profile_key: str
    status: str = "accepted"


class IncidentAccepted(msgspec.Struct, frozen=True, kw_only=True):
    incident_id: str
    status: str


# ---------------------------------------------------------------------------- heartbeats


@post(
    "/agents/heartbeat",
    status_code=202,
    summary="An agent is alive (dark-agent clauses)",
    guards=[require_key],
    opt={"role": "submitter"},
)
async def heartbeat(request: Request[Any, Any, Any], data: HeartbeatRequest) -> HeartbeatAccepted:
    principal = principal_of(request)
    profile = agent_profile(data.agent_profile)
    agent = agent_id(profile)
    await holder.res.bus.command(Heartbeat(**command_base(principal, agent), agent_profile=profile, lane=data.lane))
    return HeartbeatAccepted(agent_id=agent, profile_key=profile_key(profile))


# ---------------------------------------------------------------------------- incidents


def _raw(data: bytes | None) -> msgspec.Raw | None:
    return None if data is None else msgspec.Raw(bytes(data))


def _status(row: dict[str, Any]) -> str:
    return "minted" if row["receipt_hash"] else str(row["status"])


def _lock_state(row: dict[str, Any]) -> str:
    if row["locked_at"] is None:
        return "none"
    return "unlocked" if row["unlocked_at"] else "locked"


def incident_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": row["incident_id"],
        "kind": row["kind"],
        "lane": row["lane"],
        "clause_id": row["clause_id"],
        "response": row["response"],
        "profile_key": row["profile_key"],
        "agent_profile": _raw(row["agent_profile"]),
        "opened_at": row["opened_at"],
        "status": _status(row),
        "lock": _lock_state(row),
        "receipt_hash": row["receipt_hash"],
    }


async def own_incident(org_id: str, incident_id: str) -> dict[str, Any]:
    """The incident, if it belongs to the caller's org. Another org's is simply not found."""
    found = _INCIDENT_ID.fullmatch(incident_id)
    row = await incident_store.get_incident(holder.res.pool, org_id, incident_id) if found else None
    if row is None:
        raise problem(404, f"no incident {incident_id[:80]} in this organisation")
    return row


async def _receipt(receipt_hash: str | None) -> Any:
    if not receipt_hash:
        return None
    row = await store.get_receipt(holder.res.pool, receipt_hash)
    return None if row is None else receipt_doc(row)


@get(
    "/incidents/{incident_id:str}",
    summary="One incident: trigger, response, status, lock, receipts",
    guards=[require_key],
)
async def get_incident(request: Request[Any, Any, Any], incident_id: str) -> dict[str, Any]:
    row = await own_incident(principal_of(request).org_id, incident_id)
    return {
        **incident_summary(row),
        "trigger": _raw(row["trigger"]),
        "policy": _raw(row["policy"]),
        "acknowledgement": _raw(row["acknowledgement"]),
        "lock": {
            "state": _lock_state(row),
            "locked_at": row["locked_at"],
            "unlocked_at": row["unlocked_at"],
            "reason": row["lock_reason"] or None,
        },
        "unlock": _raw(row["unlock"]),
        "receipt": await _receipt(row["receipt_hash"]),
        "unlock_receipt": await _receipt(row["unlock_receipt_hash"]),
        "refusals": [msgspec.Raw(bytes(r)) for r in row["refusals"]],
    }


def _cursor(created_at: datetime, incident_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at.isoformat(), incident_id])).decode()


@get("/incidents", summary="This organisation's incidents, newest first, with cursor paging", guards=[require_key])
async def list_incidents(
    request: Request[Any, Any, Any],
    status: str | None = None,
    cursor: str | None = None,
    limit: int = Parameter(default=50, ge=1, le=200),
) -> dict[str, Any]:
    principal = principal_of(request)
    if status is not None and status not in incident_store.STATUSES:
        raise problem(400, f"status must be one of {', '.join(incident_store.STATUSES)}")
    after: tuple[datetime, str] | None = None
    if cursor:
        try:
            after = msgspec.json.decode(base64.urlsafe_b64decode(cursor.encode()), type=tuple[datetime, str])
        except Exception as exc:
            raise problem(400, "cursor is not one this API issued; pass next_cursor back unchanged") from exc
    rows = await incident_store.list_incidents(holder.res.pool, principal.org_id, status, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "incidents": [incident_summary(r) for r in rows],
        "next_cursor": _cursor(rows[-1]["created_at"], rows[-1]["incident_id"]) if more else None,
    }


@post(
    "/incidents/{incident_id:str}/acknowledge",
    status_code=202,
    summary="Acknowledge an incident: its receipt is minted on the org's chain",
    guards=[require_key],
    opt={"role": "approver"},
)
async def acknowledge(
    request: Request[Any, Any, Any], incident_id: str, data: DecisionRequest | None = None
) -> IncidentAccepted:
    principal = principal_of(request)
    row = await own_incident(principal.org_id, incident_id)
    if row["status"] != "open" or row["receipt_hash"]:
        ack = msgspec.json.decode(row["acknowledgement"]) if row["acknowledgement"] else {}
        by = f" by {ack['approver']} at {ack['decided_at']}" if ack else ""
        raise problem(409, f"incident {incident_id} was already acknowledged{by}")
    await holder.res.bus.command(
        AcknowledgeIncident(
            **command_base(principal, incident_id), approver=principal.label, note=data.note if data else ""
        )
    )
    return IncidentAccepted(incident_id=incident_id, status="acknowledge requested")


@post(
    "/incidents/{incident_id:str}/unlock",
    status_code=202,
    summary="Lift the lock an incident set (acknowledging it first if nobody had); recorded on the chain",
    guards=[require_key],
    opt={"role": "approver"},
)
async def unlock(
    request: Request[Any, Any, Any], incident_id: str, data: DecisionRequest | None = None
) -> IncidentAccepted:
    principal = principal_of(request)
    row = await own_incident(principal.org_id, incident_id)
    state = _lock_state(row)
    if state != "locked":
        what = "was already unlocked" if state == "unlocked" else f"set no lock (its response is {row['response']})"
        raise problem(409, f"incident {incident_id} {what}")
    await holder.res.bus.command(
        UnlockLane(**command_base(principal, incident_id), approver=principal.label, note=data.note if data else "")
    )
    return IncidentAccepted(incident_id=incident_id, status="unlock requested")
