"""OTLP traces in, format-free `Span`s out: pure decoding, no I/O.

Accepts what an agent's OpenTelemetry SDK or collector sends (OTLP/HTTP protobuf and JSON,
https://opentelemetry.io/docs/specs/otlp/#otlphttp) and what the collector's file exporter
writes (JSON Lines: one ExportTraceServiceRequest per line). Only the attributes the
normaliser reads (`RECOGNISED`) are kept; `otlp_steps` turns the spans into the trail.

Limits, and why (each refusal is an `OtlpRejected` carrying the HTTP status):

* body ≤ 64 MiB (413). The issue's hostile case is a 50 MB payload, and an agent run's JSONL
  trail uploaded as evidence can honestly be that large, so it is accepted rather than
  refused. Memory grows with the spans, not with the bytes of their attributes: a 50 MB
  body of 20 spans with 2.5 MB tool results peaks ~55 MB (protobuf) / ~5 MB (JSON) above
  the body itself (measured RSS; tests/otlp bounds it). Compressed bodies are inflated by
  `inflate` under the same bound (a zip bomb is a 413).
* spans ≤ 100,000 per request (413), counted right after parsing, before any is
  normalised: measured ~3.3 KB of peak memory per protobuf span (half of it upb's parsed
  message) and ~2 KB per JSON span, so ≤ ~330 MB and a few seconds at the measured rate;
  12x the collector's default batch (8,192). 50 MB of *small* protobuf spans (~130,000) is
  therefore a 413, the same 50 MB as OTLP/JSON (~60,000 spans) is taken.
* attributes read ≤ 1,024 per span (the SDK's default limit is 128); the rest are not read
  and the step is flagged ``attributes_capped``.
* structured values (kvlist/array) that are hashed are walked at most 32 levels deep by a
  depth-capped walk; deeper ones are not hashed and flagged ``value_too_deep``. 32 sits
  below what protobuf can carry at all (upb refuses ~48 nested arrays in a span attribute),
  so both encodings of one value get the same answer. Anything nested deeper than the
  decoders allow (upb's recursion limit, msgspec's RecursionError) is a 400.

OTLP/JSON quirks handled (OTLP spec, "JSON Protobuf Encoding"): trace and span ids are hex,
not base64 (base64 ids, which protobuf's own MessageToJson writes, are accepted too: their
lengths differ, so the two cannot be confused); int64 fields arrive as strings or numbers;
enums as integers or their names; field names lowerCamelCase; unknown fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterator
from typing import Final, Literal

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
MAX_SPANS: Final = 100_000
MAX_ATTRIBUTES: Final = 1024
MAX_VALUE_DEPTH: Final = 32
_MAX_UINT64: Final = 2**64 - 1

Format = Literal["protobuf", "json", "jsonl"]
_MEDIA_TYPES: Final[dict[str, Format]] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}
_FILE_SUFFIXES: Final[dict[str, str]] = {
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
    ".pb": "application/x-protobuf",
    ".binpb": "application/x-protobuf",
}


class OtlpRejected(Exception):
    """The body cannot be taken as OTLP traces; `status` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Structured(msgspec.Struct, frozen=True, gc=False):
    """A non-string attribute value in its OTLP/JSON AnyValue form (ints as decimal strings,
    bytes base64), or None when it was nested deeper than MAX_VALUE_DEPTH."""

    value: object


AttrValue = str | bool | int | float | Structured


