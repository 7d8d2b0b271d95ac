"""Execution trails through the stack: OTLP exports in, a required tool call checked, the bundle on the receipt."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from defendable.client import AsyncClient
from defendable_canonical.digest import sha256_digest
from defendable_canonical.trail import bundle_hash

from .conftest import Services, key, wait_ready

FIXTURES = Path(__file__).parents[1] / "referee/fixtures"
SHEET = "cre_memo_noi_cap_rate_v1@1.1.0"
PROFILE = {"model": "gpt-test", "harness": "pytest", "tools": ["read_rent_roll"], "runtime": "python3.11"}
FILES = {"t12_operating_statement.pdf": b"%PDF-1.4 T-12", "appraisal.pdf": b"%PDF-1.4 appraisal"}
T0 = 1_718_000_000_000_000_000


def agent_spans(tool: str) -> tuple[ReadableSpan, ...]:
    """An agent that reads the rent roll with `tool`, then asks a model to write the memo."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "memo-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("harness")
    with tracer.start_as_current_span(
        "invoke_agent memo-agent",
        start_time=T0,
        end_on_exit=False,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    ) as agent:
        with tracer.start_as_current_span(
            f"execute_tool {tool}",
            start_time=T0 + 1_000,
            end_on_exit=False,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": tool,
                "gen_ai.tool.call.arguments": '{"property": "Harbour Point"}',
                "gen_ai.tool.call.result": '{"gross_potential_rent": 1300000}',
            },
        ) as call:
            call.end(end_time=T0 + 2_000)
        with tracer.start_as_current_span(
            "chat gpt-test",
            start_time=T0 + 3_000,
            end_on_exit=False,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-test",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 800,
            },
        ) as chat:
            chat.end(end_time=T0 + 9_000)
        agent.end(end_time=T0 + 10_000)
    provider.shutdown()
    return exporter.get_finished_spans()


def noi_memo() -> dict[str, Any]:
    text = (FIXTURES / "memo_noi_pass.json").read_text()
    text = text.replace('"ev_t12"', '"t12_operating_statement.pdf"').replace('"ev_appraisal"', '"appraisal.pdf"')
    memo: dict[str, Any] = json.loads(text)
    return memo


async def traces(client: AsyncClient, run_id: str, body: bytes, media_type: str, **headers: str) -> Any:
    return await client.request(
        "POST",
        "/v1/traces",
        data=body,
        headers={"content-type": media_type, "x-defendable-run": run_id, **headers},
    )


async def run_with_trail(client: AsyncClient, tool: str | None) -> str:
    run_id = await client.create_run("trails", SHEET, PROFILE, assignment="NOI and cap rate, rent roll by tool.")
    for name, data in FILES.items():
        await client.add_file(run_id, name, data)
    if tool is not None:
        body = encode_spans(agent_spans(tool)).SerializeToString()
        reply = await traces(client, run_id, body, "application/protobuf")  # the alias: answered in protobuf too
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/protobuf"
        ExportTraceServiceResponse.FromString(reply.content)  # an OTLP answer an SDK exporter can read
        assert reply.headers["x-defendable-steps"] == "3"
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, noi_memo())
    return run_id


