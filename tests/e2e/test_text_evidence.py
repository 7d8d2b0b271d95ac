"""Citation and extraction sheets through the running stack: the referee reads the evidence's text from S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from defendable.client import AsyncClient

FIXTURES = Path(__file__).parents[1] / "referee/fixtures"
PROFILE = {"model": "gpt-test", "harness": "pytest", "tools": [], "runtime": "python3.11"}


def by_name(document: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The fixtures cite evidence ids the unit tests chose; here the gateway mints ids, so cite by name."""
    text = json.dumps(document)
    for old, new in names.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    loaded: dict[str, Any] = json.loads(text)
    return loaded


async def checked(client: AsyncClient, sheet: str, files: dict[str, bytes], document: dict[str, Any]) -> dict[str, Any]:
    run_id = await client.create_run("text evidence", sheet, PROFILE, assignment="Cite your sources.")
    for name, data in files.items():
        await client.add_file(run_id, name, data)
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, document)
    return await client.wait_for(run_id, ("checked",))


async def test_quotes_are_found_in_the_attached_text_and_a_binary_citation_stays_open(submitter: AsyncClient) -> None:
    brief = (FIXTURES / "evidence/policy_brief.txt").read_bytes()
    document = by_name(json.loads((FIXTURES / "citation_pass.json").read_text()), {"ev_brief": "policy_brief.txt"})
    run = await checked(submitter, "genai_evidence_citation_v1@1.0.0", {"policy_brief.txt": brief}, document)
    assert run["verdict"]["severity"] == "honey", run["verdict"]
    claims = [f for f in run["findings"] if f["kind"] == "citation"]
    assert len(claims) == 4 and all(f["status"] == "pass" for f in claims)
    assert any("found exactly" in f["message"] for f in claims)

    document["claims"][0]["quote"] = "Seventy percent of staff worked remotely"  # not what the brief says
    document["claims"][1]["evidence_reference"] = "photo.png"
    files = {"policy_brief.txt": brief, "photo.png": b"\x89PNG\r\n\x1a\n" + bytes(64)}
    run = await checked(submitter, "genai_evidence_citation_v1@1.0.0", files, document)
    statuses = [f["status"] for f in run["findings"] if f["kind"] == "citation"]
    assert statuses == ["flag", "open", "pass", "pass"], run["findings"]
    assert run["verdict"]["severity"] == "propolis"


async def test_extracted_numbers_parse_out_of_quotes_found_in_the_report(submitter: AsyncClient) -> None:
    report = (FIXTURES / "evidence/annual_report.txt").read_bytes()
    document = by_name(json.loads((FIXTURES / "extraction_pass.json").read_text()), {"ev_report": "annual_report.txt"})
    run = await checked(submitter, "evx_numerical_fact_extraction_v1@1.0.0", {"annual_report.txt": report}, document)
    facts = [f for f in run["findings"] if f["kind"] == "extraction"]
    assert facts and all(f["status"] == "pass" for f in facts), facts
    assert run["verdict"]["recommended_action"] == "approve"
