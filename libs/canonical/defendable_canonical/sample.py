"""Synthetic, deterministic receipt bodies of every kind, for tests, benchmarks and demos.

`perf.typical_body` is the eval receipt the ledger mints most; these are its siblings on
the same chain — a cook, an incident of each trigger kind, an unlock — and a trail summary
for an eval receipt that has one. Same arguments, same bytes, in any process.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Final

import msgspec

from .cook import (
    COOK_RECEIPT_SCHEMA,
    LIFT_METHOD,
    CookDataset,
    CookItemScore,
    CookLift,
    CookReceiptBody,
    CookSide,
    EvalItem,
    EvalSetRef,
    cook_seed,
    eval_set_sha256,
)
from .digest import GENESIS_HASH
from .incident import (
    ClauseValue,
    DarkAgentTrigger,
    GovernancePolicyRef,
    HighFlagsTrigger,
    IncidentKind,
    IncidentReceiptBody,
    IncidentTrigger,
    SpendCapTrigger,
    UnlockRecord,
)
from .model import INCIDENT_RECEIPT_SCHEMA, AgentProfile, Approval, FlightSheetRef, ReceiptBody, StoredReceipt
from .perf import typical_body
from .receipt import AnyReceiptBody, build_any_payload, payload_bytes, receipt_hash
from .trail import KindCounts, TrailSummary


def _digest(label: str, i: int = 0) -> str:
    return "sha256:" + hashlib.sha256(f"{label}:{i}".encode()).hexdigest()


def _hex32(label: str, i: int) -> str:
    return hashlib.sha256(f"{label}:{i}".encode()).hexdigest()[:32]


_FOUR: Final = Decimal("0.0001")
SAMPLE_PROFILE: Final = AgentProfile(
    model="claude-sonnet", harness="defendable-sdk/0.4", tools=["bash", "edit", "web"], runtime="python 3.12"
)
SAMPLE_SHEET: Final = FlightSheetRef(id="fin_wacc_calculation_v1", version="1.0.0", sha256=_digest("sheet"))


def sample_trail(steps: int = 42) -> TrailSummary:
    """What an eval receipt says about a run's OTLP trail."""
    tools, llm = steps // 2, steps // 3
    return TrailSummary(
        bundle_sha256=_digest("bundle", steps),
        steps=steps,
        trace_ids=[_hex32("trace", 1), _hex32("trace", 2)],
        kinds=KindCounts(agent=1, tool=tools, llm=llm, retrieval=steps - 1 - tools - llm, other=0),
        start_ns="1767225600000000000",
        end_ns="1767225672345678901",
        input_tokens=183_204,
        output_tokens=12_377,
        cost="1.284500",
        errors=2,
        problems=["missing_parent", "time_inverted"],
    )


def sample_eval_body(i: int = 0, org_id: str = "org_bench", *, trail: bool = False) -> ReceiptBody:
    """`perf.typical_body`, with a trail summary when `trail`."""
    body = typical_body(i, org_id)
    return msgspec.structs.replace(body, execution_trail=sample_trail()) if trail else body


def sample_cook_body(i: int = 0, org_id: str = "org_bench", *, items: int = 12) -> CookReceiptBody:
    """A cook whose post-cook scores beat the base model's on every `items`-item eval set."""
    evals = [EvalItem(id=f"q{k + 1:03d}", sha256=_digest("item", k)) for k in range(items)]
    set_hash = eval_set_sha256(evals)
    pre = [
        CookItemScore(item_id=e.id, run_id=f"run_{_hex32('pre', i * 1000 + k)}", score=f"{50 + (k * 7) % 40}.00")
        for k, e in enumerate(evals)
    ]
    post = [
        CookItemScore(item_id=e.id, run_id=f"run_{_hex32('post', i * 1000 + k)}", score=f"{58 + (k * 5) % 40}.33")
        for k, e in enumerate(evals)
    ]

    def mean(side: list[CookItemScore]) -> Decimal:
        return (sum((Decimal(s.score) for s in side), Decimal(0)) / len(side)).quantize(_FOUR)

    mean_pre, mean_post = mean(pre), mean(post)
    difference = mean_post - mean_pre
    return CookReceiptBody(
        schema=COOK_RECEIPT_SCHEMA,
        org_id=org_id,
        run_id=f"cook_{_hex32('cook', i)}",
        project="wacc-fine-tune",
        flight_sheet=SAMPLE_SHEET,
        base_model="llama-3.1-8b-instruct",
        cooked_model="llama-3.1-8b-instruct-wacc-cook-7",
        dataset=CookDataset(name="wacc-sft", version="3", sha256=_digest("dataset")),
        eval_set=EvalSetRef(name="wacc-holdout-2026q1", sha256=set_hash, items=items),
        pre=CookSide(mean_score=str(mean_pre), items=pre),
        post=CookSide(mean_score=str(mean_post), items=post),
        lift=CookLift(
            method=LIFT_METHOD,
            mean_difference=str(difference),
            lower=str(difference - Decimal("2.5")),
            upper=str(difference + Decimal("2.5")),
            confidence="0.95",
            resamples=10_000,
            seed=cook_seed(set_hash, SAMPLE_SHEET.sha256, [s.run_id for s in pre], [s.run_id for s in post]),
            noise_floor="1.0000",
        ),
        approval=Approval(approver="ana@example.com", decided_at="2026-01-02T03:04:05.000Z", note="ship it"),
    )


