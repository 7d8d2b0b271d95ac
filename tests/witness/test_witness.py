"""The witness process against honest and hostile logs (tests/witness/testlog.py)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
from typing import TypeVar

import msgspec
import pytest

from defendable_canonical.checkpoint import verify_checkpoint
from defendable_canonical.cosignature import CosignatureSigner, CosignatureVerifier
from defendable_canonical.events import AnyEvent, CheckpointCosigned, WitnessAlert, derive_id, event_decoder
from defendable_canonical.merkle import MerkleTree, receipt_leaf_hash
from defendable_canonical.note import MAX_NOTE_BYTES, Ed25519Signer, Ed25519Verifier, Note, format_note, parse_note
from defendable_canonical.signature import b64url
from defendable_canonical.tlog_proof import WitnessPolicy, build_tlog_proof, verify_tlog_proof
from defendable_witness.config import DEFAULT_NAME

from .conftest import Witness, wait_events
from .testlog import OrgLog, TestLog, receipt_hash

E = TypeVar("E", bound=AnyEvent)


def of(events: list[AnyEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def other_tree(size: int) -> MerkleTree:
    """A tree of `size` receipts the honest log never had."""
    return MerkleTree(receipt_leaf_hash(receipt_hash()) for _ in range(size))


async def cosigned_upto(log: TestLog, org: OrgLog, size: int) -> list[AnyEvent]:
    """The org's events once the checkpoint of `size` is cosigned (the witness keeps stream order)."""
    return await wait_events(log, org.org_id, lambda evs: any(e.size == size for e in of(evs, CheckpointCosigned)))


async def test_honest_log_each_checkpoint_is_cosigned_and_verifies(witness: Witness, test_log: TestLog) -> None:
    await witness.start()
    vkey = await witness.vkey()  # pinned by the verifier, independently of what the events say
    cosigner = CosignatureVerifier.from_vkey(vkey)
    org = test_log.org()
    log_key = Ed25519Verifier(org.origin, test_log.public)
    notes = []
    for grow in (3, 2, 4):
        org.grow(grow)
        notes.append(org.checkpoint())
        await test_log.publish(org, notes[-1])

    events = await cosigned_upto(test_log, org, 9)
    cosigned = of(events, CheckpointCosigned)
    assert [e.size for e in cosigned] == [3, 5, 9]
    assert not of(events, WitnessAlert)
    for event, offered in zip(cosigned, notes, strict=True):
        assert event.event_id == derive_id("ev", f"{org.org_id}/{event.size}", "CheckpointCosigned", witness.name)
        assert (event.witness, event.witness_vkey, event.producer, event.origin) == (
            witness.name,
            vkey,
            "witness",
            org.origin,
        )
        note = parse_note(event.cosigned.encode())
        assert note.text == parse_note(offered).text
        verified = verify_checkpoint(note, log=log_key, others=[cosigner])
        assert {(s.name, s.key_id) for s in verified.verified} == {
            (org.origin, log_key.key_id),
            (witness.name, cosigner.key_id),
        }
        index = event.size - 1  # the newest receipt of that checkpoint, proven offline with its cosignature
        package = build_tlog_proof(
            org.receipts[index], index, org.tree.inclusion_proof(index, event.size), event.cosigned.encode()
        )
        proven = verify_tlog_proof(
            package,
            receipt_hash=org.receipts[index],
            origin=org.origin,
            log=log_key,
            witnesses=WitnessPolicy((cosigner,), 1),
        )
        assert [c.name for c in proven.cosigned] == [witness.name]
    assert [(q.first, q.second) for q in test_log.questions] == [(3, 5), (5, 9)]
    # Trust on first use: the key the ledger published then is pinned in the witness's own schema.
    pinned = await witness.fetch("SELECT public_key FROM witness.log_keys")
    assert [r["public_key"] for r in pinned] == [b64url(test_log.public)]
    assert test_log.key_requests == 1
    assert await witness.cosigned_sizes(org.org_id) == [3, 5, 9]


async def test_two_checkpoints_of_one_size_the_second_is_refused(witness: Witness, test_log: TestLog) -> None:
    await witness.start()
    org = test_log.org()
    org.grow(5)
    await test_log.publish(org, org.checkpoint())
    first = of(await cosigned_upto(test_log, org, 5), CheckpointCosigned)[0]

    forked = org.checkpoint(tree=other_tree(5))  # validly signed by the log: a split view
    await test_log.publish(org, forked)
    events = await wait_events(test_log, org.org_id, lambda evs: bool(of(evs, WitnessAlert)))
    [alert] = of(events, WitnessAlert)
    assert (alert.size, alert.witness, alert.origin) == (5, witness.name, org.origin)
    assert alert.held == first.cosigned and alert.offered == forked.decode()
    assert "two different roots for tree size 5" in alert.reason
    assert [e.cosigned for e in of(events, CheckpointCosigned)] == [first.cosigned]
    assert "REFUSED" in witness.log_text()

    org.grow(2)  # what it holds is still the first: the honest log goes on from there
    await test_log.publish(org, org.checkpoint())
    events = await cosigned_upto(test_log, org, 7)
    assert [e.size for e in of(events, CheckpointCosigned)] == [5, 7]
    assert await witness.cosigned_sizes(org.org_id) == [5, 7]


