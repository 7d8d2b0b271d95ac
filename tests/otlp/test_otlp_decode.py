"""OTLP traces as evidence of execution: what the real SDK sends is read right in every
encoding, and hostile payloads (cycles, missing parents, duplicates, huge or deep values,
50 MB bodies, malformed bytes) are either taken with the problem named or refused with the
HTTP status the route should answer — never a hang, a crash or unbounded memory."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest
import rfc8785
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from defendable_canonical.otlp import (
    MAX_ATTRIBUTES,
    MAX_BODY_BYTES,
    MAX_SPANS,
    OtlpRejected,
    decode_traces,
    inflate,
    media_type_for_filename,
)
from defendable_canonical.otlp_steps import MAX_TEXT, NormalisedTrail, ingest
from defendable_canonical.trail import bundle_hash, step_hash, verify_step

from .spans import (
    TRACE,
    agent_run,
    openinference_run,
    raw_json,
    raw_protobuf,
    raw_request,
    raw_span,
    recorded,
    span_id,
    to_otlp_json,
    to_protobuf,
)

PB = "application/x-protobuf"
JSON = "application/json"
JSONL = "application/x-ndjson"


def both(spans: list[Any]) -> tuple[NormalisedTrail, NormalisedTrail]:
    """The same hand-built spans through protobuf and through OTLP/JSON."""
    return ingest(raw_protobuf(spans), PB), ingest(raw_json(spans), JSON)


def codes(trail: NormalisedTrail) -> list[str]:
    return sorted(p.code for p in trail.problems)


def sha(text: str | bytes) -> str:
    return "sha256:" + hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def attribute(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def rejected(
    body: bytes, content_type: str, *, max_body_bytes: int = MAX_BODY_BYTES, max_spans: int = MAX_SPANS
) -> OtlpRejected:
    with pytest.raises(OtlpRejected) as caught:
        ingest(body, content_type, max_body_bytes=max_body_bytes, max_spans=max_spans)
    return caught.value


# ---------------------------------------------------------------- real SDK payloads


def test_an_sdk_agent_run_with_current_gen_ai_names_becomes_typed_steps() -> None:
    spans = recorded(lambda t: agent_run(t, turns=2))
    trail = ingest(to_protobuf(spans), PB)
    assert [s.kind for s in trail.steps] == ["agent", "llm", "tool", "llm", "tool"]
    assert [s.seq for s in trail.steps] == [1, 2, 3, 4, 5]
    root, chat, tool = trail.steps[0], trail.steps[1], trail.steps[2]
    assert root.agent_name == "support-agent" and root.status == "ok" and root.parent_span_id is None
    assert root.service == "support-agent"
    assert chat.model == "gpt-4o-2024-08-06"  # the response model wins over the requested one
    assert (chat.provider, chat.input_tokens, chat.output_tokens) == ("openai", 1200, 85)
    assert chat.parent_span_id == root.span_id
    assert (tool.tool_name, tool.tool_call_id, tool.operation) == ("get_weather", "call_0000", "execute_tool")
    assert tool.arguments_sha256 == sha(json.dumps({"city": "Paris", "turn": 0}))
    assert tool.result_sha256 == sha(json.dumps({"temp_c": 21.5, "sky": "clear"}))
    assert trail.problems == []
    assert trail.summary.input_tokens == 2401 and trail.summary.kinds.tool == 2


def test_old_gen_ai_names_read_the_same_as_the_new_ones() -> None:
    new = ingest(to_protobuf(recorded(lambda t: agent_run(t, new_names=True))), PB).steps[1]
    old = ingest(to_protobuf(recorded(lambda t: agent_run(t, new_names=False))), PB).steps[1]
    assert (old.provider, old.input_tokens, old.output_tokens) == (new.provider, new.input_tokens, new.output_tokens)
    assert old.provider == "openai" and old.input_tokens == 1200


def test_openinference_spans_map_to_step_kinds_tokens_cost_and_status() -> None:
    trail = ingest(to_protobuf(recorded(openinference_run)), PB)
    chain, llm, tool, _retriever = trail.steps
    assert [s.kind for s in trail.steps] == ["other", "llm", "tool", "retrieval"]
    assert [s.operation for s in trail.steps] == ["CHAIN", "LLM", "TOOL", "RETRIEVER"]
    assert (llm.model, llm.provider, llm.input_tokens, llm.output_tokens) == ("gpt-4o-mini", "openai", 52, 17)
    assert llm.cost == "0.0000123"
    assert tool.tool_name == "get_weather"
    assert tool.arguments_sha256 == sha('{"city": "Paris"}') and tool.result_sha256 == sha("21.5 C, clear")
    assert (tool.status, tool.status_message) == ("error", "upstream timed out")
    assert chain.arguments_sha256 == sha("What is the weather in Paris?")
    assert trail.summary.cost == "0.0000123" and trail.summary.errors == 1


@pytest.mark.parametrize(
    ("attributes", "kind", "operation"),
    [
        ({"gen_ai.operation.name": "invoke_agent"}, "agent", "invoke_agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent", "create_agent"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool", "execute_tool"),
        ({"gen_ai.operation.name": "text_completion"}, "llm", "text_completion"),
        ({"gen_ai.operation.name": "generate_content"}, "llm", "generate_content"),
        ({"gen_ai.operation.name": "embeddings"}, "llm", "embeddings"),
        ({"gen_ai.operation.name": "retrieval"}, "retrieval", "retrieval"),
        ({"gen_ai.operation.name": "summon", "openinference.span.kind": "RERANKER"}, "retrieval", "RERANKER"),
        ({"gen_ai.operation.name": "summon"}, "other", "summon"),
        ({"openinference.span.kind": "agent"}, "agent", "agent"),
        ({"openinference.span.kind": "EMBEDDING"}, "llm", "EMBEDDING"),
        ({"openinference.span.kind": "GUARDRAIL"}, "other", "GUARDRAIL"),
        ({"openinference.span.kind": "SOMETHING_NEW"}, "other", "SOMETHING_NEW"),
        ({"gen_ai.system": "anthropic", "gen_ai.request.model": "claude"}, "llm", None),  # old: no operation
        ({"tool.name": "search"}, "tool", None),
        ({"http.method": "GET"}, "other", None),
    ],
)
def test_the_step_kind_comes_from_the_operation_then_openinference_then_the_evidence(
    attributes: dict[str, object], kind: str, operation: str | None
) -> None:
    for trail in both([raw_span(0, attributes=attributes)]):
        assert (trail.steps[0].kind, trail.steps[0].operation) == (kind, operation)


def test_protobuf_and_otlp_json_of_one_payload_give_identical_step_hashes() -> None:
    for build in (lambda t: agent_run(t, turns=3), openinference_run):
        spans = recorded(build)
        from_pb, from_json = ingest(to_protobuf(spans), PB), ingest(to_otlp_json(spans, indent=2), JSON)
        assert from_pb.step_hashes == from_json.step_hashes
        assert from_pb.bundle_sha256 == from_json.bundle_sha256
        assert from_pb.steps == from_json.steps


def test_base64_ids_as_protobufs_own_json_mapping_writes_them_are_accepted() -> None:
    spans = recorded(agent_run)
    proto3_json = json_format.MessageToJson(encode_spans(spans)).encode()  # ids base64, enums by name
    assert ingest(proto3_json, JSON).bundle_sha256 == ingest(to_protobuf(spans), PB).bundle_sha256


def test_json_with_integer_enums_and_numeric_int64_reads_like_the_string_forms() -> None:
    start = 1_718_000_000_000_000_000
    span: dict[str, Any] = {
        "traceId": TRACE.upper(),  # hex is case-insensitive
        "spanId": span_id(0),
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": start,
        "endTimeUnixNano": str(start + 10),
        "status": {"code": 2, "message": "boom"},
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 7}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "9"}},
            {"key": "unrelated", "value": {"kvlistValue": {"values": [{"key": "a", "value": {}}]}}},
        ],
    }
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    step = ingest(body, JSON).steps[0]
    assert (step.trace_id, step.start_ns, step.end_ns) == (TRACE, str(start), str(start + 10))
    assert (step.status, step.status_message, step.input_tokens, step.output_tokens) == ("error", "boom", 7, 9)
    named = body.replace(b'"code": 2', b'"code": "STATUS_CODE_ERROR"')
    assert ingest(named, JSON).steps == ingest(body, JSON).steps


def test_structured_arguments_hash_as_jcs_of_their_otlp_json_form_in_both_encodings() -> None:
    arguments = {"city": "Paris", "days": 3, "units": ["C", "F"], "raw": b"\x00\xff", "scale": 1.5, "ok": True}
    spans = [raw_span(0, attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": arguments})]
    from_pb, from_json = both(spans)
    request = raw_request(spans)
    value = request.resource_spans[0].scope_spans[0].spans[0].attributes[1].value
    otlp_form = json_format.MessageToDict(value)
    otlp_form["kvlistValue"]["values"][1]["value"]["intValue"] = "3"  # MessageToDict already writes int64 so
    expected = sha(rfc8785.dumps(otlp_form))
    assert from_pb.steps[0].arguments_sha256 == from_json.steps[0].arguments_sha256 == expected


def test_jsonl_files_read_one_request_per_line_and_match_the_single_request() -> None:
    spans = [raw_span(i, 0 if i else None) for i in range(6)]
    lines = [raw_json(spans[:2]), b"", raw_json(spans[2:5]), b"   ", raw_json(spans[5:])]
    whole = ingest(raw_json(spans), JSON)
    assert ingest(b"\n".join(lines) + b"\n", JSONL).bundle_sha256 == whole.bundle_sha256
    assert ingest(b"\r\n".join(lines), "application/jsonl").bundle_sha256 == whole.bundle_sha256
    assert media_type_for_filename("run-42.JSONL") == JSONL and media_type_for_filename("a.txt") is None


def test_a_bad_jsonl_line_is_named() -> None:
    good = raw_json([raw_span(0)])
    broken = good.replace(b'"spanId": "', b'"spanId": 5, "x": "', 1)
    error = rejected(b"\n".join([good, broken, good]), JSONL)
    assert error.status == 400 and error.detail.startswith("line 2: ") and "spanId" in error.detail
    error = rejected(b"\n".join([good, b"", good[:-3]]), JSONL)
    assert error.detail.startswith("line 3: ")


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("", 415), ("application/grpc", 415), ("application/json; charset=utf-8", None)],
)
def test_only_otlp_media_types_are_taken(content_type: str, status: int | None) -> None:
    body = raw_json([raw_span(0)])
    if status is None:
        assert len(ingest(body, content_type).steps) == 1
    else:
        assert rejected(body, content_type).status == status


@pytest.mark.parametrize("content_type", [PB, JSON, JSONL])
def test_an_empty_body_is_refused_but_a_request_without_spans_is_an_empty_trail(content_type: str) -> None:
    # Zero bytes is also protobuf's encoding of an empty request; refused all the same, since
    # a body lost on the way is far likelier than an agent that did nothing, and says so.
    assert rejected(b"", content_type).status == 400
    without_spans = raw_request([]).SerializeToString() if content_type == PB else b'{"resourceSpans": []}'
    trail = ingest(without_spans, content_type)
    assert trail.steps == [] and trail.bundle_sha256 == bundle_hash([])


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\x0f", raw_protobuf([raw_span(0)])[:-7], b"{not protobuf at all}"],
)
def test_malformed_protobuf_is_a_400(body: bytes) -> None:
    error = rejected(body, PB)
    assert error.status == 400 and "protobuf" in error.detail


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.update(traceId=12), "traceId"),
        (lambda s: s.update(traceId="zz" * 16), "traceId"),
        (lambda s: s.update(traceId="0" * 32), "traceId"),
        (lambda s: s.update(spanId="abc"), "spanId"),
        (lambda s: s.update(startTimeUnixNano="12x"), "startTimeUnixNano"),
        (lambda s: s.update(startTimeUnixNano=-1), "startTimeUnixNano"),
        (lambda s: s.update(endTimeUnixNano=1.5), "endTimeUnixNano"),
        (lambda s: s.update(name=["a"]), "name"),
        (lambda s: s.update(status={"code": "BROKEN"}), "status.code"),
        (lambda s: s.update(attributes={"a": 1}), "attributes"),
        (lambda s: s["attributes"].append(attribute("gen_ai.usage.input_tokens", {"intValue": "1e3"})), "intValue"),
        (
            lambda s: s["attributes"].append(attribute("gen_ai.tool.call.arguments", {"doubleValue": "x"})),
            "doubleValue",
        ),
        (lambda s: s["attributes"].append({"key": 7, "value": {}}), "attributes"),
    ],
)
def test_json_with_wrong_types_is_a_400_that_names_the_field(change: Any, where: str) -> None:
    tree = json.loads(raw_json([raw_span(0, attributes={"gen_ai.operation.name": "chat"})]))
    change(tree["resourceSpans"][0]["scopeSpans"][0]["spans"][0])
    error = rejected(json.dumps(tree).encode(), JSON)
    assert error.status == 400 and where in error.detail, error.detail
    assert "spans[0]" in error.detail, error.detail


def test_not_json_at_all_is_a_400() -> None:
    for body in (b"{", b"[1, 2]", b"null", b"\xff\xfe"):
        assert rejected(body, JSON).status == 400


def test_protobuf_ids_of_the_wrong_size_are_a_400() -> None:
    span = raw_span(0)
    span.span_id = b"\x01\x02"
    error = rejected(raw_protobuf([span]), PB)
    assert error.status == 400 and "spans[0].spanId: 2 bytes" in error.detail


# ---------------------------------------------------------------- structure


def test_a_missing_parent_is_kept_as_a_root_and_flagged() -> None:
    for trail in both([raw_span(0), raw_span(1, 0), raw_span(2, 41)]):
        orphan = next(s for s in trail.steps if s.span_id == span_id(2))
        assert orphan.parent_span_id == span_id(41) and orphan.flags == ["missing_parent"]
        [problem] = trail.problems
        assert problem.code == "missing_parent" and problem.span_id == span_id(2)
        assert problem.detail == f"parent {span_id(41)} is not in the payload; kept as a root"
        assert trail.summary.problems == ["missing_parent"]


def test_parent_cycles_and_self_parents_are_found_without_recursion() -> None:
    spans = [raw_span(0), raw_span(1, 2), raw_span(2, 3), raw_span(3, 1), raw_span(4, 4), raw_span(5, 3)]
    for trail in both(spans):
        by_id = {s.span_id: s for s in trail.steps}
        assert [by_id[span_id(i)].flags for i in range(6)] == [[], ["cycle"], ["cycle"], ["cycle"], ["cycle"], []]
        details = sorted(p.detail for p in trail.problems)
        assert details == [
            f"parent cycle of 3 spans: {span_id(1)} -> {span_id(2)} -> {span_id(3)} -> {span_id(1)}",
            "span names itself as its parent",
        ]
        assert len(trail.steps) == 6


def test_a_very_long_parent_chain_and_a_huge_cycle_do_not_blow_the_stack() -> None:
    n = 50_000
    chain = [raw_span(i, i - 1 if i else None) for i in range(n)]
    ring = [raw_span(n + i, n + (i + 1) % n) for i in range(n)]
    started = time.perf_counter()
    trail = ingest(raw_protobuf(chain + ring), PB)
    assert time.perf_counter() - started < 120  # a loose bound: linear, not quadratic
    assert len(trail.steps) == 2 * n
    [cycle] = trail.problems
    assert cycle.code == "cycle" and f"parent cycle of {n} spans" in cycle.detail and "49992 more" in cycle.detail


def test_identical_duplicate_spans_are_a_retry_dropped_quietly_and_differing_ones_kept_and_flagged() -> None:
    spans = [raw_span(0), raw_span(1, 0), raw_span(1, 0), raw_span(2, 0), raw_span(2, 0, name="other")]
    spans += [raw_span(2, 0)]  # and a retried copy of a span that also has a differing version
    for trail in both(spans):
        assert [s.span_id for s in trail.steps] == [span_id(0), span_id(1), span_id(2), span_id(2)]
        assert [s.flags for s in trail.steps[1:]] == [[], ["duplicate_span_id"], ["duplicate_span_id"]]
        details = [p.detail for p in trail.problems]
        assert details == [
            f"span id appears 3 times in trace {TRACE}; 1 identical copies dropped; 2 differing versions kept"
        ]
    retried = [raw_span(0), raw_span(1, 0)]
    for once, twice in zip(both(retried), both(retried * 2), strict=True):  # an exporter sent its batch twice
        assert twice.step_hashes == once.step_hashes and twice.problems == []


def test_the_trail_order_does_not_depend_on_payload_order() -> None:
    spans = [raw_span(i, 0 if i else None, start=1_000 + (i * 7919) % 13) for i in range(13)]
    spans.append(raw_span(3, 0, start=1_000 + (3 * 7919) % 13, name="a differing duplicate"))
    forward, backward = ingest(raw_protobuf(spans), PB), ingest(raw_protobuf(spans[::-1]), PB)
    assert forward.step_hashes == backward.step_hashes
    starts = [s.start_unix_nano for s in forward.steps]
    assert starts == sorted(starts)


def test_a_span_ending_before_it_starts_is_flagged() -> None:
    for trail in both([raw_span(0, start=2_000, end=1_000), raw_span(0, start=2_000, end=1_000)]):
        assert codes(trail) == ["time_inverted"]  # once, not per copy
        assert trail.steps[0].flags == ["time_inverted"]
        inverted = next(p for p in trail.problems if p.code == "time_inverted")
        assert inverted.detail == "ends at 1000, before it starts at 2000"


def test_one_step_of_an_ingested_trail_verifies_against_its_bundle() -> None:
    trail = ingest(to_protobuf(recorded(lambda t: agent_run(t, turns=4))), PB)
    for step in trail.steps:
        assert step_hash(step) == trail.step_hashes[step.seq - 1]
        assert verify_step(step, trail.step_hashes, trail.bundle_sha256)
    assert trail.summary.bundle_sha256 == trail.bundle_sha256 == bundle_hash(trail.step_hashes)


# ---------------------------------------------------------------- values and bounds


def test_huge_attributes_are_hashed_in_full_and_kept_texts_are_cut() -> None:
    result = "r" * 5_000_000
    name = "n" * (MAX_TEXT + 10)
    spans = [raw_span(0, name=name, attributes={"gen_ai.tool.name": "read", "gen_ai.tool.call.result": result})]
    for trail in both(spans):
        step = trail.steps[0]
        assert step.kind == "tool"  # no operation named, but a tool name
        assert step.result_sha256 == sha(result)
        assert step.name == name[:MAX_TEXT] and step.flags == ["truncated"]
        assert len(msgspec.json.encode(step)) < 2_000


def test_kept_texts_come_back_under_their_digest_when_asked() -> None:
    spans = [raw_span(0, attributes={"gen_ai.tool.call.arguments": "αβγ", "gen_ai.tool.call.result": "ok"})]
    trail = ingest(raw_protobuf(spans), PB, keep_texts=True)
    step = trail.steps[0]
    assert trail.texts == {step.arguments_sha256: "αβγ".encode(), step.result_sha256: b"ok"}
    assert ingest(raw_protobuf(spans), PB).texts == {}


def test_attributes_past_the_cap_are_not_read_and_the_step_says_so() -> None:
    attributes: dict[str, object] = {f"filler.{i}": i for i in range(MAX_ATTRIBUTES)}
    attributes["gen_ai.request.model"] = "gpt-4o"
    for trail in both([raw_span(0, attributes=attributes)]):
        step = trail.steps[0]
        assert step.model is None and step.flags == ["attributes_capped"]


def test_deep_values_are_capped_and_deeper_bodies_refused() -> None:
    def nested(depth: int) -> object:
        value: object = "leaf"
        for _ in range(depth):
            value = [value]
        return value

    ok = both([raw_span(0, attributes={"gen_ai.tool.call.arguments": nested(32)})])
    assert ok[0].steps[0].arguments_sha256 == ok[1].steps[0].arguments_sha256 is not None
    for trail in both([raw_span(0, attributes={"gen_ai.tool.call.arguments": nested(40)})]):
        assert trail.steps[0].arguments_sha256 is None and trail.steps[0].flags == ["value_too_deep"]
    # Deeper than the decoders allow at all: a 400, not a crash — protobuf, and JSON 100,000 deep.
    deep = b'{"arrayValue":{"values":[' * 100_000 + b"{}" + b"]}}" * 100_000
    tree = json.loads(raw_json([raw_span(0)]))
    tree["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [{"key": "x", "value": "DEEP"}]
    body = json.dumps(tree).encode().replace(b'"DEEP"', deep)
    error = rejected(body, JSON)
    assert error.status == 400 and "nested too deeply" in error.detail


@pytest.mark.parametrize(
    ("attributes", "flag"),
    [
        ({"gen_ai.usage.input_tokens": -1}, "bad_value"),
        ({"gen_ai.usage.input_tokens": 2**62}, "bad_value"),
        ({"gen_ai.usage.input_tokens": "12"}, "bad_value"),
        ({"gen_ai.usage.cost": "1e999999"}, "bad_value"),
        ({"gen_ai.usage.cost": float("nan")}, "bad_value"),
        ({"gen_ai.usage.cost": "-1.5"}, "bad_value"),  # would shrink a spend-capped total
        ({"gen_ai.request.model": 4}, "bad_value"),
        ({"gen_ai.request.model": ["gpt", "4o"]}, "bad_value"),
    ],
)
def test_values_of_the_wrong_kind_are_dropped_and_flagged(attributes: dict[str, object], flag: str) -> None:
    for trail in both([raw_span(0, attributes=attributes)]):
        step = trail.steps[0]
        assert step.flags == [flag] and step.input_tokens is None and step.cost is None and step.model is None


def test_integral_double_token_counts_and_decimal_costs_are_read() -> None:
    attributes = {"gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.cost": "0.25", "llm.cost.total": 9.0}
    for trail in both([raw_span(0, attributes=attributes)]):
        assert (trail.steps[0].input_tokens, trail.steps[0].cost) == (12, "0.25")


def test_text_that_is_not_utf8_is_a_400_in_either_encoding() -> None:
    body = raw_json([raw_span(0, name="NAME")]).replace(b'"NAME"', b'"bad \\ud800 name"')
    assert rejected(body, JSON).status == 400
    body = raw_protobuf([raw_span(0, name="NAME")]).replace(b"NAME", b"N\xed\xa0\x80")
    error = rejected(body, PB)
    assert error.status == 400 and "UTF-8" in error.detail


def test_a_50_mb_payload_is_accepted_with_bounded_memory() -> None:
    big = "x" * 2_500_000
    spans = [
        raw_span(i, 0 if i else None, attributes={"gen_ai.tool.name": "read", "gen_ai.tool.call.result": big + str(i)})
        for i in range(20)
    ]
    body = raw_json(spans)
    assert 50_000_000 <= len(body) <= MAX_BODY_BYTES
    tracemalloc.start()
    try:
        trail = ingest(body, JSON)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(trail.steps) == 20 and trail.steps[5].result_sha256 == sha(big + "5")
    assert peak < 20_000_000, f"peak {peak} bytes traced while ingesting a {len(body)} byte body"
    assert len(ingest(raw_protobuf(spans), PB).steps) == 20


PEAK_RSS = """
import resource, sys
from defendable_canonical.otlp_steps import ingest
body = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
trail = ingest(body, sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(trail.steps), (after - before) * 1024)
"""


@pytest.mark.parametrize("content_type", [PB, JSON])
def test_a_50_mb_payload_peaks_at_a_small_multiple_of_its_size_in_a_fresh_process(
    content_type: str, tmp_path: Path
) -> None:
    big = "x" * 2_500_000
    spans = [raw_span(i, attributes={"gen_ai.tool.call.result": big + str(i)}) for i in range(20)]
    path = tmp_path / "trace.otlp"
    path.write_bytes(raw_protobuf(spans) if content_type == PB else raw_json(spans))
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(path), content_type], capture_output=True, text=True, check=True
    )
    steps, growth = map(int, done.stdout.split())
    assert steps == 20
    assert growth < 2 * path.stat().st_size, f"peak RSS grew {growth} bytes for a {path.stat().st_size} byte body"


def test_bodies_past_the_limits_are_a_413() -> None:
    body = raw_protobuf([raw_span(i) for i in range(11)])
    assert rejected(body, PB, max_body_bytes=100).status == 413
    for content_type, payload in ((PB, body), (JSON, raw_json([raw_span(i) for i in range(11)]))):
        error = rejected(payload, content_type, max_spans=10)
        assert (error.status, error.detail) == (413, "more than 10 spans in one request")
    lines = b"\n".join(raw_json([raw_span(i)]) for i in range(11))
    assert rejected(lines, JSONL, max_spans=10).status == 413
    assert rejected(b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}", JSON).status == 413


def test_compressed_bodies_are_inflated_within_the_limit() -> None:
    body = raw_protobuf([raw_span(0)])
    assert inflate(gzip.compress(body), "gzip") == body
    assert inflate(zlib.compress(body), "Deflate") == body
    assert inflate(body, None) == body and inflate(body, "identity") == body
    bomb = gzip.compress(b"\0" * 20_000_000)

    def refused(data: bytes, encoding: str, max_bytes: int = MAX_BODY_BYTES) -> int:
        with pytest.raises(OtlpRejected) as caught:
            inflate(data, encoding, max_bytes=max_bytes)
        return caught.value.status

    assert refused(bomb, "gzip", max_bytes=1_000_000) == 413
    assert refused(b"not gzip", "gzip") == 400
    assert refused(gzip.compress(body)[:-12], "gzip") == 400
    assert refused(body, "br") == 415


def test_decode_traces_gives_the_recognised_attributes_only() -> None:
    [span] = decode_traces(raw_protobuf([raw_span(0, attributes={"gen_ai.request.model": "m", "http.url": "u"})]), PB)
    assert span.attributes == {"gen_ai.request.model": "m"} and span.service == "hand-built"
    assert base64.b16decode(span.trace_id.upper()) == bytes.fromhex(TRACE)