async def test_a_trail_with_the_required_tool_call_passes_and_its_bundle_hash_is_on_the_receipt(
    submitter: AsyncClient, approver: AsyncClient
) -> None:
    run_id = await run_with_trail(submitter, "read_rent_roll")
    run = await submitter.wait_for(run_id, ("checked",))
    trail_findings = [f for f in run["findings"] if f["kind"] == "trail"]
    assert [f["status"] for f in trail_findings] == ["pass", "pass"], trail_findings
    assert "read_rent_roll: 1 successful call (step 2)" in trail_findings[1]["message"]
    assert run["verdict"]["severity"] == "honey"
    summary = run["execution_trail"]
    assert (summary["steps"], summary["kinds"]["tool"], summary["input_tokens"]) == (3, 1, 1200)

    # One step, verified on its own from what the API serves.
    step = (await submitter.get(f"/runs/{run_id}/trail/steps/2")).json()
    raw = json.dumps(step["step"], separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode()
    assert sha256_digest(raw) == step["step_hash"] == step["step_hashes"][1]
    assert bundle_hash(step["step_hashes"]) == step["bundle_sha256"] == summary["bundle_sha256"]
    assert step["step"]["tool_name"] == "read_rent_roll"
    arguments = b'{"property": "Harbour Point"}'
    assert step["step"]["arguments_sha256"] == "sha256:" + hashlib.sha256(arguments).hexdigest()
    page = (await submitter.get(f"/runs/{run_id}/trail?limit=2")).json()
    assert len(page["steps"]) == 2 and page["next_offset"] == 2 and len(page["step_hashes"]) == 3

    otel = (await submitter.get(f"/runs/{run_id}/otel")).json()
    records = otel["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert {r["eventName"] for r in records} == {"gen_ai.evaluation.result"}
    assert records[0]["traceId"] == summary["trace_ids"][0]
    created_ns = datetime.fromisoformat(run["created_at"]).timestamp() * 1e9
    assert created_ns - 1e6 < int(records[0]["timeUnixNano"]) <= time.time() * 1e9  # when the verdict was made

    await approver.approve(run_id, "trail checked")
    await submitter.wait_for(run_id, ("minted",))
    status, receipt = await submitter.receipt(run_id)
    assert status == 200
    assert receipt["payload"]["execution_trail"]["bundle_sha256"] == summary["bundle_sha256"]
    assert any(e["media_type"] == 'application/protobuf; profile="otlp-traces"' for e in receipt["payload"]["evidence"])


async def test_a_trail_without_the_required_tool_call_or_no_trail_is_a_high_flag(submitter: AsyncClient) -> None:
    wrong, none = await asyncio.gather(run_with_trail(submitter, "guess_rent"), run_with_trail(submitter, None))
    for run_id, expected in ((wrong, "0 successful calls, 1 needed"), (none, "no trail shows it was called")):
        run = await submitter.wait_for(run_id, ("checked",))
        tool = [f for f in run["findings"] if f["kind"] == "trail"][-1]
        assert (tool["status"], tool["tier"]) == ("flag", "high") and expected in tool["message"], tool
        assert run["verdict"]["severity"] == "propolis"


async def test_bad_trace_exports_are_refused_with_problems_and_nothing_is_attached(
    submitter: AsyncClient, services: Services, org: Any
) -> None:
    run_id = await submitter.create_run("trails", SHEET, PROFILE, assignment="bad exports")
    await submitter.wait_for(run_id, ("created",))
    cases = [
        (b"\xff\xff\xff", "application/x-protobuf", {}, 400),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}', "application/json", {}, 400),
        (b"hello", "text/plain", {}, 415),
        (b"{}", "application/json", {"x-defendable-run": ""}, 400),
        (b"{}", "application/json", {"x-defendable-run": "run_" + "0" * 32}, 404),
        (b"\x1f\x8b\x08\x00garbage", "application/json", {"content-encoding": "gzip"}, 400),
    ]
    for body, media_type, headers, status in cases:
        reply = await traces(submitter, run_id, body, media_type, **headers)
        assert reply.status_code == status, (body[:20], reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json")
    form = aiohttp.FormData()
    form.add_field(
        "file", b"\x0a\x00", filename="spans.pb", content_type='application/x-protobuf; profile="otlp-traces"'
    )
    smuggled = await submitter.request("POST", f"/runs/{run_id}/evidence", data=form)  # around /v1/traces' checks
    assert smuggled.status_code == 400 and "POST /v1/traces" in smuggled.json()["detail"], smuggled.text
    run = await submitter.run(run_id)
    assert run["evidence"] == []
    for key_text, status in (("not-a-key", 401), (key(org, "approver"), 403)):  # unknown key; wrong role
        other = AsyncClient(services.base_url, key_text)
        try:
            assert (await traces(other, run_id, b"{}", "application/json")).status_code == status
        finally:
            await other.aclose()


async def test_a_50_mb_export_is_taken_and_a_trail_with_a_cycle_is_checked_not_refused(
    submitter: AsyncClient, services: Services
) -> None:
    # The suite's gateway caps evidence at 2 MiB (cheap 413 tests); this one allows 100 MiB.
    await asyncio.to_thread(services.stop, "gateway")
    services.start("gateway", MAX_EVIDENCE_BYTES=str(100 * 1024 * 1024))
    try:
        await asyncio.to_thread(wait_ready, services.base_url, services.procs, services.logs)
        await _fifty_megabytes(submitter)
    finally:
        await asyncio.to_thread(services.stop, "gateway")
        services.start("gateway")
        await asyncio.to_thread(wait_ready, services.base_url, services.procs, services.logs)


async def _fifty_megabytes(submitter: AsyncClient) -> None:
    run_id = await submitter.create_run("trails", SHEET, PROFILE, assignment="big export")
    big = "x" * (2_500_000)
    spans = [
        {
            "traceId": "ab" * 16,
            "spanId": f"{i + 1:016x}",
            "parentSpanId": f"{(i + 1) % 20 + 1:016x}",  # every span's parent is the next: one big cycle
            "name": f"execute_tool read_rent_roll {i}",
            "startTimeUnixNano": str(T0 + i),
            "endTimeUnixNano": str(T0 + i + 1),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": "read_rent_roll"}},
                {"key": "gen_ai.tool.call.result", "value": {"stringValue": big}},
            ],
        }
        for i in range(20)
    ]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    assert len(body) > 50_000_000
    reply = await traces(submitter, run_id, body, "application/json")
    assert reply.status_code == 200, reply.text
    assert "cycle" in reply.json()["partialSuccess"]["errorMessage"]
    await submitter.wait_for(run_id, ("created",))
    for name, data in FILES.items():
        await submitter.add_file(run_id, name, data)
    await submitter.submit(run_id, noi_memo())
    run = await submitter.wait_for(run_id, ("checked",), timeout=120)
    integrity, tool = [f for f in run["findings"] if f["kind"] == "trail"]
    assert (integrity["status"], integrity["tier"]) == ("flag", "mid") and "cycle" in integrity["message"]
    assert tool["status"] == "pass" and "20 successful calls" in tool["message"]
