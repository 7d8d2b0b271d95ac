"""A PDF for every kind of receipt on the chain: deterministic, the canonical JSON inside, the key facts readable."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import zlib
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from pypdf import PdfReader

from defendable_canonical.incident import INCIDENT_KINDS, HighFlagsTrigger, IncidentKind
from defendable_canonical.jcs import CanonicalError
from defendable_canonical.receipt import AnyReceiptBody, build_any_payload, payload_bytes, receipt_hash
from defendable_canonical.sample import (
    sample_body,
    sample_cook_body,
    sample_incident_body,
    sample_trail,
    sample_unlock_record,
)
from defendable_render import cook_layout
from defendable_render.pdf import attachment_name, render_receipt_pdf
from defendable_render.perf import SAMPLE_SIGNATURE

PARENT = "sha256:" + "ab" * 32
KINDS = ("eval", "trail", "cook", "incident", "unlock")


def receipt(body: AnyReceiptBody, seq: int = 42) -> tuple[bytes, str]:
    data = payload_bytes(build_any_payload(body, seq, PARENT, "2026-01-02T03:04:06.000Z"))
    return data, receipt_hash(data)


def pdf_text(pdf: bytes) -> str:
    """The text a reader's copy-paste gets (pypdf, through the ToUnicode maps)."""
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def pages(pdf: bytes) -> int:
    return len(PdfReader(io.BytesIO(pdf)).pages)


def embedded(pdf: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(rb"\d+ 0 obj\s*(<<.*?)stream\r?\n", pdf, re.S):
        head = match.group(1)
        length = re.search(rb"/Length (\d+)", head)
        assert length is not None
        if b"/Type /EmbeddedFile" in head:
            found.append(zlib.decompress(pdf[match.end() : match.end() + int(length.group(1))]))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_to_identical_bytes_with_reused_or_fresh_fonts(kind: str) -> None:
    data, digest = receipt(sample_body(kind, 3, "org_render"))
    pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert pdf.startswith(b"%PDF")
    assert pdf == render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert pdf == render_receipt_pdf(data, digest, SAMPLE_SIGNATURE, reuse_fonts=False)
    assert embedded(pdf) == [data]
    assert f"({attachment_name(digest)})".encode() in pdf


def test_every_kind_renders_to_the_same_bytes_in_a_fresh_process(tmp_path: Path) -> None:
    script = (
        "import hashlib, sys\n"
        "from defendable_canonical.receipt import build_any_payload, payload_bytes, receipt_hash\n"
        "from defendable_canonical.sample import sample_body\n"
        "from defendable_render.pdf import render_receipt_pdf\n"
        "from defendable_render.perf import SAMPLE_SIGNATURE\n"
        f"for kind in {KINDS!r}:\n"
        f"    data = payload_bytes(build_any_payload(sample_body(kind, 3, 'org_render'), 42, {PARENT!r},"
        " '2026-01-02T03:04:06.000Z'))\n"
        "    print(hashlib.sha256(render_receipt_pdf(data, receipt_hash(data), SAMPLE_SIGNATURE)).hexdigest())\n"
    )
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, cwd=tmp_path, text=True)
    here = [
        hashlib.sha256(render_receipt_pdf(*receipt(sample_body(kind, 3, "org_render")), SAMPLE_SIGNATURE)).hexdigest()
        for kind in KINDS
    ]
    assert there.stdout.split() == here


def test_the_cook_pdf_shows_the_models_the_data_the_eval_set_and_the_lift() -> None:
    body = sample_cook_body(1, "org_render", items=12)
    data, digest = receipt(body)
    text = pdf_text(render_receipt_pdf(data, digest, SAMPLE_SIGNATURE))
    lift = body.lift
    for expected in (
        "Defendable cook receipt",
        "defendablecloud.cook-receipt/v1",
        digest,
        PARENT,
        body.run_id,
        body.base_model,
        body.cooked_model,
        f"{body.dataset.name}@{body.dataset.version}",
        body.dataset.sha256,
        body.eval_set.name,
        body.eval_set.sha256,
        f"{body.flight_sheet.id}@{body.flight_sheet.version}",
        f"LIFT +{lift.mean_difference}",
        f"+{lift.lower} to +{lift.upper} (95 %)",
        f"the lower bound +{lift.lower} clears the noise floor {lift.noise_floor}",
        "10,000",
        lift.method,
        lift.seed,
        f"base {body.pre.mean_score} → cooked {body.post.mean_score}",
        body.approval.approver,
        "ledger-2025-01",
    ):
        assert expected in text, expected
    for pre, post in zip(body.pre.items, body.post.items, strict=True):
        assert pre.run_id in text and post.run_id in text and pre.item_id in text
    assert "more items in the attached JSON" not in text


