"""Governance receipts' PDFs: an incident (`defendablecloud.incident-receipt/v1`) and the
unlock that lifts its lock (`defendablecloud.unlock-receipt/v1`).

Both name the policy clause that fired: its id, the policy's id, version and hash, and the
clause itself as the receipt records it (its description, then its other terms).
"""

from __future__ import annotations

from collections.abc import Sequence

from defendable_canonical.incident import (
    DarkAgentTrigger,
    GovernancePolicyRef,
    HighFlagsTrigger,
    IncidentReceiptPayload,
    SpendCapTrigger,
    UnlockReceiptPayload,
)
from defendable_canonical.model import AgentProfile, Signature

from .layout import RGB, Layout, listed, thousands

LOCK_COLOURS: tuple[RGB, RGB] = ((164, 32, 32), (251, 226, 224))
ALERT_COLOURS: tuple[RGB, RGB] = ((196, 96, 20), (253, 235, 216))
UNLOCK_COLOURS: tuple[RGB, RGB] = ((38, 84, 140), (224, 234, 246))
KIND_MEANING = {
    "high_flags": "recurring high flags",
    "spend_cap": "spend cap breached",
    "dark_agent": "agent went dark",
}
Pairs = list[tuple[str, str, bool]]


def scope(lane: str) -> str:
    return "every lane" if lane == "*" else lane.replace("_", " ")


def response_text(response: str) -> str:
    return "lane locked" if response == "lock_lane" else "alert raised"