@pytest.mark.parametrize("hostility", ["rewritten history", "forged proof", "empty proof"])
async def test_a_checkpoint_without_a_valid_consistency_proof_is_refused(
    witness: Witness, test_log: TestLog, hostility: str
) -> None:
    await witness.start()
    org = test_log.org()
    org.grow(4)
    await test_log.publish(org, org.checkpoint())
    held = of(await cosigned_upto(test_log, org, 4), CheckpointCosigned)[0]

    if hostility == "rewritten history":
        org.tree = other_tree(8)  # the log now serves another history, and proofs from it
    else:
        org.grow(4)
        honest = org.tree.consistency_proof(4, 8)
        org.proof = (
            (lambda first, second: [secrets.token_bytes(32) for _ in honest])
            if hostility == "forged proof"
            else (lambda first, second: [])
        )
    offered = org.checkpoint()
    await test_log.publish(org, offered)
    events = await wait_events(test_log, org.org_id, lambda evs: bool(of(evs, WitnessAlert)))
    [alert] = of(events, WitnessAlert)
    assert (alert.size, alert.held, alert.offered) == (8, held.cosigned, offered.decode())
    assert "no valid proof from size 4 to 8" in alert.reason
    assert [e.size for e in of(events, CheckpointCosigned)] == [4]
    assert await witness.cosigned_sizes(org.org_id) == [4]
    latest = await witness.fetch("SELECT size FROM witness.latest WHERE origin = $1", org.origin)
    assert [r["size"] for r in latest] == [4]
    stored = await witness.fetch("SELECT reason FROM witness.alerts WHERE origin = $1", org.origin)
    assert [r["reason"] for r in stored] == [alert.reason]


async def test_tail_deletion_is_refused_and_a_genuine_older_checkpoint_ignored(
    witness: Witness, test_log: TestLog
) -> None:
    await witness.start()
    org = test_log.org()
    org.grow(8)
    await test_log.publish(org, org.checkpoint())
    held = of(await cosigned_upto(test_log, org, 8), CheckpointCosigned)[0]

    cut = org.checkpoint(tree=other_tree(5))  # smaller, and its root is no prefix of the 8 cosigned
    await test_log.publish(org, cut)
    await test_log.publish(org, org.checkpoint(size=3))  # genuinely older: old news
    org.grow(2)
    await test_log.publish(org, org.checkpoint())
    events = await cosigned_upto(test_log, org, 10)  # in stream order: the two before are decided

    [alert] = of(events, WitnessAlert)
    assert (alert.size, alert.held, alert.offered) == (5, held.cosigned, cut.decode())
    assert "no valid proof from size 5 to 8" in alert.reason
    assert [e.size for e in of(events, CheckpointCosigned)] == [8, 10]
    assert [(q.first, q.second) for q in test_log.questions] == [(5, 8), (3, 8), (8, 10)]
    assert await witness.cosigned_sizes(org.org_id) == [8, 10]


@pytest.mark.parametrize("pinning", ["configured", "first use"])
async def test_a_checkpoint_signed_by_an_unknown_key_is_refused(
    witness: Witness, test_log: TestLog, pinning: str
) -> None:
    if pinning == "configured":
        await witness.start(WITNESS_LOG_PUBLIC_KEY=b64url(test_log.public))
    else:
        await witness.start()
    org = test_log.org()
    org.grow(3)
    stranger = org.checkpoint(signer=Ed25519Signer.from_seed(org.origin, secrets.token_bytes(32)))
    genuine = org.checkpoint()
    note = parse_note(genuine)  # the log's key id, with a signature that is not the log's
    sig = note.signatures[0]
    forged = format_note(Note(note.text, (msgspec.structs.replace(sig, signature=bytes(64)),)))
    await test_log.publish(org, stranger)
    await test_log.publish(org, forged)
    await test_log.publish(org, genuine)
    events = await cosigned_upto(test_log, org, 3)

    alerts = of(events, WitnessAlert)
    assert [a.offered for a in alerts] == [stranger.decode(), forged.decode()]
    assert "signed by no pinned log key" in alerts[0].reason
    assert "invalid signature" in alerts[1].reason
    assert all(a.held == "" for a in alerts)  # nothing cosigned yet for this log
    [cosigned] = of(events, CheckpointCosigned)
    assert parse_note(cosigned.cosigned.encode()).signatures[0] == sig
    assert test_log.key_requests == (0 if pinning == "configured" else 1)


