"""Realistic OTLP payloads: spans made by the real OpenTelemetry SDK, encoded by its own OTLP
encoder, plus hand-built protobuf spans for what no SDK would send (cycles, duplicates)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

T0 = 1_718_000_000_000_000_000  # a fixed unix-nano origin, so payloads are reproducible


@contextmanager
def sdk_tracer(service: str = "support-agent") -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent-harness", "1.0.0")
    try:
        yield tracer, exporter
    finally:
        provider.shutdown()


def recorded(build: Callable[[Tracer], None], service: str = "support-agent") -> tuple[ReadableSpan, ...]:
    with sdk_tracer(service) as (tracer, exporter):
        build(tracer)
        return exporter.get_finished_spans()


def agent_run(tracer: Tracer, *, turns: int = 2, t0: int = T0, new_names: bool = True) -> None:
    """One agent invocation: per turn a chat call that asks for a tool, then the tool call;
    gen_ai semconv names, current (gen_ai.provider.name, input/output_tokens) or old
    (gen_ai.system, prompt/completion_tokens)."""
    provider_key = "gen_ai.provider.name" if new_names else "gen_ai.system"
    tokens_in = "gen_ai.usage.input_tokens" if new_names else "gen_ai.usage.prompt_tokens"
    tokens_out = "gen_ai.usage.output_tokens" if new_names else "gen_ai.usage.completion_tokens"
    t = t0
    with tracer.start_as_current_span(
        "invoke_agent support-agent",
        start_time=t,
        end_on_exit=False,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "support-agent",
            provider_key: "openai",
        },
    ) as root:
        for turn in range(turns):
            t += 1_000_000
            chat = tracer.start_span(
                "chat gpt-4o",
                start_time=t,
                attributes={
                    "gen_ai.operation.name": "chat",
                    provider_key: "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    tokens_in: 1200 + turn,
                    tokens_out: 85,
                    "gen_ai.response.finish_reasons": ("tool_calls",),
                    "gen_ai.request.temperature": 0.2,
                },
            )
            t += 400_000_000
            chat.end(end_time=t)
            t += 1_000_000
            tool = tracer.start_span(
                "execute_tool get_weather",
                start_time=t,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "get_weather",
                    "gen_ai.tool.call.id": f"call_{turn:04d}",
                    "gen_ai.tool.type": "function",
                    "gen_ai.tool.call.arguments": json.dumps({"city": "Paris", "turn": turn}),
                    "gen_ai.tool.call.result": json.dumps({"temp_c": 21.5, "sky": "clear"}),
                },
            )
            t += 30_000_000
            tool.end(end_time=t)
        root.set_status(Status(StatusCode.OK))
        root.end(end_time=t + 1_000_000)


def openinference_run(tracer: Tracer, t0: int = T0) -> None:
    """An OpenInference-instrumented chain: a CHAIN root, an LLM call and a TOOL call."""
    with tracer.start_as_current_span(
        "RunnableSequence",
        start_time=t0,
        end_on_exit=False,
        attributes={"openinference.span.kind": "CHAIN", "input.value": "What is the weather in Paris?"},
    ) as root:
        llm = tracer.start_span(
            "ChatOpenAI",
            start_time=t0 + 1_000,
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.token_count.prompt": 52,
                "llm.token_count.completion": 17,
                "llm.cost.total": 0.0000123,
                "input.value": '{"messages": [{"role": "user", "content": "weather?"}]}',
                "output.value": '{"tool_calls": [{"name": "get_weather"}]}',
            },
        )
        llm.end(end_time=t0 + 2_000)
        tool = tracer.start_span(
            "get_weather",
            start_time=t0 + 3_000,
            attributes={
                "openinference.span.kind": "TOOL",
                "tool.name": "get_weather",
                "input.value": '{"city": "Paris"}',
                "output.value": "21.5 C, clear",
            },
        )
        tool.set_status(Status(StatusCode.ERROR, "upstream timed out"))
        tool.end(end_time=t0 + 4_000)
        retriever = tracer.start_span(
            "VectorStoreRetriever", start_time=t0 + 5_000, attributes={"openinference.span.kind": "RETRIEVER"}
        )
        retriever.end(end_time=t0 + 6_000)
        root.end(end_time=t0 + 7_000)


def to_protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def to_otlp_json(spans: Sequence[ReadableSpan], *, indent: int | None = None) -> bytes:
    """OTLP/JSON as the spec (and the collector) writes it: protobuf's JSON mapping, but with
    trace and span ids as hex rather than the base64 MessageToJson writes for bytes."""
    return json.dumps(proto_to_otlp_dict(encode_spans(spans)), indent=indent).encode()


def proto_to_otlp_dict(message: ExportTraceServiceRequest) -> dict[str, Any]:
    tree = json_format.MessageToDict(message)
    hexify_ids(tree)
    return tree


def hexify_ids(tree: Any) -> None:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


# ---------------------------------------------------------------- hand-built protobuf spans

TRACE = "5b8efff798038103d269b633813fc60c"


def span_id(n: int) -> str:
    return f"{n + 1:016x}"


def any_value(value: object) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, Mapping):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=any_value(v)) for k, v in value.items())
        return out
    return AnyValue(string_value=str(value))


def raw_span(
    n: int,
    parent: int | None = None,
    *,
    trace: str = TRACE,
    start: int | None = None,
    end: int | None = None,
    name: str | None = None,
    attributes: Mapping[str, object] | None = None,
    status: int = 0,
) -> trace_pb2.Span:
    begin = T0 + n * 1000 if start is None else start
    return trace_pb2.Span(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(span_id(n)),
        parent_span_id=bytes.fromhex(span_id(parent)) if parent is not None else b"",
        name=name or f"step {n}",
        start_time_unix_nano=begin,
        end_time_unix_nano=begin + 500 if end is None else end,
        attributes=[KeyValue(key=k, value=any_value(v)) for k, v in (attributes or {}).items()],
        status=trace_pb2.Status(code=status),  # type: ignore[arg-type]  # the enum's int values
    )


def raw_request(spans: Sequence[trace_pb2.Span], service: str = "hand-built") -> ExportTraceServiceRequest:
    resource = PbResource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=list(spans))])
        ]
    )


def raw_protobuf(spans: Sequence[trace_pb2.Span]) -> bytes:
    return raw_request(spans).SerializeToString()


def raw_json(spans: Sequence[trace_pb2.Span]) -> bytes:
    return json.dumps(proto_to_otlp_dict(raw_request(spans))).encode()