def duration(seconds: int) -> str:
    """``86400`` → ``"24 h (86,400 s)"``: the unit a reader thinks in, beside the recorded figure."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0 and not (unit == "d" and seconds == 86400):
            return f"{seconds // size} {unit} ({thousands(seconds)} s)"
    return f"{thousands(seconds)} s"


def agent_text(agent: AgentProfile) -> str:
    return f"{agent.model} · {agent.harness}" + (f" · {agent.runtime}" if agent.runtime else "")


def run_ids_text(run_ids: Sequence[str], runs: int) -> str:
    text = listed(list(run_ids)) or "—"
    if runs > len(run_ids):
        text += f"\n(the receipt lists the latest {len(run_ids)} of the {thousands(runs)} runs)"
    return text


class _GovernanceLayout(Layout):
    def _agent(self, agent: AgentProfile, profile_key: str, lane: str) -> Pairs:
        return [
            ("Agent profile", agent_text(agent), False),
            ("Agent tools", ", ".join(agent.tools) if agent.tools else "none declared", False),
            ("Profile key", profile_key, True),
            ("Lane", scope(lane), False),
        ]

    def _policy(self, policy: GovernancePolicyRef, note: str) -> None:
        self._section("Policy", note)
        clause = policy.clause
        description = clause.get("description")
        terms = [f"{key} = {value}" for key, value in clause.items() if key not in ("description", "id")]
        self._pairs(
            [
                ("Policy", f"{policy.id}@{policy.version}", False),
                ("Policy hash", policy.sha256, True),
                ("Clause", policy.clause_id, True),
                ("Clause text", str(description) if description is not None else "—", False),
                ("Clause terms", "\n".join(terms) if terms else "—", True),
            ]
        )


class IncidentLayout(_GovernanceLayout):
    # -- plan: 1 header, 2 incident banner, 3 chain facts, 4 the agent, 5 the trigger,
    #    6 the policy clause, 7 acknowledgement, 8 signature. The footer is the writer's.
    def draw(self, p: IncidentReceiptPayload, receipt_hash: str, signature: Signature | None, attachment: str) -> None:
        self._start()
        self._header("Defendable incident receipt", p.schema)
        colours = LOCK_COLOURS if p.response == "lock_lane" else ALERT_COLOURS
        self._banner_box(
            colours,
            p.kind.replace("_", " ").upper(),
            KIND_MEANING.get(p.kind, p.kind),
            [
                ("Response", response_text(p.response)),
                ("Lane", scope(p.lane)),
                ("Clause", p.policy.clause_id),
                ("Opened at", p.opened_at),
            ],
        )
        own = [("Incident id", p.incident_id, True), ("Opened at", p.opened_at, False)]
        self._chain(receipt_hash, p, attachment, own)
        self._section("Agent", "the profile the clause fired for")
        self._pairs(self._agent(p.agent_profile, p.profile_key, p.lane))
        self._trigger(p)
        self._policy(p.policy, "the clause that fired")
        self._approval("Acknowledgement", p.acknowledgement, who="Acknowledged by")
        self._signature(signature)

    # 5
    def _trigger(self, p: IncidentReceiptPayload) -> None:
        t = p.trigger
        rows: Pairs
        match t:
            case HighFlagsTrigger():
                self._section("Trigger", f"{t.count} verdicts with a high flag within {duration(t.window_s)}")
                rows = [
                    ("Verdicts", f"{t.count} with at least one high flag", False),
                    ("Window", duration(t.window_s), False),
                    ("First at", t.first_at, False),
                    ("Last at", t.last_at, False),
                    ("Runs counted", thousands(t.runs), False),
                    ("Run ids", run_ids_text(t.run_ids, t.runs), True),
                ]
            case SpendCapTrigger():
                breached = " and ".join(t.breached) or "a"
                self._section("Trigger", f"usage over the {breached} cap within {duration(t.window_s)}")
                unit = f" {t.currency}" if t.currency else ""
                tokens = thousands(t.tokens)
                if t.max_tokens is not None:
                    tokens += f" of at most {thousands(t.max_tokens)}"
                cost = f"{t.cost}{unit}" if t.cost is not None else "not counted"
                if t.max_cost is not None:
                    cost += f" of at most {t.max_cost}{unit}"
                rows = [
                    ("Window", f"({t.window_start}, {t.window_end}] · {duration(t.window_s)}", False),
                    ("Tokens", tokens, False),
                    ("Cost", cost, False),
                    ("Breached", ", ".join(t.breached) or "—", False),
                    ("Runs counted", thousands(t.runs), False),
                    ("Run ids", run_ids_text(t.run_ids, t.runs), True),
                ]
            case DarkAgentTrigger():
                self._section("Trigger", f"no heartbeat for {duration(t.silent_s)}")
                rows = [
                    ("Heartbeat window", duration(t.heartbeat_window_s), False),
                    ("Last heartbeat", t.last_heartbeat_at, False),
                    ("Detected at", t.detected_at, False),
                    ("Silent for", duration(t.silent_s), False),
                ]
        self._pairs([*rows, ("Response", f"{response_text(p.response)} ({p.response})", False)])


class UnlockLayout(_GovernanceLayout):
    # -- plan: 1 header, 2 unlock banner, 3 chain facts, 4 the lock lifted, 5 approval,
    #    6 the clause that set the lock, 7 signature. The footer is the writer's.
    def draw(self, p: UnlockReceiptPayload, receipt_hash: str, signature: Signature | None, attachment: str) -> None:
        self._start()
        self._header("Defendable unlock receipt", p.schema)
        self._banner_box(
            UNLOCK_COLOURS,
            "UNLOCKED",
            "an approver lifted the lock",
            [
                ("Lane", scope(p.lane)),
                ("Unlocked by", p.approval.approver),
                ("Locked at", p.locked_at),
                ("Unlocked at", p.approval.decided_at),
            ],
        )
        self._chain(receipt_hash, p, attachment, [("Unlock id", p.unlock_id, True)])
        self._section("Lock lifted", f"new runs of this profile in {scope(p.lane)} are admitted again")
        self._pairs(
            [
                ("Incident id", p.incident_id, True),
                *self._agent(p.agent_profile, p.profile_key, p.lane),
                ("Locked at", p.locked_at, False),
            ]
        )
        self._approval("Approval", p.approval, who="Unlocked by")
        self._policy(p.policy, "the clause that set the lock")
        self._signature(signature)