async def test_a_redelivered_checkpoint_yields_the_same_cosignature_event(witness: Witness, test_log: TestLog) -> None:
    await witness.start()
    org = test_log.org()
    seen = await test_log.nc.subscribe(f"run.checkpoint_cosigned.{org.org_id}.*")  # every publish, duplicates too
    org.grow(4)
    note = org.checkpoint()
    await test_log.publish(org, note)
    await cosigned_upto(test_log, org, 4)
    await test_log.publish(org, note, copy=1)  # the same checkpoint, stored again
    org.grow(1)
    await test_log.publish(org, org.checkpoint())
    events = await cosigned_upto(test_log, org, 5)

    assert [e.size for e in of(events, CheckpointCosigned)] == [4, 5]  # no duplicate stored
    published: list[AnyEvent] = []
    while len(published) < 3:
        msg = await seen.next_msg(timeout=10)
        published.append(event_decoder.decode(msg.data))
    await seen.unsubscribe()
    four = [e for e in of(published, CheckpointCosigned) if e.size == 4]
    assert len(four) == 2 and four[0].event_id == four[1].event_id  # republished, under the same id
    assert four[0].cosigned == four[1].cosigned  # the stored cosignature, not a new one
    assert not of(events, WitnessAlert)
    assert await witness.cosigned_sizes(org.org_id) == [4, 5]


async def test_a_log_that_cannot_prove_is_waited_for_never_cosigned_unproven(
    witness: Witness, test_log: TestLog
) -> None:
    await witness.start()
    org = test_log.org()
    org.grow(3)
    await test_log.publish(org, org.checkpoint())
    await cosigned_upto(test_log, org, 3)
    test_log.outage = True  # it answers with a problem...
    org.grow(2)
    await test_log.publish(org, org.checkpoint())
    await asyncio.sleep(1.5)
    await test_log.stop()  # ...then not at all
    await asyncio.sleep(1.5)
    events = await test_log.events(org.org_id)
    assert [e.size for e in of(events, CheckpointCosigned)] == [3] and not of(events, WitnessAlert)

    test_log.outage = False
    await test_log.start()
    events = await cosigned_upto(test_log, org, 5)
    assert [e.size for e in of(events, CheckpointCosigned)] == [3, 5] and not of(events, WitnessAlert)
    assert "dependency unavailable" in witness.log_text()


async def test_undecodable_and_oversized_checkpoints_are_dead_lettered(witness: Witness, test_log: TestLog) -> None:
    await witness.start()
    org = test_log.org()
    js = test_log.js
    await js.publish(f"run.checkpoint_signed.{org.org_id}.tree-1", b"{not json", headers={"Nats-Msg-Id": "bad-1"})
    org.grow(1)
    big = org.checkpoint().decode().replace("\n\n", "\n" + "x" * MAX_NOTE_BYTES + "\n\n", 1).encode()
    await test_log.publish(org, big)
    await test_log.publish(org, org.checkpoint())
    events = await cosigned_upto(test_log, org, 1)
    assert not of(events, WitnessAlert)
    info = await js.stream_info("DEAD", subjects_filter="dead.>")
    dead = {subject: n for subject, n in (info.state.subjects or {}).items() if org.org_id in subject}
    assert dead == {f"dead.witness.run.checkpoint_signed.{org.org_id}.tree-1": 2}


async def test_the_witness_survives_a_kill_and_cosigns_each_checkpoint_once(
    witness: Witness, test_log: TestLog
) -> None:
    org = test_log.org()
    for _ in range(40):
        org.grow(1)
        await test_log.publish(org, org.checkpoint())
    test_log.delay_s = 0.03  # an honest, slowish log: the kill lands mid-stream
    await witness.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while len(await witness.cosigned_sizes(org.org_id)) < 8:
        assert loop.time() < deadline, witness.log_text()[-3000:]
        await asyncio.sleep(0.02)
    witness.kill()
    at_kill = await witness.cosigned_sizes(org.org_id)
    assert len(at_kill) < 40, "the kill came too late to test anything"

    await witness.start()
    events = await cosigned_upto(test_log, org, 40)
    assert await witness.cosigned_sizes(org.org_id) == list(range(1, 41))  # each once (and no gap)
    assert [e.size for e in of(events, CheckpointCosigned)] == list(range(1, 41))
    assert not of(events, WitnessAlert)


async def test_with_only_the_stack_env_it_runs_under_its_defaults_and_keeps_its_key(
    witness: Witness, witness_db: str
) -> None:
    # What the stack gives every service: DATABASE_URL and NATS_URL, nothing of the witness's own.
    del witness.env["WITNESS_DATABASE_URL"], witness.env["WITNESS_NAME"]
    witness.env["DATABASE_URL"] = witness.database_url = witness_db
    witness.name = DEFAULT_NAME
    await witness.start()
    vkey = await witness.vkey()
    assert CosignatureVerifier.from_vkey(vkey).name == DEFAULT_NAME
    assert witness.stop() == 0
    await witness.start()
    assert await witness.vkey() == vkey  # generated once, kept in its schema

    renamed = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "defendable_witness",
        "vkey",
        env=witness.env | {"WITNESS_NAME": "another/witness"},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await renamed.communicate()
    assert renamed.returncode != 0 and b"serves 'defendable.local/witness'" in err  # a key serves one name

    seed = secrets.token_bytes(32)
    configured = witness.env | {"WITNESS_SIGNING_KEY": base64.b64encode(seed).decode(), "WITNESS_NAME": "w.example"}
    shown = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "defendable_witness", "vkey", env=configured, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await shown.communicate()
    assert out.decode().strip() == CosignatureSigner.from_seed("w.example", seed).verifier().vkey
