"""Every kind of receipt request mints onto the org's one chain, through the one path approvals take."""

from __future__ import annotations

import re
import secrets
from typing import TypedDict

import asyncpg
import msgspec
import pytest

from defendable_canonical.chain import verify_chain
from defendable_canonical.cook import CookReceiptPayload
from defendable_canonical.digest import GENESIS_HASH
from defendable_canonical.events import Approved, CookApproved, Event, IncidentAcknowledged, LaneUnlocked, derive_id
from defendable_canonical.incident import IncidentReceiptPayload, UnlockReceiptPayload
from defendable_canonical.model import EVAL_RECEIPT_SCHEMA, ReceiptPayload, StoredReceipt
from defendable_canonical.receipt import decode_any_payload
from defendable_canonical.sample import sample_cook_body, sample_eval_body, sample_incident_body, sample_unlock_record
from defendable_canonical.signature import verify_signature
from defendable_ledger import store
from defendable_ledger.keys import Signer
from defendable_ledger.mint import (
    MINT_EVENT_NAMES,
    MintedReceipt,
    MintEvent,
    MintRequest,
    Unmintable,
    batch_count,
    chain_batch,
    mint_request,
    minted_event_id,
)

MINTED_AT = "2026-01-02T03:04:05.000Z"
SIGNER = Signer.generate()


class Envelope(TypedDict):
    event_id: str
    org_id: str
    run_id: str
    occurred_at: str
    producer: str


def envelope(kind: type[Event], org_id: str, run_id: str) -> Envelope:
    return {
        "event_id": derive_id("ev", kind.__name__, org_id, run_id),
        "org_id": org_id,
        "run_id": run_id,
        "occurred_at": MINTED_AT,
        "producer": "test",
    }


def mixed_events(org_id: str, rounds: int = 1) -> list[MintEvent]:
    """An approval, a cook, an incident and its unlock per round, interleaved as intake publishes them."""
    events: list[MintEvent] = []
    for i in range(rounds):
        eval_body = sample_eval_body(i, org_id, trail=i % 2 == 1)
        cook, incident, unlock = (
            sample_cook_body(i, org_id),
            sample_incident_body(i, org_id),
            sample_unlock_record(i, org_id),
        )
        events += [
            Approved(**envelope(Approved, org_id, eval_body.run_id), receipt=eval_body),
            CookApproved(**envelope(CookApproved, org_id, cook.run_id), receipt=cook),
            IncidentAcknowledged(**envelope(IncidentAcknowledged, org_id, incident.incident_id), receipt=incident),
            LaneUnlocked(**envelope(LaneUnlocked, org_id, unlock.unlock_id), record=unlock),
        ]
    return events


def stored(minted: list[MintedReceipt]) -> list[StoredReceipt]:
    return [
        StoredReceipt(seq=r.seq, receipt_hash=r.receipt_hash, parent_hash=r.parent_hash, payload=msgspec.Raw(r.payload))
        for r in minted
    ]


# ---------------------------------------------------------------- pure: requests and chaining


def test_the_ledger_consumes_the_four_events_that_ask_for_a_receipt() -> None:
    assert MINT_EVENT_NAMES == ("approved", "cook_approved", "incident_acknowledged", "lane_unlocked")


def test_each_event_becomes_a_request_keyed_on_its_envelope_run_id() -> None:
    events = mixed_events("org_k")
    requests = [mint_request(e) for e in events]
    assert [(r.org_id, r.run_id, r.event_id) for r in requests] == [(e.org_id, e.run_id, e.event_id) for e in events]
    assert [r.run_id[:4] for r in requests] == ["run_", "cook", "inc_", "unl_"]


@pytest.mark.parametrize("which", range(4))
def test_an_event_whose_body_names_another_org_or_run_is_unmintable(which: int) -> None:
    event = mixed_events("org_k")[which]
    for changes in ({"org_id": "org_other"}, {"run_id": "run_other"}):
        with pytest.raises(Unmintable, match="names another org or run in its receipt"):
            mint_request(msgspec.structs.replace(event, **changes))


