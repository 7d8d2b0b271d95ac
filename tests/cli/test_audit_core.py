"""The pure core of `defendable audit replay`: every divergence kind, from real events and receipts.

Events are built as the services build them (the referee's `check_submission`, the intake's
receipt body, the ledger's `mint.chain_batch` and signer); nothing here is a mock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

import msgspec
import pytest

from defendable_canonical.digest import GENESIS_HASH, sha256_digest
from defendable_canonical.events import (
    AnyEvent,
    Approved,
    Checked,
    LaneUnlocked,
    Minted,
    RunCreated,
    Submitted,
    derive_id,
)
from defendable_canonical.jcs import canonicalize
from defendable_canonical.model import (
    AgentProfile,
    Approval,
    EvidenceRef,
    FlightSheetRef,
    ReceiptBody,
    Signature,
    Verdict,
    receipt_schema_for,
)
from defendable_canonical.redaction import REDACTABLE_FIELDS, Disclosure, redact_body
from defendable_canonical.sample import sample_unlock_record
from defendable_canonical.tlog_api import StoredReceiptRow
from defendable_cli.audit_core import KINDS, Divergence, Replay
from defendable_ledger.keys import Signer
from defendable_ledger.mint import MintEvent, chain_batch, mint_request
from defendable_referee.check import check_submission
from defendable_referee.sheet import load_library
from defendable_stack.demo import EVIDENCE_REFS, SHEET, memo

ORG = "org_audit"
AT = "2026-03-04T05:06:07.000Z"
MINTED_AT = "2026-03-04T05:06:09.123Z"
NOW = datetime(2026, 3, 4, 6, 0, tzinfo=UTC)
LIBRARY = load_library()
LOADED = LIBRARY.get(SHEET)
PROFILE = AgentProfile(model="gpt-test", harness="pytest", tools=["calculator"], runtime="python3.11")
SIGNER = Signer.generate()
KEYS = {SIGNER.kid: SIGNER(b"\x00" * 32).public_key}
REFS = EVIDENCE_REFS


class Envelope(TypedDict):
    event_id: str
    org_id: str
    run_id: str
    occurred_at: str
    producer: str


def envelope(kind: str, run_id: str, org_id: str = ORG) -> Envelope:
    return {
        "event_id": derive_id("ev", kind, org_id, run_id),
        "org_id": org_id,
        "run_id": run_id,
        "occurred_at": AT,
        "producer": "test",
    }


@dataclass
class Run:
    created: RunCreated
    submitted: Submitted
    checked: Checked
    approved: Approved

    @property
    def events(self) -> list[AnyEvent]:
        return [self.created, self.submitted, self.checked, self.approved]


def make_run(
    run_id: str,
    *,
    sheet: FlightSheetRef | None = None,
    verdict: Verdict | None = None,
    approved_verdict: Verdict | None = None,
    **memo_kw: object,
) -> Run:
    """A run as the services record it; `verdict` overrides what the referee recorded (and the
    approval copies it, as intake does), `approved_verdict` only what the approval carries."""
    ref = sheet or LOADED.ref()
    created = RunCreated(
        **envelope("RunCreated", run_id),
        project="Harbour Point",
        lane="agent_work",
        flight_sheet=ref,
        agent_profile=PROFILE,
        assignment="Assess DSCR and LTV.",
        assignment_sha256=sha256_digest(b"Assess DSCR and LTV."),
    )
    submission = canonicalize(memo(**memo_kw))  # type: ignore[arg-type]
    submitted = Submitted(
        **envelope("Submitted", run_id),
        lane="agent_work",
        flight_sheet=ref,
        evidence=REFS,
        submission_sha256=sha256_digest(submission),
        submission=msgspec.Raw(submission),
    )
    findings, derived = check_submission(LOADED, submission, REFS)
    checked = Checked(
        **envelope("Checked", run_id),
        causation_id=submitted.event_id,
        flight_sheet=ref,
        submission_sha256=submitted.submission_sha256,
        findings=findings,
        verdict=verdict or derived,
    )
    body = ReceiptBody(
        schema=receipt_schema_for("agent_work"),
        org_id=ORG,
        run_id=run_id,
        lane="agent_work",
        project=created.project,
        flight_sheet=ref,
        agent_profile=PROFILE,
        assignment_sha256=created.assignment_sha256,
        evidence=REFS,
        submission_sha256=submitted.submission_sha256,
        findings=findings,
        verdict=approved_verdict or checked.verdict,
        approval=Approval(approver="Zoë Ångström", decided_at=AT, note="fine"),
    )
    return Run(created, submitted, checked, Approved(**envelope("Approved", run_id), receipt=body))


def mint(approvals: Sequence[MintEvent], head_seq: int = 0, head_hash: str = GENESIS_HASH) -> list[StoredReceiptRow]:
    """Receipts exactly as the ledger chains, signs and stores them."""
    requests = [mint_request(a) for a in approvals]
    minted = chain_batch(head_seq, head_hash, requests, MINTED_AT, SIGNER.sign_all, ["t"] * len(requests))
    return [
        StoredReceiptRow(
            seq=r.seq,
            receipt_hash=r.receipt_hash,
            parent_hash=r.parent_hash,
            payload=msgspec.Raw(r.payload),
            signature=msgspec.Raw(msgspec.json.encode(r.signature)),
            minted_at=MINTED_AT,
        )
        for r in minted
    ]


def minted_events(rows: Iterable[StoredReceiptRow], approvals: Sequence[MintEvent]) -> list[Minted]:
    return [
        Minted(
            **envelope("Minted", a.run_id),
            seq=row.seq,
            receipt_hash=row.receipt_hash,
            parent_hash=row.parent_hash,
            payload=row.payload,
            signature=msgspec.json.decode(row.signature, type=Signature),
            share_token="t",
        )
        for row, a in zip(rows, approvals, strict=True)
    ]


def replay(
    events: Iterable[AnyEvent],
    rows: Sequence[StoredReceiptRow],
    *,
    receipts_first: bool = True,
    lookup: dict[tuple[str, str], AnyEvent] | None = None,
    **options: object,
) -> tuple[list[Divergence], Replay]:
    core = Replay(ORG, library=LIBRARY, keys=KEYS, now=NOW, **options)  # type: ignore[arg-type]
    out: list[Divergence] = []
    if receipts_first:
        out += core.on_receipts(rows)
        out += core.receipts_exhausted()
    for event in events:
        out += core.on_event(event)
    if not receipts_first:
        out += core.on_receipts(rows)
        out += core.receipts_exhausted()
    for name, key in core.lookups():
        found = (lookup or {}).get((name, key))
        if found is not None:
            out += core.on_event(found)
    out += core.finish()
    return out, core


def kinds(divergences: Iterable[Divergence]) -> list[str]:
    return sorted(d.kind for d in divergences)


def with_payload(row: StoredReceiptRow, payload: bytes, **changes: object) -> StoredReceiptRow:
    return msgspec.structs.replace(row, payload=msgspec.Raw(payload), **changes)


# ---------------------------------------------------------------- no divergence


@pytest.mark.parametrize("receipts_first", [True, False])
def test_a_faithful_record_has_no_divergence_whichever_side_comes_first(receipts_first: bool) -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    unlock = sample_unlock_record(0, ORG)
    lifted = LaneUnlocked(**envelope("LaneUnlocked", unlock.unlock_id), record=unlock)
    approvals: list[MintEvent] = [runs[0].approved, lifted, runs[1].approved, runs[2].approved]
    rows = mint(approvals)
    events = [e for run in runs for e in run.events[:3]] + [*approvals, *minted_events(rows, approvals)]
    out, core = replay(events, rows, receipts_first=receipts_first)
    assert out == []
    s = core.summary
    assert (s.runs, s.rechecked, s.receipts, s.rebuilt) == (3, 3, 4, 4)
    assert s.divergences == dict.fromkeys(KINDS, 0)


def redacted(run: Run) -> Run:
    """The run as intake records it for an org that redacts every field (docs/redaction.md)."""
    body, disclosures = redact_body(run.approved.receipt, list(REDACTABLE_FIELDS))
    approved = msgspec.structs.replace(run.approved, receipt=body, disclosures=disclosures)
    return Run(run.created, run.submitted, run.checked, approved)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (None, None),
        ("value", "does not open its commitment"),
        ("drop", "has no disclosure"),
        ("extra", "which is not redacted"),
    ],
)
def test_a_redacted_approval_must_carry_the_disclosures_that_open_it(change: str | None, says: str | None) -> None:
    run = redacted(make_run("run_r"))
    disclosures = list(run.approved.disclosures)
    if change == "value":
        disclosures[0] = msgspec.structs.replace(disclosures[0], value="someone else")
    elif change == "drop":
        disclosures.pop()
    elif change == "extra":
        disclosures.append(Disclosure(path="evidence[9].name", value="x", salt="00" * 32))
    approved = msgspec.structs.replace(run.approved, disclosures=disclosures)
    rows = mint([approved])
    out, _ = replay([*run.events[:3], approved, *minted_events(rows, [approved])], rows)
    if says is None:
        assert out == []
    else:
        assert set(kinds(out)) == {"inconsistent"} and any(says in d.detail for d in out), out


def test_without_the_library_nothing_is_rechecked_but_receipts_are_still_rebuilt() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    core = Replay(ORG, library=None)
    out = core.on_receipts(rows) + [d for e in run.events for d in core.on_event(e)] + core.finish()
    assert out == []
    assert core.summary.rechecked == 0 and core.summary.rebuilt == 1
    assert core.summary.not_rechecked == {"re-check not asked for": 1}


# ---------------------------------------------------------------- the referee


def test_a_recorded_verdict_the_referee_no_longer_derives_is_verdict_drift() -> None:
    honest = make_run("run_a")
    rosy = msgspec.structs.replace(honest.checked.verdict, score="99.00")
    run = make_run("run_a", verdict=rosy)  # recorded, and approved, as 99.00
    rows = mint([run.approved])
    out, _ = replay(run.events, rows)
    assert kinds(out) == ["verdict_drift"]
    assert out[0].run_id == "run_a"
    assert "verdict was honey 99.00" in out[0].detail and "re-derives to honey" in out[0].detail


def test_changed_findings_are_named_by_rule() -> None:
    run = make_run("run_a")
    first = run.checked.findings[0]
    flagged = [msgspec.structs.replace(first, status="flag", tier="low"), *run.checked.findings[1:]]
    checked = msgspec.structs.replace(run.checked, findings=flagged)
    body = msgspec.structs.replace(run.approved.receipt, findings=flagged)
    approved = msgspec.structs.replace(run.approved, receipt=body)
    out, _ = replay([run.created, run.submitted, checked, approved], mint([approved]))
    assert kinds(out) == ["verdict_drift"]
    assert first.rule_id in out[0].detail and "flag/low → pass" in out[0].detail


def test_a_sheet_version_the_library_lacks_is_reported_not_raised() -> None:
    missing = FlightSheetRef(id=LOADED.sheet.id, version="9.9.9", sha256=LOADED.sha256)
    run = make_run("run_a", sheet=missing)
    out, core = replay(run.events, mint([run.approved]))
    assert kinds(out) == ["sheet_unavailable"]
    assert "9.9.9" in out[0].detail
    assert core.summary.not_rechecked == {"sheet not in the library": 1}


def test_a_sheet_the_library_holds_under_another_hash_is_unavailable() -> None:
    other = FlightSheetRef(id=LOADED.sheet.id, version=LOADED.sheet.version, sha256="sha256:" + "e" * 64)
    run = make_run("run_a", sheet=other)
    out, _ = replay(run.events, mint([run.approved]))
    assert kinds(out) == ["sheet_unavailable"]
    assert "hashes to" in out[0].detail


def test_a_run_whose_check_read_evidence_text_is_counted_not_rechecked() -> None:
    citation = LIBRARY.get("genai_evidence_citation_v1@1.0.0")
    text = EvidenceRef(id="ev_t", name="brief.txt", media_type="text/plain", size=10, sha256="sha256:" + "a" * 64)
    submitted = Submitted(
        **envelope("Submitted", "run_t"),
        lane="agent_work",
        flight_sheet=citation.ref(),
        evidence=[text],
        submission_sha256=sha256_digest(b"{}"),
        submission=msgspec.Raw(b"{}"),
    )
    core = Replay(ORG, library=LIBRARY)
    assert core.on_event(submitted) == [] and core.finish() == []
    assert core.summary.not_rechecked == {"its sheet quotes the evidence text": 1}


# ---------------------------------------------------------------- the ledger


def test_a_stored_payload_altered_in_place_is_a_hash_mismatch_and_a_broken_link() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    rows = mint([r.approved for r in runs])
    payload = msgspec.json.decode(rows[1].payload)
    payload["verdict"]["recommended_action"] = "reject"
    rows[1] = with_payload(rows[1], canonicalize(payload))
    out, _ = replay([e for r in runs for e in r.events], rows)
    assert kinds(out) == ["chain_broken", "hash_mismatch"]
    mismatch = next(d for d in out if d.kind == "hash_mismatch")
    assert (mismatch.run_id, mismatch.seq) == ("run_1", 2)
    assert "verdict" in mismatch.detail
    broken = next(d for d in out if d.kind == "chain_broken")
    assert broken.seq == 2 and "hashes to" in broken.detail


def test_a_rewritten_receipt_rehashed_and_resigned_still_fails_its_rebuild_and_its_next_link() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    rows = mint([r.approved for r in runs])
    payload = msgspec.json.decode(rows[1].payload)
    payload["approval"]["approver"] = "Mallory"
    data = canonicalize(payload)
    digest = sha256_digest(data)
    signature = SIGNER.sign_all([bytes.fromhex(digest[7:])])[0]
    rows[1] = with_payload(rows[1], data, receipt_hash=digest, signature=msgspec.Raw(msgspec.json.encode(signature)))
    out, _ = replay([e for r in runs for e in r.events], rows)
    assert kinds(out) == ["chain_broken", "hash_mismatch"]
    assert next(d for d in out if d.kind == "hash_mismatch").seq == 2
    broken = next(d for d in out if d.kind == "chain_broken")
    assert broken.seq == 3 and "parent_hash" in broken.detail


def test_a_minted_event_that_announced_another_hash_is_a_hash_mismatch() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    (minted,) = minted_events(rows, [run.approved])
    forged = msgspec.structs.replace(minted, receipt_hash="sha256:" + "f" * 64)
    for receipts_first in (True, False):
        out, _ = replay([*run.events, forged], rows, receipts_first=receipts_first)
        assert kinds(out) == ["hash_mismatch"] and "Minted" in out[0].detail


def test_a_compacted_waiting_receipt_still_compares_by_hash() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    rows = mint([r.approved for r in runs])
    payload = msgspec.json.decode(rows[0].payload)
    payload["project"] = "elsewhere"
    rows[0] = with_payload(rows[0], canonicalize(payload))
    out, _ = replay([e for r in runs for e in r.events], rows, retain_payloads=1)
    mismatch = next(d for d in out if d.kind == "hash_mismatch")
    assert mismatch.seq == 1 and "bytes not retained" in mismatch.detail


# ---------------------------------------------------------------- the chain


def test_a_gap_in_the_chain_is_a_broken_link() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    rows = mint([r.approved for r in runs])
    out, _ = replay([e for r in (runs[0], runs[2]) for e in r.events], [rows[0], rows[2]])
    assert kinds(out) == ["chain_broken"]
    assert out[0].seq == 3 and "follows seq 1" in out[0].detail and "parent_hash" in out[0].detail


def test_a_chain_that_does_not_start_at_genesis_is_broken() -> None:
    run = make_run("run_a")
    (row,) = mint([run.approved], head_seq=0, head_hash="sha256:" + "1" * 64)
    out, _ = replay(run.events, [row])
    assert kinds(out) == ["chain_broken"] and "genesis" in out[0].detail


def test_every_bad_link_is_reported_not_only_the_first() -> None:
    runs = [make_run(f"run_{i}") for i in range(4)]
    rows = mint([r.approved for r in runs])
    for i in (1, 3):
        rows[i] = with_payload(rows[i], bytes(rows[i].payload) + b" ")
    out, _ = replay([e for r in runs for e in r.events], rows)
    assert [d.seq for d in out if d.kind == "chain_broken"] == [2, 4]


def test_a_signature_that_does_not_verify_or_by_an_unpublished_key_is_bad() -> None:
    runs = [make_run(f"run_{i}") for i in range(2)]
    rows = mint([r.approved for r in runs])
    other = Signer.generate().sign_all([bytes.fromhex(rows[0].receipt_hash[7:])])[0]
    wrong = msgspec.structs.replace(other, sig=SIGNER.sign_all([b"\x01" * 32])[0].sig)
    rows[0] = msgspec.structs.replace(rows[0], signature=msgspec.Raw(msgspec.json.encode(other)))
    out, _ = replay([e for r in runs for e in r.events], rows)
    assert kinds(out) == ["bad_signature"] and "does not publish" in out[0].detail
    forged = msgspec.structs.replace(wrong, kid=SIGNER.kid, public_key=KEYS[SIGNER.kid])
    rows[0] = msgspec.structs.replace(rows[0], signature=msgspec.Raw(msgspec.json.encode(forged)))
    out, _ = replay([e for r in runs for e in r.events], rows)
    assert kinds(out) == ["bad_signature"] and "does not verify" in out[0].detail


# ---------------------------------------------------------------- the record


def test_a_receipt_without_its_approval_is_a_missing_event() -> None:
    runs = [make_run(f"run_{i}") for i in range(2)]
    rows = mint([r.approved for r in runs])
    out, _ = replay([*runs[0].events, *runs[1].events[:3]], rows)
    assert kinds(out) == ["missing_event"]
    assert (out[0].run_id, out[0].seq) == ("run_1", 2)
    assert "no approved event" in out[0].detail


def test_a_receipt_whose_run_lacks_its_checked_and_submitted_events_is_a_missing_event() -> None:
    run = make_run("run_a")
    out, _ = replay([run.created, run.approved], mint([run.approved]))
    assert kinds(out) == ["missing_event"]
    assert "Submitted, Checked" in out[0].detail


def test_a_looked_up_approval_settles_its_receipt() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    out, _ = replay(run.events[:3], rows, lookup={("approved", "run_a"): run.approved})
    assert out == []


def test_history_to_fetch_names_what_an_approval_lacks_once() -> None:
    run = make_run("run_a")
    core = Replay(ORG, library=LIBRARY)
    core.on_event(run.created)
    assert core.history_to_fetch(run.approved) == ["submitted", "checked"]
    assert core.history_to_fetch(run.approved) == []


def test_an_approval_without_a_receipt_is_unminted_unless_it_is_younger_than_the_grace() -> None:
    runs = [make_run(f"run_{i}") for i in range(2)]
    rows = mint([runs[0].approved])
    events = [e for r in runs for e in r.events]
    out, core = replay(events, rows)
    assert kinds(out) == ["unminted"] and out[0].run_id == "run_1"
    out, core = replay(events, rows, grace_s=3600.0)
    assert out == [] and core.summary.pending == 1


def test_a_minted_event_for_an_unminted_approval_is_named() -> None:
    runs = [make_run(f"run_{i}") for i in range(2)]
    rows = mint([r.approved for r in runs])
    minted = minted_events(rows, [r.approved for r in runs])
    out, _ = replay([*(e for r in runs for e in r.events), *minted], rows[:1])
    assert kinds(out) == ["unminted"] and "seq 2" in out[0].detail


def test_an_approval_that_is_not_what_the_referee_checked_is_inconsistent() -> None:
    honest = make_run("run_a")
    rosy = msgspec.structs.replace(honest.checked.verdict, score="99.99")
    run = make_run("run_a", approved_verdict=rosy)
    out, _ = replay(run.events, mint([run.approved]))
    assert kinds(out) == ["inconsistent"]
    assert out[0].seq == 1 and "verdict not as Checked recorded" in out[0].detail


def test_a_second_different_approval_of_a_minted_run_is_inconsistent() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    forged = msgspec.structs.replace(run.approved, event_id="ev_forged")
    out, _ = replay([*run.events, forged], rows)
    assert kinds(out) == ["inconsistent"] and "ev_forged" in out[0].detail
    out, _ = replay([*run.events, run.approved], rows)  # a redelivery is no divergence
    assert out == []


def test_a_submission_that_does_not_hash_to_its_digest_is_inconsistent() -> None:
    run = make_run("run_a")
    submitted = msgspec.structs.replace(run.submitted, submission_sha256="sha256:" + "0" * 63 + "1")
    out, _ = replay([run.created, submitted], [])
    assert kinds(out) == ["inconsistent"] and "hashes to" in out[0].detail


def test_events_of_other_orgs_are_not_this_replays_business() -> None:
    run = make_run("run_a")
    stranger = msgspec.structs.replace(run.created, org_id="org_other")
    core = Replay(ORG, library=LIBRARY)
    assert core.on_event(stranger) == [] and core.summary.events == 0


# ---------------------------------------------------------------- from a later seq


def test_from_a_later_seq_earlier_approvals_are_out_of_range_and_the_link_is_anchored() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    approvals = [r.approved for r in runs]
    rows = mint(approvals)
    minted = minted_events(rows, approvals)
    core = Replay(ORG, library=LIBRARY, keys=KEYS, from_seq=2)
    out = core.on_receipts(rows) + core.receipts_exhausted()
    for run, m in zip(runs, minted, strict=True):
        for event in [*run.events, m]:
            out += core.on_event(event)
    out += core.finish()
    assert out == []
    assert (core.summary.receipts, core.summary.rebuilt, core.summary.out_of_range) == (2, 2, 1)


def test_from_a_later_seq_a_broken_anchor_link_is_still_found() -> None:
    runs = [make_run(f"run_{i}") for i in range(3)]
    rows = mint([r.approved for r in runs])
    rows[2] = msgspec.structs.replace(rows[2], parent_hash="sha256:" + "2" * 64)
    core = Replay(ORG, library=None, from_seq=3)
    out = core.on_receipts(rows[1:])
    assert kinds(out) == ["chain_broken"] and out[0].seq == 3


def test_minted_wanted_only_from_a_later_seq() -> None:
    run = make_run("run_a")
    assert not Replay(ORG, library=None).minted_wanted(run.approved)
    assert Replay(ORG, library=None, from_seq=5).minted_wanted(run.approved)


def test_a_receipt_without_its_approval_is_reported_once_though_its_minted_event_is_there() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    out, _ = replay([*run.events[:3], *minted_events(rows, [run.approved])], rows)
    assert kinds(out) == ["missing_event"] and out[0].seq == 1


def test_a_minted_event_with_neither_approval_nor_receipt_is_a_missing_event() -> None:
    run = make_run("run_a")
    rows = mint([run.approved])
    out, _ = replay([*run.events[:3], *minted_events(rows, [run.approved])], [])
    assert kinds(out) == ["missing_event"] and "neither its approval nor its receipt" in out[0].detail


def test_an_undecodable_event_is_inconsistent() -> None:
    core = Replay(ORG, library=None)
    found = core.undecodable(f"run.approved.{ORG}.run_x", 42, "not JSON")
    assert (found.kind, found.run_id) == ("inconsistent", "run_x") and "RUNS seq 42" in found.detail
    assert core.finish() == [] and core.summary.divergences["inconsistent"] == 1
