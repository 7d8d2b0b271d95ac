"""The Python client an agent harness uses (defendable.client, defendable.otel), on the real stack.

The README's example is run here as a newcomer would run it, so it cannot rot.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from defendable.client import AgentProfile, ApiError, Client
from defendable.otel import RUN_ATTRIBUTE, DefendableSpanExporter
from defendable_canonical.digest import sha256_digest
from defendable_gateway.admin import CreatedOrg

from .conftest import Services, key

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples/agent_harness.py"
SHEET = "cre_memo_noi_cap_rate_v1@1.1.0"
PROFILE = AgentProfile(model="gpt-test", harness="pytest", tools=["read_rent_roll"], runtime="python3.11")


def test_the_readme_shows_the_example_exactly_as_it_is_run() -> None:
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```" in readme


async def test_the_readme_example_runs_a_traced_run_to_a_minted_receipt(services: Services, org: CreatedOrg) -> None:
    env = {
        **os.environ,
        "DEFENDABLE_URL": services.base_url,
        "DEFENDABLE_SUBMITTER_KEY": key(org, "submitter"),
        "DEFENDABLE_APPROVER_KEY": key(org, "approver"),
    }
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = {
        line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in done.stdout.splitlines() if line[:1] != " "
    }
    assert lines["verdict"].startswith("honey 100.00%"), done.stdout
    assert lines["trail"].startswith("3 steps in 1 OTLP export"), done.stdout
    assert "pass trail" in done.stdout  # the required read_rent_roll call was found in the streamed spans
    run_id = lines["run"]
    with Client(services.base_url, key(org, "submitter")) as dfd:
        run = dfd.run(run_id)
        assert run["stage"] in ("minted", "rendered")
        assert run["receipt"]["receipt_hash"] == lines["receipt"]
        assert run["receipt"]["payload"]["execution_trail"]["bundle_sha256"] == lines["bundle"]
        trail = dfd.trail(run_id)
        assert [s["tool_name"] for s in trail["steps"] if s["kind"] == "tool"] == ["read_rent_roll"]


def test_the_blocking_client_raises_api_errors_with_the_problem_and_refuses_use_after_close(
    services: Services, org: CreatedOrg
) -> None:
    dfd = Client(services.base_url, key(org, "submitter"))
    with pytest.raises(ApiError) as unknown:
        dfd.run("run_" + "0" * 32)
    assert unknown.value.status == 404 and unknown.value.body["status"] == 404
    with pytest.raises(ApiError) as bad_sheet:
        dfd.create_run("p", "no_such_sheet@9.9.9", PROFILE)
    assert bad_sheet.value.status == 422 and "no_such_sheet" in str(bad_sheet.value)
    run_id = dfd.create_run("p", SHEET, PROFILE)
    with pytest.raises(ApiError) as usage:
        dfd.submit(run_id, {"x": 1}, usage={"input_tokens": -1})
    assert usage.value.status == 400 and "Defendable-Usage" in str(usage.value)
    with pytest.raises(ValueError, match="stages must be"):
        dfd.wait_for(run_id, ("done",))
    dfd.close()
    dfd.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        dfd.run(run_id)
    approver = Client(services.base_url, key(org, "approver"))
    with approver, pytest.raises(ApiError) as wrong_role:
        approver.create_run("p", SHEET, PROFILE)
    assert wrong_role.value.status == 403


def test_the_blocking_client_is_safe_from_many_threads(services: Services, org: CreatedOrg) -> None:
    with Client(services.base_url, key(org, "submitter")) as dfd:
        run_id = dfd.create_run("threads", SHEET, PROFILE)
        names = [f"file-{i}.txt" for i in range(16)]
        accepted: dict[str, str] = {}

        def attach(name: str) -> None:
            accepted[name] = dfd.add_file(run_id, name, name.encode()).sha256

        threads = [threading.Thread(target=attach, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert accepted == {name: sha256_digest(name.encode()) for name in names}
        run = dfd.wait_for(run_id, ("created",))
        assert run["stage"] == "created"


def test_trace_files_and_exporters_route_spans_to_their_runs(
    services: Services, org: CreatedOrg, tmp_path: Path
) -> None:
    with Client(services.base_url, key(org, "submitter")) as dfd:
        first, second = dfd.create_run("routes", SHEET, PROFILE), dfd.create_run("routes", SHEET, PROFILE)
        exporter = DefendableSpanExporter(dfd)  # one process-wide provider, many runs: the span names its run
        provider = TracerProvider(resource=Resource.create({"service.name": "router"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        for run_id in (first, second, first):
            with tracer.start_as_current_span("execute_tool read_rent_roll", attributes={RUN_ATTRIBUTE: run_id}):
                pass
        with tracer.start_as_current_span("no run named"):
            pass
        provider.shutdown()
        assert exporter.unrouted == 1 and [e.steps for e in exporter.exports] == [1, 1, 1]

        # An OTLP JSON Lines file, as the OpenTelemetry Collector's file exporter writes one; gzip on the way.
        path = tmp_path / "spans.jsonl"
        path.write_text("".join(otlp_json_line(i) for i in range(2000)))  # ~370 KB: over the gzip threshold
        sent = dfd.send_trace_file(second, path)
        assert (sent.steps, sent.warning) == (2000, ""), sent
        with pytest.raises(ValueError, match=r"\.pb or \.binpb, \.json, \.jsonl or \.ndjson"):
            dfd.send_trace_file(second, tmp_path / "spans.txt")

        evidence = {run_id: dfd.wait_for(run_id, ("created",))["evidence"] for run_id in (first, second)}
        assert len(evidence[first]) == 2 and len(evidence[second]) == 2
        assert all('profile="otlp-traces"' in e["media_type"] for items in evidence.values() for e in items)
        assert path.stat().st_size in {e["size"] for e in evidence[second]}  # the exact bytes, not the gzip


def otlp_json_line(i: int) -> str:
    ids = f'"traceId":"{"ab" * 16}","spanId":"{i + 1:016x}"'
    span = f'{{{ids},"name":"retrieve","startTimeUnixNano":"1","endTimeUnixNano":"2"}}'
    return f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}\n'