class Span(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One decoded span, whatever the wire format, with only the attributes `draft_step` reads."""

    trace_id: str  # lowercase hex
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    service: str | None
    attributes: dict[str, AttrValue]
    unread_attributes: int = 0  # beyond MAX_ATTRIBUTES
    duplicate_keys: tuple[str, ...] = ()


# ---------------------------------------------------------------- recognised attributes

# The attribute names the normaliser reads, each list in order of precedence: OTel GenAI
# semconv (current names, then the ones they replaced), then OpenInference.
OPERATION = "gen_ai.operation.name"
OI_KIND = "openinference.span.kind"
MODEL_KEYS: Final = (
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.response.model_name",
    "llm.model_name",
    "llm.request.model_name",
)
PROVIDER_KEYS: Final = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
INPUT_TOKENS_KEYS: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS_KEYS: Final = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
TOOL_NAME_KEYS: Final = ("gen_ai.tool.name", "tool.name")
TOOL_CALL_ID_KEYS: Final = ("gen_ai.tool.call.id", "tool_call.id")
AGENT_NAME_KEYS: Final = ("gen_ai.agent.name", "agent.name")
ARGUMENTS_KEYS: Final = ("gen_ai.tool.call.arguments", "gen_ai.input.messages", "input.value")
RESULT_KEYS: Final = ("gen_ai.tool.call.result", "gen_ai.output.messages", "output.value")
COST_KEYS: Final = ("gen_ai.usage.cost", "llm.cost.total")
ERROR_TYPE_KEYS: Final = ("error.type",)
RECOGNISED: Final = frozenset(
    (
        OPERATION,
        OI_KIND,
        *MODEL_KEYS,
        *PROVIDER_KEYS,
        *INPUT_TOKENS_KEYS,
        *OUTPUT_TOKENS_KEYS,
        *TOOL_NAME_KEYS,
        *TOOL_CALL_ID_KEYS,
        *AGENT_NAME_KEYS,
        *ARGUMENTS_KEYS,
        *RESULT_KEYS,
        *COST_KEYS,
        *ERROR_TYPE_KEYS,
    )
)
_STATUS_NAMES: Final = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


# ---------------------------------------------------------------- entry points


def format_of(media_type: str) -> Format | None:
    """The OTLP encoding a (parameter-free, lower-case) media type names; None for any other."""
    return _MEDIA_TYPES.get(media_type)


def media_type_for_filename(filename: str) -> str | None:
    """The media type `decode_traces` should be given for an uploaded trace file, by suffix."""
    lowered = filename.lower()
    return next((t for suffix, t in _FILE_SUFFIXES.items() if lowered.endswith(suffix)), None)


def inflate(body: bytes, content_encoding: str | None, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body with its Content-Encoding (gzip, deflate) undone, never more than `max_bytes`."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(encoding)
    if wbits is None:
        raise OtlpRejected(415, f"content encoding {encoding!r} is not supported; use gzip, deflate or none")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as e:
        raise OtlpRejected(400, f"body is not valid {encoding}: {e}") from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise OtlpRejected(413, f"{encoding} body inflates beyond {max_bytes} bytes")
    if not inflater.eof:
        raise OtlpRejected(400, f"{encoding} body is truncated")
    return out


def decode_traces(
    body: bytes, content_type: str, *, max_body_bytes: int = MAX_BODY_BYTES, max_spans: int = MAX_SPANS
) -> list[Span]:
    """The spans of an OTLP/HTTP body (protobuf or JSON) or OTLP JSON Lines file, in payload order.

    Raises OtlpRejected: 415 for another media type, 413 past a limit, 400 for malformed input.
    A well-formed request with no spans gives an empty list; an empty body is a 400.
    """
    return list(iter_spans(body, content_type, max_body_bytes=max_body_bytes, max_spans=max_spans))


def iter_spans(
    body: bytes, content_type: str, *, max_body_bytes: int = MAX_BODY_BYTES, max_spans: int = MAX_SPANS
) -> Iterator[Span]:
    """`decode_traces`, one span at a time, so a consumer need not hold them all."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    fmt = _MEDIA_TYPES.get(media_type)
    if fmt is None:
        accepted = ", ".join(sorted(_MEDIA_TYPES))
        raise OtlpRejected(415, f"media type {media_type or '(none)'!r} is not OTLP traces; send one of {accepted}")
    if len(body) > max_body_bytes:
        raise OtlpRejected(413, f"body is {len(body)} bytes; the limit is {max_body_bytes}")
    if not body or (fmt != "protobuf" and body.isspace()):
        raise OtlpRejected(400, "empty body: expected an OTLP ExportTraceServiceRequest")
    if fmt == "protobuf":
        yield from _protobuf_spans(body, max_spans)
    elif fmt == "json":
        yield from _json_spans(memoryview(body), max_spans, 0, "")
    else:
        seen = 0
        for number, line in _lines(body):
            for span in _json_spans(line, max_spans, seen, f"line {number}: "):
                seen += 1
                yield span


def _lines(body: bytes) -> Iterator[tuple[int, memoryview]]:
    """1-based line numbers and zero-copy views of the non-blank lines."""
    view = memoryview(body)
    start, number = 0, 0
    while start < len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        number += 1
        # Blank lines are skipped; a long all-blank line is left to the decoder to refuse.
        if end - start > 8 or body[start:end].strip():
            yield number, view[start:end]
        start = end + 1


class _Malformed(Exception):
    """A bad field inside one span; the span loop adds where the span is (hot paths build no
    location strings unless something is wrong)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem

    def at(self, prefix: str, where: str) -> OtlpRejected:
        problem = self.problem.replace("`$", f"`{where}{self.field}")  # msgspec's own paths
        return OtlpRejected(400, f"{prefix}{where}{self.field}: {problem}")


def _too_many(max_spans: int) -> OtlpRejected:
    return OtlpRejected(413, f"more than {max_spans} spans in one request")


# ---------------------------------------------------------------- protobuf


def _protobuf_spans(body: bytes, max_spans: int) -> Iterator[Span]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as e:
        raise OtlpRejected(400, f"body is not an OTLP ExportTraceServiceRequest protobuf: {e}") from None
    total = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if total > max_spans:
        raise _too_many(max_spans)
    for r, rs in enumerate(request.resource_spans):
        service = next(
            (kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"),
            None,
        )
        for s, ss in enumerate(rs.scope_spans):
            for i, span in enumerate(ss.spans):
                try:
                    decoded = _proto_span(span, service)
                except _Malformed as e:
                    raise e.at("", f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]") from None
                yield decoded


def _proto_span(span: PbSpan, service: str | None) -> Span:
    attributes: dict[str, AttrValue] = {}
    duplicates: list[str] = []
    listed = span.attributes
    unread = len(listed) - MAX_ATTRIBUTES
    for kv in listed[:MAX_ATTRIBUTES] if unread > 0 else listed:
        key = kv.key
        if key in RECOGNISED:
            value = _proto_value(kv.value)
            if value is not None:
                if key in attributes:
                    duplicates.append(key)
                attributes[key] = value
    status = span.status
    parent = span.parent_span_id
    return Span(
        trace_id=_proto_id(span.trace_id, 16, ".traceId"),
        span_id=_proto_id(span.span_id, 8, ".spanId"),
        parent_span_id=_proto_id(parent, 8, ".parentSpanId") if parent else None,
        name=span.name,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=status.code,
        status_message=status.message,
        service=service,
        attributes=attributes,
        unread_attributes=max(0, unread),
        duplicate_keys=tuple(duplicates),
    )


def _proto_id(raw: bytes, size: int, field: str) -> str:
    if len(raw) != size or not any(raw):
        problem = "all zeros" if len(raw) == size else f"{len(raw)} bytes"
        raise _Malformed(field, f"{problem}; a valid id is {size} bytes, not all zero")
    return raw.hex()


def _proto_value(value: AnyValue) -> AttrValue | None:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which is None:
        return None
    try:
        return Structured(_proto_any(value, 0))
    except _TooDeep:
        return Structured(None)


def _proto_any(value: AnyValue, depth: int) -> object:
    """The OTLP/JSON form of a protobuf AnyValue, or None (as a whole) past MAX_VALUE_DEPTH."""
    if depth > MAX_VALUE_DEPTH:
        raise _TooDeep
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}
    if which == "double_value":
        return {"doubleValue": double_form(value.double_value)}
    if which == "bytes_value":
        return {"bytesValue": base64.b64encode(value.bytes_value).decode("ascii")}
    if which == "array_value":
        return {"arrayValue": {"values": [_proto_any(v, depth + 1) for v in value.array_value.values]}}
    if which == "kvlist_value":
        pairs = [{"key": kv.key, "value": _proto_any(kv.value, depth + 1)} for kv in value.kvlist_value.values]
        return {"kvlistValue": {"values": pairs}}
    return {}


class _TooDeep(Exception):
    pass


def double_form(value: float) -> float | str:
    """proto3 JSON writes non-finite doubles as the strings NaN, Infinity, -Infinity."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# ---------------------------------------------------------------- JSON


_NO_RAW: Final = msgspec.Raw(b"")


class _AnyValueJ(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    # Nested values stay raw JSON: only the few attributes the normaliser reads are walked.
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    double_value: float | str | None = None
    bytes_value: str | None = None
    array_value: msgspec.Raw = _NO_RAW  # (msgspec takes `Raw | None` as None only)
    kvlist_value: msgspec.Raw = _NO_RAW


class _KeyValueJ(msgspec.Struct, frozen=True, gc=False):
    key: str
    value: _AnyValueJ | None = None


class _StatusJ(msgspec.Struct, frozen=True, gc=False):
    code: int | str = 0
    message: str = ""


class _SpanJ(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    start_time_unix_nano: int | str = 0
    end_time_unix_nano: int | str = 0
    # Raw: decoded one span at a time, so a 50 MB body never holds every attribute as objects.
    attributes: msgspec.Raw = _NO_RAW
    status: _StatusJ | None = None


class _ScopeSpansJ(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    spans: list[_SpanJ] = []


class _ResourceJ(msgspec.Struct, frozen=True, gc=False):
    attributes: list[_KeyValueJ] = []


class _ResourceSpansJ(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource: _ResourceJ | None = None
    scope_spans: list[_ScopeSpansJ] = []


class _ExportJ(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource_spans: list[_ResourceSpansJ] = []


_EXPORT_DECODER: Final = msgspec.json.Decoder(_ExportJ)
_ATTRIBUTES_DECODER: Final = msgspec.json.Decoder(list[_KeyValueJ])
_ANY_DECODER: Final = msgspec.json.Decoder()


def _json_error(prefix: str, e: Exception) -> OtlpRejected:
    if isinstance(e, RecursionError):
        return OtlpRejected(400, f"{prefix}body: JSON nested too deeply")
    return OtlpRejected(400, f"{prefix}not OTLP JSON: {e}")


def _json_spans(data: memoryview, max_spans: int, seen: int, prefix: str) -> Iterator[Span]:
    try:
        request = _EXPORT_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError) as e:
        raise _json_error(prefix, e) from None
    if sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans) + seen > max_spans:
        raise _too_many(max_spans)
    for r, rs in enumerate(request.resource_spans):
        service = None
        if rs.resource is not None:
            for kv in rs.resource.attributes:
                if kv.key == "service.name" and kv.value is not None and isinstance(kv.value.string_value, str):
                    service = kv.value.string_value
                    break
        for s, ss in enumerate(rs.scope_spans):
            for i, span in enumerate(ss.spans):
                try:
                    decoded = _json_span(span, service)
                except _Malformed as e:
                    raise e.at(prefix, f"$.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]") from None
                yield decoded


def _json_span(span: _SpanJ, service: str | None) -> Span:
    attributes: dict[str, AttrValue] = {}
    duplicates: list[str] = []
    unread = 0
    if span.attributes:
        try:
            pairs = _ATTRIBUTES_DECODER.decode(span.attributes)
        except RecursionError:
            raise _Malformed(".attributes", "JSON nested too deeply") from None
        except msgspec.DecodeError as e:
            raise _Malformed(".attributes", f"not OTLP JSON: {e}") from None
        unread = len(pairs) - MAX_ATTRIBUTES
        for index, kv in enumerate(pairs[:MAX_ATTRIBUTES] if unread > 0 else pairs):
            if kv.key in RECOGNISED and kv.value is not None:
                try:
                    value = _json_value(kv.value)
                except _Malformed as e:
                    raise _Malformed(f".attributes[{index}].value{e.field}", e.problem) from None
                if value is not None:
                    if kv.key in attributes:
                        duplicates.append(kv.key)
                    attributes[kv.key] = value
    status = span.status
    parent = span.parent_span_id
    return Span(
        trace_id=_json_id(span.trace_id, 16, ".traceId"),
        span_id=_json_id(span.span_id, 8, ".spanId"),
        parent_span_id=_json_id(parent, 8, ".parentSpanId") if parent else None,
        name=span.name,
        start_ns=_json_uint64(span.start_time_unix_nano, ".startTimeUnixNano"),
        end_ns=_json_uint64(span.end_time_unix_nano, ".endTimeUnixNano"),
        status_code=_json_status(status.code) if status is not None else 0,
        status_message=status.message if status is not None else "",
        service=service,
        attributes=attributes,
        unread_attributes=max(0, unread),
        duplicate_keys=tuple(duplicates),
    )


def _json_id(text: str, size: int, field: str) -> str:
    """OTLP/JSON ids are hex (case-insensitive); base64 of the same bytes is accepted too."""
    raw: bytes | None = None
    try:
        if len(text) == 2 * size:
            raw = bytes.fromhex(text)
        elif len(text) == 4 * ((size + 2) // 3):
            raw = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = None
    if raw is None or len(raw) != size or not any(raw):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _Malformed(field, f"{shown!r} is not a valid id ({2 * size} hex digits, not all zero)")
    return raw.hex()


def _json_uint64(value: int | str, field: str) -> int:
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 20):
            raise _Malformed(field, f"{value[:40]!r} is not an unsigned 64-bit integer")
        value = int(value)
    if not 0 <= value <= _MAX_UINT64:
        raise _Malformed(field, f"{value} is not an unsigned 64-bit integer")
    return value


def _json_status(code: int | str) -> int:
    if isinstance(code, str):
        if code not in _STATUS_NAMES:
            raise _Malformed(".status.code", f"{code[:40]!r} is not a StatusCode name")
        return _STATUS_NAMES[code]
    return code


def _json_value(value: _AnyValueJ) -> AttrValue | None:
    if value.string_value is not None:
        return value.string_value
    if value.int_value is not None:
        return _json_int(value.int_value, "")
    if value.double_value is not None:
        return _json_double(value.double_value, "")
    if value.bool_value is not None:
        return value.bool_value
    try:
        return Structured(_json_any(_any_builtins(value), 0, ""))
    except (_TooDeep, RecursionError):
        return Structured(None)


def _any_builtins(value: _AnyValueJ) -> dict[str, object]:
    if value.bytes_value is not None:
        return {"bytesValue": value.bytes_value}
    if value.array_value:
        return {"arrayValue": _ANY_DECODER.decode(value.array_value)}
    if value.kvlist_value:
        return {"kvlistValue": _ANY_DECODER.decode(value.kvlist_value)}
    return {}


def _json_int(value: int | str, where: str) -> int:
    if isinstance(value, str):
        text = value[1:] if value.startswith("-") else value
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            raise _Malformed(f"{where}.intValue", f"{value[:40]!r} is not a 64-bit integer")
        value = int(value)
    if not -(2**63) <= value < 2**63:
        raise _Malformed(f"{where}.intValue", f"{value} is not a 64-bit integer")
    return value


def _json_double(value: float | str, where: str) -> float:
    if isinstance(value, str):
        special = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
        if value not in special:
            raise _Malformed(f"{where}.doubleValue", f"{value[:40]!r} is not a number")
        return special[value]
    return float(value)


def _json_any(value: object, depth: int, where: str) -> object:
    """Validate an AnyValue parsed from JSON and give its canonical OTLP/JSON form — the same
    form `_proto_any` gives for the same value, so both encodings hash alike."""
    if depth > MAX_VALUE_DEPTH:
        raise _TooDeep
    if not isinstance(value, dict):
        raise _Malformed(where, "an AnyValue must be an object")
    if "stringValue" in value and isinstance(value["stringValue"], str):
        return {"stringValue": value["stringValue"]}
    if "boolValue" in value and isinstance(value["boolValue"], bool):
        return {"boolValue": value["boolValue"]}
    if "intValue" in value and isinstance(value["intValue"], int | str) and not isinstance(value["intValue"], bool):
        return {"intValue": str(_json_int(value["intValue"], where))}
    if "doubleValue" in value and isinstance(value["doubleValue"], int | float | str):
        number = value["doubleValue"]
        return {"doubleValue": double_form(_json_double(number if isinstance(number, str) else float(number), where))}
    if "bytesValue" in value and isinstance(value["bytesValue"], str):
        try:
            raw = base64.b64decode(value["bytesValue"], validate=True)
        except binascii.Error:
            raise _Malformed(f"{where}.bytesValue", "not base64") from None
        return {"bytesValue": base64.b64encode(raw).decode("ascii")}
    if "arrayValue" in value:
        items = _json_list(value["arrayValue"], f"{where}.arrayValue")
        return {
            "arrayValue": {
                "values": [_json_any(v, depth + 1, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(items)]
            }
        }
    if "kvlistValue" in value:
        pairs = []
        for i, kv in enumerate(_json_list(value["kvlistValue"], f"{where}.kvlistValue")):
            here = f"{where}.kvlistValue.values[{i}]"
            if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                raise _Malformed(here, "a KeyValue needs a string key")
            pairs.append({"key": kv["key"], "value": _json_any(kv.get("value", {}), depth + 1, f"{here}.value")})
        return {"kvlistValue": {"values": pairs}}
    if any(key in value for key in ("stringValue", "boolValue", "intValue", "doubleValue", "bytesValue")):
        raise _Malformed(where, "AnyValue member has the wrong type")
    return {}


def _json_list(container: object, where: str) -> list[object]:
    if not isinstance(container, dict):
        raise _Malformed(where, "must be an object with a values list")
    items = container.get("values", [])
    if not isinstance(items, list):
        raise _Malformed(f"{where}.values", "must be a list")
    return items