_CLAUSES: Final[dict[IncidentKind, ClauseValue]] = {
    "high_flags": {
        "id": "gov.high_flags.agent_work",
        "kind": "high_flags",
        "lane": "agent_work",
        "count": 3,
        "window_s": 86400,
        "response": "lock_lane",
        "description": "Three verdicts with a high flag for one agent profile within 24 hours lock the Agent Work "
        "lane for that profile.",
    },
    "spend_cap": {
        "id": "gov.spend_cap.daily",
        "kind": "spend_cap",
        "lane": "*",
        "window_s": 86400,
        "max_tokens": 50_000_000,
        "max_cost": "500.00",
        "currency": "USD",
        "response": "lock_lane",
        "description": "More than 50 million tokens or 500 USD of usage by one agent profile within 24 hours, "
        "all lanes together, locks every lane for that profile.",
    },
    "dark_agent": {
        "id": "gov.dark_agent.15m",
        "kind": "dark_agent",
        "lane": "*",
        "heartbeat_window_s": 900,
        "response": "alert",
        "description": "An agent profile that has sent heartbeats and then sends none for 15 minutes raises an alert.",
    },
}


def sample_policy(kind: IncidentKind = "high_flags") -> GovernancePolicyRef:
    clause = _CLAUSES[kind]
    return GovernancePolicyRef(
        id="default_governance_v1",
        version="1.0.0",
        sha256=_digest("policy"),
        clause_id=str(clause["id"]),
        clause=clause,
    )


def _trigger(kind: IncidentKind, runs: int) -> IncidentTrigger:
    run_ids = [f"run_{_hex32('flagged', k)}" for k in range(runs)]
    match kind:
        case "high_flags":
            return HighFlagsTrigger(
                count=runs,
                window_s=86400,
                first_at="2026-01-01T00:00:00.000Z",
                last_at="2026-01-01T02:00:00.000Z",
                run_ids=run_ids,
                runs=runs,
            )
        case "spend_cap":
            return SpendCapTrigger(
                window_s=86400,
                window_start="2026-01-01T00:00:00.000Z",
                window_end="2026-01-01T23:10:00.000Z",
                tokens=50_000_213,
                cost="512.40",
                currency="USD",
                max_tokens=50_000_000,
                max_cost="500.00",
                breached=["tokens", "cost"],
                run_ids=run_ids,
                runs=runs,
            )
        case "dark_agent":
            return DarkAgentTrigger(
                heartbeat_window_s=900,
                last_heartbeat_at="2026-01-01T01:00:00.000Z",
                detected_at="2026-01-01T01:15:00.000Z",
                silent_s=900,
            )


def sample_incident_body(
    i: int = 0, org_id: str = "org_bench", *, kind: IncidentKind = "high_flags", runs: int = 3
) -> IncidentReceiptBody:
    """An acknowledged incident: `runs` run ids in its trigger (high_flags, spend_cap)."""
    clause = _CLAUSES[kind]
    return IncidentReceiptBody(
        schema=INCIDENT_RECEIPT_SCHEMA,
        org_id=org_id,
        incident_id=f"inc_{_hex32('incident', i)}",
        kind=kind,
        lane="agent_work" if clause["lane"] == "agent_work" else "*",
        agent_profile=SAMPLE_PROFILE,
        profile_key=_digest("profile"),
        trigger=_trigger(kind, runs),
        response="alert" if clause["response"] == "alert" else "lock_lane",
        policy=sample_policy(kind),
        opened_at="2026-01-01T02:00:00.000Z",
        acknowledgement=Approval(
            approver="lead@example.com", decided_at="2026-01-01T02:30:00.000Z", note="pausing the agent"
        ),
    )


def sample_unlock_record(i: int = 0, org_id: str = "org_bench") -> UnlockRecord:
    """An approver lifting the lock `sample_incident_body(i)` set."""
    return UnlockRecord(
        org_id=org_id,
        unlock_id=f"unl_{_hex32('unlock', i)}",
        incident_id=f"inc_{_hex32('incident', i)}",
        lane="agent_work",
        agent_profile=SAMPLE_PROFILE,
        profile_key=_digest("profile"),
        policy=sample_policy("high_flags"),
        locked_at="2026-01-01T02:00:00.000Z",
        approval=Approval(
            approver="lead@example.com", decided_at="2026-01-01T04:00:00.000Z", note="retrained on the flagged memos"
        ),
    )


def sample_body(kind: str, i: int = 0, org_id: str = "org_bench") -> AnyReceiptBody:
    """One body per kind name: eval, trail (an eval receipt with a trail), cook, incident, unlock."""
    match kind:
        case "eval":
            return sample_eval_body(i, org_id)
        case "trail":
            return sample_eval_body(i, org_id, trail=True)
        case "cook":
            return sample_cook_body(i, org_id)
        case "incident":
            return sample_incident_body(i, org_id)
        case "unlock":
            return sample_unlock_record(i, org_id)
    raise ValueError(f"no sample receipt kind {kind!r}")


MIXED_KINDS: Final = ("eval", "cook", "trail", "incident", "eval", "unlock")


def sample_mixed_chain(n: int, org_id: str = "org_bench") -> list[StoredReceipt]:
    """`n` chained stored receipts cycling through `MIXED_KINDS`, as the ledger would hold them."""
    chain: list[StoredReceipt] = []
    parent = str(GENESIS_HASH)
    for seq in range(1, n + 1):
        body = sample_body(MIXED_KINDS[(seq - 1) % len(MIXED_KINDS)], seq, org_id)
        data = payload_bytes(build_any_payload(body, seq, parent, "2026-01-02T03:04:06Z"))
        digest = receipt_hash(data)
        chain.append(StoredReceipt(seq=seq, receipt_hash=digest, parent_hash=parent, payload=msgspec.Raw(data)))
        parent = digest
    return chain
