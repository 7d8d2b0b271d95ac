"""The 423 a governance lock answers to `POST /runs` (issue 3).

The gateway's copy of intake's locks (incident_store.py) gives the early answer; intake refuses
the run again, authoritatively, if the copy lagged behind a lock (the run is then refused, with
the same text, in its read model).
"""

from __future__ import annotations

from asyncpg import Pool
from litestar.plugins.problem_details import ProblemDetailsException

from defendable_canonical.incident import profile_key
from defendable_canonical.model import AgentProfile

from . import incident_store
from .schemas import AgentProfileIn


def agent_profile(profile: AgentProfileIn) -> AgentProfile:
    return AgentProfile(model=profile.model, harness=profile.harness, tools=profile.tools, runtime=profile.runtime)


async def refuse_if_locked(pool: Pool, org_id: str, lane: str, profile: AgentProfileIn) -> None:
    """Raise 423 when a governance lock holds `lane` (or every lane) for this agent profile.

    `detail` is the lock's own refusal text (policy id@version, clause, what it says, how to
    unlock); `incident_id`, `clause_id`, `lane`, `locked_at` and `unlock` are extension members
    (RFC 9457 §3.2)."""
    lock = await incident_store.held_lock(pool, org_id, profile_key(agent_profile(profile)), lane)
    if lock is None:
        return
    incident_id = lock["incident_id"]
    raise ProblemDetailsException(
        status_code=423,
        title="Locked",
        detail=lock["reason"] or f"lane {lane} is locked for this agent profile (incident {incident_id})",
        extra={
            "incident_id": incident_id,
            "clause_id": lock["clause_id"],
            "lane": lock["scope"],
            "locked_at": lock["locked_at"],
            "unlock": f"/incidents/{incident_id}/unlock",
        },
    )