def test_a_long_eval_set_shows_a_summary_its_lowest_and_first_items_and_where_the_rest_are() -> None:
    body = sample_cook_body(2, "org_render", items=200)
    data, digest = receipt(body)
    pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    text = " ".join(pdf_text(pdf).split())
    assert "200 items, base → cooked; a summary and 40 of them" in text
    assert "Every item's scores, 200 a side, are in the receipt JSON attached to this PDF (the hashed record)" in text
    deltas = [
        Decimal(post.score) - Decimal(pre.score) for pre, post in zip(body.pre.items, body.post.items, strict=True)
    ]
    higher, lower = sum(d > 0 for d in deltas), sum(d < 0 for d in deltas)
    assert f"Cooked higher on {higher} items ({Decimal(higher) / 2:.1f} %)" in text
    assert f"Cooked lower on {lower} items ({Decimal(lower) / 2:.1f} %)" in text
    lowest = sorted(range(200), key=lambda i: (deltas[i], i))[: cook_layout.LOWEST_ROWS]
    shown = {*lowest, *range(cook_layout.FIRST_ROWS)}
    for i, pre in enumerate(body.pre.items):
        assert (pre.run_id in text) is (i in shown), i
    assert pages(pdf) <= 4
    assert embedded(pdf) == [data]  # every item is still in the receipt itself


def test_a_10000_item_cook_is_three_pages() -> None:
    body = sample_cook_body(3, "org_render", items=10_000)
    data, digest = receipt(body)
    pdf = render_receipt_pdf(data, digest, SAMPLE_SIGNATURE)
    assert pages(pdf) == 3
    text = " ".join(pdf_text(pdf).split())
    assert "10,000 items, base → cooked; a summary and 40 of them" in text
    assert "Every item's scores, 10,000 a side, are in the receipt JSON" in text
    assert embedded(pdf) == [data]


@pytest.mark.parametrize("trigger", INCIDENT_KINDS)
def test_the_incident_pdf_shows_the_trigger_the_response_and_the_clause(trigger: IncidentKind) -> None:
    body = sample_incident_body(1, "org_render", kind=trigger, runs=3)
    data, digest = receipt(body)
    text = pdf_text(render_receipt_pdf(data, digest, SAMPLE_SIGNATURE))
    clause = body.policy.clause
    for expected in (
        "Defendable incident receipt",
        "defendablecloud.incident-receipt/v1",
        digest,
        body.incident_id,
        trigger.replace("_", " ").upper(),
        body.agent_profile.model,
        body.profile_key,
        body.opened_at,
        f"{body.policy.id}@{body.policy.version}",
        body.policy.sha256,
        body.policy.clause_id,
        str(clause["description"])[:40],
        f"response = {clause['response']}",
        body.acknowledgement.approver,
        body.acknowledgement.note,
    ):
        assert expected in text, expected
    expected_by_kind = {
        "high_flags": ["3 with at least one high flag", "24 h (86,400 s)", "run_"],
        "spend_cap": ["50,000,213 of at most 50,000,000", "512.40 USD of at most 500.00 USD", "tokens, cost"],
        "dark_agent": ["15 min (900 s)", "2026-01-01T01:00:00.000Z", "2026-01-01T01:15:00.000Z"],
    }
    for expected in expected_by_kind[trigger]:
        assert expected in text, expected
    assert ("lane locked (lock_lane)" if body.response == "lock_lane" else "alert raised (alert)") in text


def test_a_trigger_with_many_runs_lists_a_bounded_number_of_them() -> None:
    body = sample_incident_body(4, "org_render", runs=100)
    data, digest = receipt(body)
    trigger = body.trigger
    assert isinstance(trigger, HighFlagsTrigger)
    text = pdf_text(render_receipt_pdf(data, digest))
    compact = re.sub(r"\s+", "", text)
    assert all(run_id in compact for run_id in trigger.run_ids[:20])
    assert trigger.run_ids[20] not in compact
    assert "+ 80 more in the attached JSON" in text


def test_the_unlock_pdf_shows_the_lock_lifted_who_lifted_it_and_the_clause() -> None:
    body = sample_unlock_record(1, "org_render")
    data, digest = receipt(body)
    text = pdf_text(render_receipt_pdf(data, digest, SAMPLE_SIGNATURE))
    for expected in (
        "Defendable unlock receipt",
        "defendablecloud.unlock-receipt/v1",
        "UNLOCKED",
        digest,
        body.unlock_id,
        body.incident_id,
        "lead@example.com",
        "retrained on the flagged memos",
        "2026-01-01T02:00:00.000Z",
        "gov.high_flags.agent_work",
        "Three verdicts with a high flag",
    ):
        assert expected in text, expected


def test_an_eval_receipt_with_a_trail_gets_an_execution_trail_section_and_one_without_does_not() -> None:
    trail = sample_trail()
    with_trail = pdf_text(render_receipt_pdf(*receipt(sample_body("trail", 1))))
    for expected in (
        "Execution trail",
        trail.bundle_sha256,
        "42: agent 1 · tool 21 · llm 14 · retrieval 6 · other 0",
        "183,204 in · 12,377 out",
        "1.284500",
        "2 steps ended in error",
        "missing_parent, time_inverted",
        "2026-01-01T00:00:00.000Z → 2026-01-01T00:01:12.345Z (72.345 s)",
        *trail.trace_ids,
    ):
        assert expected in with_trail, expected
    assert "Execution trail" not in pdf_text(render_receipt_pdf(*receipt(sample_body("eval", 1))))


def test_a_payload_whose_schema_names_no_kind_is_refused() -> None:
    data, _ = receipt(sample_body("cook", 1))
    value = msgspec.json.decode(data)
    value["schema"] = "defendablecloud.pizza/v1"
    with pytest.raises(CanonicalError, match=r"^unknown receipt schema 'defendablecloud\.pizza/v1'$"):
        render_receipt_pdf(msgspec.json.encode(value), "sha256:" + "0" * 64)