def test_an_event_whose_body_claims_another_kinds_schema_is_unmintable() -> None:
    cook = mixed_events("org_k")[1]
    assert isinstance(cook, CookApproved)
    relabelled = msgspec.structs.replace(
        cook, receipt=msgspec.structs.replace(cook.receipt, schema=EVAL_RECEIPT_SCHEMA)
    )
    with pytest.raises(
        Unmintable, match=re.escape("a CookReceiptBody must have schema 'defendablecloud.cook-receipt/v1'")
    ):
        mint_request(relabelled)


def test_a_mixed_batch_chains_in_order_signs_every_receipt_and_verifies() -> None:
    requests = [mint_request(e) for e in mixed_events("org_k", rounds=3)]
    minted = chain_batch(0, GENESIS_HASH, requests, MINTED_AT, SIGNER.sign_all, ["t"] * len(requests))
    assert [r.seq for r in minted] == list(range(1, 13))
    assert [type(decode_any_payload(r.payload)) for r in minted] == [
        ReceiptPayload,
        CookReceiptPayload,
        IncidentReceiptPayload,
        UnlockReceiptPayload,
    ] * 3
    assert [r.minted_event_id for r in minted] == [minted_event_id(q.event_id) for q in requests]
    assert all(verify_signature(r.signature, r.receipt_hash) is None for r in minted)
    report = verify_chain(stored(minted))
    assert report.ok and report.length == 12, report


def test_a_batch_continues_the_chain_after_the_head_whatever_kinds_came_before() -> None:
    first = [mint_request(e) for e in mixed_events("org_k")]
    head = chain_batch(0, GENESIS_HASH, first, MINTED_AT, SIGNER.sign_all, ["t"] * 4)
    second = [mint_request(e) for e in mixed_events("org_k", rounds=2)[4:]]
    tail = chain_batch(4, head[-1].receipt_hash, second, MINTED_AT, SIGNER.sign_all, ["t"] * 4)
    assert verify_chain(stored([*head, *tail])).ok


def test_a_transaction_takes_approvals_up_to_its_byte_bound_and_always_the_first() -> None:
    mib = 1024 * 1024
    assert batch_count([], 64 * mib) == 0
    assert batch_count([300] * 2000, 64 * mib) == 2000  # eval approvals: the count bound (MINT_BATCH) decides
    assert batch_count([4 * mib] * 40, 64 * mib) == 16  # 10,000-item cooks with long ids: ~4.2 MB each
    assert batch_count([300, 300, 70 * mib, 300], 64 * mib) == 2
    assert batch_count([70 * mib, 300], 64 * mib) == 1  # one alone may exceed it: it is still minted


# ---------------------------------------------------------------- the table: real PostgreSQL


async def mint_once(conn: asyncpg.Connection, org_id: str, requests: list[MintRequest]) -> int:
    """The ledger's write path (app.mint_org): head lock, skip what is minted, chain, append. New receipts."""
    async with conn.transaction():
        head_seq, head_hash = await store.lock_head(conn, org_id)
        existing = await store.minted_for(conn, org_id, [r.run_id for r in requests])
        fresh = [r for r in requests if r.run_id not in existing]
        new = chain_batch(
            head_seq, head_hash, fresh, MINTED_AT, SIGNER.sign_all, [secrets.token_urlsafe(24) for _ in fresh]
        )
        await store.append(conn, org_id, head_seq, new)
    return len(new)


async def test_every_kind_is_stored_on_one_chain_and_a_redelivery_of_any_kind_mints_nothing(pool: asyncpg.Pool) -> None:
    org_id = "org-kinds-" + secrets.token_hex(6)
    requests = [mint_request(e) for e in mixed_events(org_id, rounds=2)]
    async with pool.acquire() as conn:
        assert await mint_once(conn, org_id, requests[:5]) == 5
        assert await mint_once(conn, org_id, requests) == 3  # the first five come again: only the rest is new
        assert await mint_once(conn, org_id, requests[1:4]) == 0  # a cook, an incident, an unlock redelivered
        again = await store.minted_for(conn, org_id, [r.run_id for r in requests])
    assert set(again) == {r.run_id for r in requests}
    assert {again[r.run_id].approval_event_id for r in requests} == {r.event_id for r in requests}
    chain: list[StoredReceipt] = []
    async with pool.acquire() as conn:
        async for chunk in store.stream_chain(conn, org_id):
            chain += chunk
    assert [r.seq for r in chain] == list(range(1, 9))
    report = verify_chain(chain)
    assert report.ok and report.length == 8, report
