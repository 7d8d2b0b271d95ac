"""OTLP ingest: spans/s decoded, normalised into steps and hashed (step hashes + bundle), one core.

The payload is what a real agent's SDK sends: spans made by the OpenTelemetry SDK for an
agent run (invoke_agent → chat → execute_tool …, current gen_ai names, input/output messages
and tool arguments/results as JSON text), encoded by the SDK's own OTLP encoder into
requests of ~2,000 spans, then written as OTLP/JSON the way the collector does (hex ids).
Each figure is the median of several repeats, by wall clock and by this process's CPU time
(the CPU figure is what a noisy shared machine cannot inflate). Single-threaded throughout.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from defendable_canonical.otlp_steps import ingest

TARGET_SPANS_PER_S = 20_000
T0 = 1_718_000_000_000_000_000


def agent_spans(turns: int) -> tuple[ReadableSpan, ...]:
    """One agent invocation of `turns` (chat, tool) pairs: 2·turns + 1 spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent-harness", "1.0.0")
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Summarise the lease " * 8}]}])
    t = T0
    root = tracer.start_span(
        "invoke_agent bench-agent",
        start_time=t,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench-agent"},
    )
    for turn in range(turns):
        t += 1_000_000
        chat = tracer.start_span(
            "chat gpt-4o",
            start_time=t,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.response.id": f"chatcmpl-{turn:012d}",
                "gen_ai.response.finish_reasons": ("tool_calls",),
                "gen_ai.request.temperature": 0.2,
                "gen_ai.usage.input_tokens": 1200 + turn,
                "gen_ai.usage.output_tokens": 85,
                "gen_ai.input.messages": messages,
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "tool_call": f"call_{turn}"}]),
            },
        )
        t += 400_000_000
        chat.end(end_time=t)
        tool = tracer.start_span(
            "execute_tool read_file",
            start_time=t + 1_000,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "read_file",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.call.id": f"call_{turn}",
                "gen_ai.tool.call.arguments": json.dumps({"path": f"/data/lease_{turn}.txt"}),
                "gen_ai.tool.call.result": json.dumps({"bytes": 2048, "text": "clause " * 30}),
            },
        )
        t += 30_000_000
        tool.set_status(Status(StatusCode.OK))
        tool.end(end_time=t)
    root.end(end_time=t + 1_000_000)
    provider.shutdown()
    return exporter.get_finished_spans()


def otlp_json(spans: tuple[ReadableSpan, ...]) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping with hex trace/span ids, as the collector writes it."""
    tree = json_format.MessageToDict(encode_spans(spans))
    for resource in tree["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(tree).encode()


def _rate(body: bytes, content_type: str, spans: int, repeats: int) -> dict[str, float]:
    walls, cpus = [], []
    ingest(body, content_type)  # warm: imports, decoder plans
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        trail = ingest(body, content_type)
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
        assert len(trail.steps) == spans
    return {
        "spans_per_s": round(spans / statistics.median(walls)),
        "spans_per_cpu_s": round(spans / statistics.median(cpus)),
        "us_per_span": round(1e6 * statistics.median(walls) / spans, 2),
    }


def otlp(quick: bool) -> dict[str, Any]:
    spans = agent_spans(1000)  # 2,001 spans per request
    proto = encode_spans(spans).SerializeToString()
    text = otlp_json(spans)
    repeats = 5 if quick else 15
    figures: dict[str, Any] = {
        "spans_per_request": len(spans),
        "request_bytes": {"protobuf": len(proto), "json": len(text)},
        "protobuf": _rate(proto, "application/x-protobuf", len(spans), repeats),
        "json": _rate(text, "application/json", len(spans), repeats),
        "target_spans_per_s": TARGET_SPANS_PER_S,
    }
    figures["reached"] = min(figures["protobuf"]["spans_per_s"], figures["json"]["spans_per_s"])
    return figures
