"""Intake's governor: applies the org's governance policy to what intake sees (issue 3).

Inputs and where they come from (app.py calls each):
- `on_checked`, inside the transaction that records a verdict: the run's high flags and usage
  (governance_events.checked_observations);
- `admit` for the governance commands `Heartbeat`, `AcknowledgeIncident`, `UnlockLane`;
- `refuse_if_locked`, inside CreateRun's admission: a locked (lane, profile) is refused with
  the clause cited — the authoritative check, for SDKs that publish straight to NATS;
- the ticker (`start`), every `GOVERNANCE_TICK_S` seconds (default 30): dark agents, pruning,
  and publishing what a crash left in the outbox.

Plan for one input:
1. lock the org's governance row (`governance_store.lock_state`);
2. run the pure machine (`governance.observe`) and turn its actions into events;
3. in the same transaction: save the state (and its lock rows when they changed) and the
   events — in `commands` for a command, in `governance_outbox` for a verdict or a Tick;
4. after commit: publish, then (outbox) mark published.
A crash before 3 commits changes nothing; a crash after it is healed by redelivery (the
command or the Checked event finds its stored events and publishes them again, same ids) or,
for a Tick, by the next tick's relay of unpublished rows.

Dark agents: a Tick is skipped while intake's INGEST consumer has commands waiting, so
heartbeats that queued during an outage are counted before anyone is declared dark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from asyncpg import Connection, Pool

from defendable_canonical.events import (
    AcknowledgeIncident,
    Checked,
    CreateRun,
    Event,
    Heartbeat,
    UnlockLane,
    derive_id,
    encode,
    event_decoder,
)
from defendable_canonical.incident import agent_id, profile_key, rfc3339_ms

from . import admission, governance, governance_store, store
from .admission import Refusal, RunState
from .governance import AnyObservation, GovernanceState, dark_deadline_ns, observe
from .governance_events import checked_observations, events_for, lock_reason, unix_ns
from .governance_policy import NS, LoadedPolicy, load_library, select_policy

log = logging.getLogger("defendable.intake.governor")

COMMANDS: Final = (Heartbeat, AcknowledgeIncident, UnlockLane)
GovernanceCommand = Heartbeat | AcknowledgeIncident | UnlockLane
DEFAULT_TICK_S: Final = 30.0
MAX_APPROVER_CHARS: Final = 200
MAX_NOTE_CHARS: Final = 4000  # as the gateway's DecisionRequest.note
TICK_ORGS: Final = 200  # orgs ticked per round; the rest are due next round
RELAY_AFTER_S: Final = 5.0  # an outbox row unpublished this long was left by a crash
RELAY_ROWS: Final = 500
OUTBOX_KEEP_S: Final = 24 * 3600.0
PRUNE_EVERY_NS: Final = 3600 * NS  # an org with nothing due is still ticked (pruned) this often

Publish = Callable[[Sequence[Event]], Awaitable[None]]
Backlog = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Outbox:
    """Events a verdict or a Tick produced, stored under `cause_id` until published."""

    cause_id: str
    events: list[Event]


@dataclass
class Governor:
    policy: LoadedPolicy | None = None
    tick_s: float = DEFAULT_TICK_S
    _pool: Pool | None = None
    _publish: Publish | None = None
    _backlog: Backlog | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    # ------------------------------------------------------------ set-up

    def configure(self, env: Mapping[str, str], pool: Pool, publish: Publish, backlog: Backlog) -> None:
        """Load the policy (`GOVERNANCE_POLICY_DIR`, `GOVERNANCE_POLICY`) and the tick interval
        (`GOVERNANCE_TICK_S`, 0.1–3600 s); an invalid policy stops intake at start-up."""
        directory = env.get("GOVERNANCE_POLICY_DIR") or None
        self.policy = select_policy(load_library(Path(directory) if directory else None), env.get("GOVERNANCE_POLICY"))
        tick = float(env.get("GOVERNANCE_TICK_S") or DEFAULT_TICK_S)
        if not 0.1 <= tick <= 3600:
            raise ValueError(f"GOVERNANCE_TICK_S={tick} is outside 0.1..3600 seconds")
        self.tick_s = tick
        self._pool, self._publish, self._backlog = pool, publish, backlog
        log.info("governance policy %s %s, ticking every %.1f s", self.policy.policy.key, self.policy.sha256, tick)

    def start(self) -> None:
        self._task = asyncio.create_task(self._ticker(), name="governance-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def loaded(self) -> LoadedPolicy:
        assert self.policy is not None, "governor not configured"
        return self.policy

    @property
    def pool(self) -> Pool:
        assert self._pool is not None, "governor not configured"
        return self._pool

    # ------------------------------------------------------------ inputs

    async def on_checked(self, conn: Connection, run: RunState | None, checked: Checked) -> Outbox | None:
        """Inside the verdict's transaction (the run row is locked): count its flags and usage."""
        if run is None or run.submission_sha256 != checked.submission_sha256:
            return None  # not a run intake admitted, or a verdict on another submission
        now_ns = time.time_ns()
        observations = checked_observations(run, checked, now_ns)
        if not observations:
            return None  # a clean run that used nothing: governance has nothing to do (no I/O)
        stored = await governance_store.outbox_events(conn, checked.event_id)
        if stored is not None:  # redelivered: the same events again, same ids
            return Outbox(checked.event_id, [event_decoder.decode(data) for data in stored])
        state = await governance_store.lock_state(conn, run.org_id)
        assert state is not None
        events = await self._apply(conn, state, observations, checked.event_id, now_ns)
        if not events:
            return None
        await governance_store.add_outbox(conn, checked.event_id, run.org_id, [encode(e) for e in events])
        return Outbox(checked.event_id, events)

    async def flush(self, outbox: Outbox | None) -> None:
        """After commit: publish, then mark the outbox row published."""
        if outbox is None or not outbox.events:
            return
        assert self._publish is not None
        await self._publish(outbox.events)
        await governance_store.mark_published(self.pool, [outbox.cause_id])

    async def refuse_if_locked(self, conn: Connection, command: CreateRun) -> None:
        reason = await governance_store.lock_reason(
            conn, command.org_id, profile_key(command.agent_profile), command.lane
        )
        if reason is not None:
            raise Refusal(reason)

    async def admit(self, command: GovernanceCommand) -> list[Event]:
        """Admit one governance command: its events (or its refusal) are stored with it in `commands`."""
        now_ns = time.time_ns()
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                events = await self._command(conn, command, now_ns)
            except Refusal as refusal:  # raised before anything is written
                events = [
                    admission.refused(
                        command.command_id, command.org_id, command.run_id, type(command).__name__, str(refusal),
                        rfc3339_ms(now_ns),
                    )
                ]  # fmt: skip
            await store.record_command(
                conn, command.command_id, command.org_id, command.run_id, [encode(e) for e in events]
            )
        return events

    async def _command(self, conn: Connection, command: GovernanceCommand, now_ns: int) -> list[Event]:
        org, cause = command.org_id, command.command_id
        match command:
            case Heartbeat():
                expected = agent_id(command.agent_profile)
                if command.run_id != expected:
                    raise Refusal(f"a heartbeat's run_id is its agent id, {expected} for this agent profile")
                at_ns = min(unix_ns(command.issued_at, now_ns), now_ns)
                beat = governance.Heartbeat(profile=command.agent_profile, lane=command.lane, at_ns=at_ns)
                state = await governance_store.lock_state(conn, org)
                assert state is not None
                return await self._apply(conn, state, [beat], cause, now_ns)
            case AcknowledgeIncident():
                _check_approval(command.approver, command.note)
                state = await governance_store.lock_state(conn, org)
                assert state is not None
                record = state.incidents.get(command.run_id)
                if record is None:
                    raise Refusal(f"no incident {command.run_id} in this organisation")
                if record.acknowledgement is not None:
                    ack = record.acknowledgement
                    raise Refusal(
                        f"incident {command.run_id} was already acknowledged by {ack.approver} at {ack.decided_at}"
                    )
                observation: AnyObservation = governance.Acknowledged(
                    incident_id=command.run_id, approver=command.approver, at_ns=now_ns, note=command.note
                )
                return await self._apply(conn, state, [observation], cause, now_ns)
            case UnlockLane():
                _check_approval(command.approver, command.note)
                state = await governance_store.lock_state(conn, org)
                assert state is not None
                if command.run_id not in state.incidents:
                    raise Refusal(f"no incident {command.run_id} in this organisation")
                lock = next((lk for lk in state.locks.values() if lk.incident_id == command.run_id), None)
                if lock is None:
                    raise Refusal(
                        f"incident {command.run_id} holds no lock: it was unlocked already, or it only alerted"
                    )
                observation = governance.Unlocked(
                    lane=lock.lane, profile=lock.profile, approver=command.approver, at_ns=now_ns, note=command.note
                )
                return await self._apply(conn, state, [observation], cause, now_ns)

    async def _apply(
        self,
        conn: Connection,
        state: GovernanceState,
        observations: list[AnyObservation],
        cause_id: str,
        now_ns: int,
        *,
        always_save: bool = False,
    ) -> list[Event]:
        """Steps 2 and 3 of the plan for a locked state; the events to store and publish."""
        policy = self.loaded
        new, events = state, []
        for observation in observations:
            new, actions = observe(new, observation, policy, now_ns)
            events += events_for(actions, new, cause_id, now_ns)
        if new is state and not always_save:
            return events
        dark = dark_deadline_ns(new, policy)
        due = now_ns + PRUNE_EVERY_NS if dark is None else min(dark, now_ns + PRUNE_EVERY_NS)
        await governance_store.save_state(conn, new, policy.policy.key, due)
        if new.locks != state.locks:
            rows = [
                (lock.profile_key, lock.lane, lock.clause_id, lock.incident_id, lock_reason(new, lock))
                for lock in new.locks.values()
            ]
            await governance_store.replace_locks(conn, new.org_id, rows)
        return events

    # ------------------------------------------------------------ the ticker

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick(time.time_ns())
            except Exception:  # an outage or a bug: logged, and the next tick tries again
                log.exception("governance tick failed")

    async def tick(self, now_ns: int) -> None:
        """1. publish what a crash left in the outbox; 2. tick the orgs that are due, unless
        commands are waiting; 3. forget published outbox rows past any redelivery."""
        assert self._publish is not None and self._backlog is not None
        # 1.
        for cause_id, stored in await governance_store.unpublished(self.pool, RELAY_AFTER_S, RELAY_ROWS):
            await self.flush(Outbox(cause_id, [event_decoder.decode(data) for data in stored]))
        # 2.
        waiting = await self._backlog()
        if waiting:
            log.info("governance tick deferred: %d commands wait in INGEST", waiting)
        else:
            for org_id in await governance_store.due_orgs(self.pool, now_ns, TICK_ORGS):
                await self.flush(await self._tick_org(org_id, now_ns))
        # 3.
        await governance_store.prune_outbox(self.pool, OUTBOX_KEEP_S)

    async def _tick_org(self, org_id: str, now_ns: int) -> Outbox | None:
        cause_id = derive_id("tick", org_id, str(now_ns))
        async with self.pool.acquire() as conn, conn.transaction():
            state = await governance_store.lock_state(conn, org_id, skip_locked=True)
            if state is None:
                return None  # another replica is ticking it
            tick = governance.Tick(now_ns=now_ns)
            events = await self._apply(conn, state, [tick], cause_id, now_ns, always_save=True)
            if events:
                await governance_store.add_outbox(conn, cause_id, org_id, [encode(e) for e in events])
        return Outbox(cause_id, events) if events else None


def _check_approval(approver: str, note: str) -> None:
    if not approver.strip():
        raise Refusal("an approver action needs a named approver")
    if len(approver) > MAX_APPROVER_CHARS:
        raise Refusal(f"the approver's name is {len(approver)} characters; at most {MAX_APPROVER_CHARS}")
    if len(note) > MAX_NOTE_CHARS:
        raise Refusal(f"the note is {len(note)} characters; at most {MAX_NOTE_CHARS}")


gov = Governor()
