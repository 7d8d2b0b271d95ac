"""Decoded OTLP spans in, the run's execution trail out: pure normalisation, no I/O.

Plan of `ingest`: 1. bound and decode the body (`otlp.iter_spans`); 2. normalise each span
(`draft_step`): kind, model, provider, tokens, tool, hashes of input and output, cost,
status; 3. check the structure (`normalise`): duplicate ids, parents missing from the
payload, parent cycles (iteratively: a hostile payload must not recurse); 4. order the steps
by (start, trace id, span id), number them from 1, hash each, hash the hashes into the bundle
(constructions: libs/canonical/…/trail.py).

Kind: `gen_ai.operation.name` first (OTel GenAI semconv), then `openinference.span.kind`;
with neither, what the span sets decides (a tool name: tool; a model, provider or token
count: llm — older instrumentations name no operation), else other. `operation` keeps the
raw value that decided. The step's input (`arguments_sha256`) is the first of
gen_ai.tool.call.arguments, gen_ai.input.messages, input.value; its output (`result_sha256`)
the first of gen_ai.tool.call.result, gen_ai.output.messages, output.value — for a tool call
its arguments and result, for a model call its messages. Kept text (name, model, tool name,
status message, …) is cut at 1,024 characters and flagged ``truncated``; inputs and outputs
are hashed in full and never kept in the record.

A problem found is data (`Problem`, and a flag on the step it concerns), never a refusal:
missing_parent, cycle, duplicate_span_id, time_inverted, attributes_capped,
duplicate_attribute, bad_value, value_too_deep, truncated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

import msgspec

from .digest import Digest
from .jcs import canonicalize
from .otlp import (
    AGENT_NAME_KEYS,
    ARGUMENTS_KEYS,
    COST_KEYS,
    ERROR_TYPE_KEYS,
    INPUT_TOKENS_KEYS,
    MAX_ATTRIBUTES,
    MAX_BODY_BYTES,
    MAX_SPANS,
    MAX_VALUE_DEPTH,
    MODEL_KEYS,
    OI_KIND,
    OPERATION,
    OUTPUT_TOKENS_KEYS,
    PROVIDER_KEYS,
    RESULT_KEYS,
    TOOL_CALL_ID_KEYS,
    TOOL_NAME_KEYS,
    AttrValue,
    Span,
    Structured,
    double_form,
    iter_spans,
)
from .trail import StepKind, StepRecord, StepStatus, TrailSummary, step_hash, summarise

MAX_TEXT: Final = 1024
MAX_TOKENS: Final = 10**10  # per step; x MAX_SPANS stays inside I-JSON's 2^53 when summed

ProblemCode = Literal[
    "missing_parent",
    "cycle",
    "duplicate_span_id",
    "time_inverted",
    "attributes_capped",
    "duplicate_attribute",
    "bad_value",
    "value_too_deep",
    "truncated",
]


class Problem(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Something wrong with the trail that did not stop it being taken. Data, not an error."""

    code: ProblemCode
    trace_id: str
    span_id: str
    detail: str


class NormalisedTrail(msgspec.Struct, frozen=True, kw_only=True):
    steps: list[StepRecord]  # in seq order
    step_hashes: list[Digest]
    bundle_sha256: Digest
    summary: TrailSummary
    problems: list[Problem]
    texts: dict[str, bytes]  # digest -> exact bytes of hashed inputs/outputs, when asked to keep them


# gen_ai.operation.name values (semconv gen-ai-spans); invoke_workflow orchestrates agents.
_OPERATION_KINDS: Final[dict[str, StepKind]] = {
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "agent",
    "execute_tool": "tool",
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "embeddings": "llm",
    "retrieval": "retrieval",
}
# openinference.span.kind values (OpenInference semantic conventions, "Span Kinds").
_OI_KINDS: Final[dict[str, StepKind]] = {
    "AGENT": "agent",
    "TOOL": "tool",
    "LLM": "llm",
    "EMBEDDING": "llm",
    "RETRIEVER": "retrieval",
    "RERANKER": "retrieval",
    "CHAIN": "other",
    "GUARDRAIL": "other",
    "EVALUATOR": "other",
    "PROMPT": "other",
}
_STATUS: Final[dict[int, StepStatus]] = {0: "unset", 1: "ok", 2: "error"}


def ingest(
    body: bytes,
    content_type: str,
    *,
    keep_texts: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_spans: int = MAX_SPANS,
) -> NormalisedTrail:
    """Decode, normalise, order and hash: the execution trail an OTLP body is evidence of."""
    return normalise(
        iter_spans(body, content_type, max_body_bytes=max_body_bytes, max_spans=max_spans), keep_texts=keep_texts
    )


# ---------------------------------------------------------------- normalisation


def draft_step(span: Span, texts: dict[str, bytes] | None = None) -> tuple[StepRecord, list[tuple[ProblemCode, str]]]:
    """One span as a step record (seq 0, structural flags not yet known) and what was wrong
    with its values. Tool arguments and results are hashed; with `texts`, kept there too."""
    attrs = span.attributes
    notes: list[tuple[ProblemCode, str]] = []

    def text(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            if key in attrs:
                value = attrs[key]
                if isinstance(value, str):
                    return _kept(value, key, notes)
                notes.append(("bad_value", f"{key} is not a string"))
        return None

    def tokens(keys: tuple[str, ...]) -> int | None:
        for key in keys:
            if key in attrs:
                value = attrs[key]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
                    return value
                notes.append(("bad_value", f"{key} is not a token count in 0..{MAX_TOKENS}"))
        return None

    def digest(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            if key in attrs:
                return _value_digest(attrs[key], key, notes, texts)
        return None

    kind, operation = _kind(attrs, notes)
    model, provider, tool_name = text(MODEL_KEYS), text(PROVIDER_KEYS), text(TOOL_NAME_KEYS)
    input_tokens, output_tokens = tokens(INPUT_TOKENS_KEYS), tokens(OUTPUT_TOKENS_KEYS)
    if kind is None:
        # No operation named: older instrumentations still say what happened by what they set.
        kind = "tool" if tool_name else "llm" if model or provider or input_tokens is not None else "other"
    status = _STATUS.get(span.status_code)
    if status is None:
        notes.append(("bad_value", f"status code {span.status_code} is not 0, 1 or 2"))
        status = "unset"
    if span.unread_attributes:
        notes.append(
            ("attributes_capped", f"{span.unread_attributes} attributes past the first {MAX_ATTRIBUTES} unread")
        )
    for key in span.duplicate_keys:
        notes.append(("duplicate_attribute", f"{key} is set more than once; the last value is used"))
    if span.end_ns < span.start_ns:
        notes.append(("time_inverted", f"ends at {span.end_ns}, before it starts at {span.start_ns}"))
    step = StepRecord(
        seq=0,
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        kind=kind,
        operation=operation,
        name=_kept(span.name, "name", notes),
        service=_kept(span.service, "service.name", notes) if span.service else None,
        agent_name=text(AGENT_NAME_KEYS),
        model=model,
        provider=provider,
        tool_name=tool_name,
        tool_call_id=text(TOOL_CALL_ID_KEYS),
        arguments_sha256=digest(ARGUMENTS_KEYS),
        result_sha256=digest(RESULT_KEYS),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=_cost(attrs, notes),
        start_ns=str(span.start_ns),
        end_ns=str(span.end_ns),
        status=status,
        status_message=_kept(span.status_message, "status message", notes) if span.status_message else None,
        error_type=text(ERROR_TYPE_KEYS),
    )
    return step, notes


def _kind(attrs: dict[str, AttrValue], notes: list[tuple[ProblemCode, str]]) -> tuple[StepKind | None, str | None]:
    operation = attrs.get(OPERATION)
    if operation is not None and not isinstance(operation, str):
        notes.append(("bad_value", f"{OPERATION} is not a string"))
    if isinstance(operation, str):
        kind = _OPERATION_KINDS.get(operation)
        if kind is not None or OI_KIND not in attrs:
            return kind, _kept(operation, OPERATION, notes)
    oi_kind = attrs.get(OI_KIND)
    if oi_kind is not None and not isinstance(oi_kind, str):
        notes.append(("bad_value", f"{OI_KIND} is not a string"))
    if isinstance(oi_kind, str):
        return _OI_KINDS.get(oi_kind.upper(), "other"), _kept(oi_kind, OI_KIND, notes)
    return None, None


def _kept(value: str, what: str, notes: list[tuple[ProblemCode, str]]) -> str:
    if len(value) > MAX_TEXT:
        notes.append(("truncated", f"{what} cut from {len(value)} to {MAX_TEXT} characters"))
        return value[:MAX_TEXT]
    return value


def _value_digest(
    value: AttrValue, key: str, notes: list[tuple[ProblemCode, str]], texts: dict[str, bytes] | None
) -> str | None:
    """SHA-256 of a string value's UTF-8 bytes; of any other value, of JCS of its OTLP/JSON form.
    (Both decoders refuse text that is not valid UTF-8, so the encodings here cannot fail.)"""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, Structured):
        if value.value is None:
            notes.append(("value_too_deep", f"{key} is nested deeper than {MAX_VALUE_DEPTH} levels; not hashed"))
            return None
        data = canonicalize(value.value)
    else:
        data = canonicalize(_scalar_form(value))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if texts is not None:
        texts[digest] = data
    return digest


def _scalar_form(value: bool | int | float) -> dict[str, object]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"doubleValue": double_form(value)}


def _cost(attrs: dict[str, AttrValue], notes: list[tuple[ProblemCode, str]]) -> str | None:
    for key in COST_KEYS:
        if key in attrs:
            value = attrs[key]
            try:
                if isinstance(value, bool | Structured) or len(str(value)) > 64:
                    raise InvalidOperation
                # repr gives a double's shortest round-trip digits; Decimal keeps them exactly.
                number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
                if not number.is_finite() or abs(number) >= 10**15 or (number and number.adjusted() < -30):
                    raise InvalidOperation
            except InvalidOperation:
                notes.append(("bad_value", f"{key} is not a decimal amount"))
                continue
            if number < 0:  # a negative step would shrink the run's cost under a spend cap
                notes.append(("bad_value", f"{key} is negative"))
                continue
            return format(number, "f")
    return None


# ---------------------------------------------------------------- structure, order, hashes


def normalise(spans: Iterable[Span], *, keep_texts: bool = False) -> NormalisedTrail:
    """The ordered, hashed trail of decoded spans, and every problem found on the way.

    Plan: 1. draft each span's record; 2. group by (trace id, span id): identical copies are
    dropped, differing ones all kept, both flagged; 3. resolve parents within the trace —
    absent ones are flagged and the span kept as a root; 4. find parent cycles with an
    iterative walk (each span visited once: O(n), no recursion); 5. order by (start, trace
    id, span id, then content for differing duplicates), number from 1, hash, bundle.
    """
    texts: dict[str, bytes] | None = {} if keep_texts else None
    problems: list[Problem] = []
    flags: dict[int, set[str]] = {}  # sparse: most spans have nothing wrong
    drafts: list[StepRecord] = []
    starts: list[int] = []
    # 1. (the spans are not kept: a 50 MB body's worth of them need not all be alive at once)
    for span in spans:
        draft, notes = draft_step(span, texts)
        drafts.append(draft)
        starts.append(span.start_ns)
        if notes:
            flags[len(drafts) - 1] = {code for code, _ in notes}
        problems.extend(Problem(code=c, trace_id=span.trace_id, span_id=span.span_id, detail=d) for c, d in notes)
    # 2.
    first: dict[tuple[str, str], int] = {}
    copies: dict[int, list[int]] = {}
    for index, draft in enumerate(drafts):
        key = (draft.trace_id, draft.span_id)
        if key in first:
            copies.setdefault(first[key], []).append(index)
        else:
            first[key] = index
    dropped: set[int] = set()
    tiebreak: dict[int, bytes] = {}
    for head, others in copies.items():
        group = [head, *others]
        identical = [i for i in others if drafts[i] == drafts[head]]
        dropped.update(identical)
        kept = [i for i in group if i not in dropped]
        if len(kept) == 1:
            continue  # only identical copies: an exporter's retry (OTLP exporters retry), not a problem
        for i in kept:
            flags.setdefault(i, set()).add("duplicate_span_id")
            tiebreak[i] = msgspec.json.encode(drafts[i])
        d = drafts[head]
        detail = f"span id appears {len(group)} times in trace {d.trace_id}"
        if identical:
            detail += f"; {len(identical)} identical copies dropped"
        detail += f"; {len(kept)} differing versions kept"
        problems.append(Problem(code="duplicate_span_id", trace_id=d.trace_id, span_id=d.span_id, detail=detail))
    # 3.
    parent = [-1] * len(drafts)
    for index, draft in enumerate(drafts):
        if draft.parent_span_id is None or index in dropped:
            continue
        found = first.get((draft.trace_id, draft.parent_span_id))
        if found is None:
            flags.setdefault(index, set()).add("missing_parent")
            problems.append(
                Problem(
                    code="missing_parent",
                    trace_id=draft.trace_id,
                    span_id=draft.span_id,
                    detail=f"parent {draft.parent_span_id} is not in the payload; kept as a root",
                )
            )
        else:
            parent[index] = found
    # 4.
    for cycle in _cycles(parent):
        for i in cycle:
            flags.setdefault(i, set()).add("cycle")
        d = drafts[cycle[0]]
        if len(cycle) == 1:
            detail = "span names itself as its parent"
        else:
            shown = " -> ".join(drafts[i].span_id for i in cycle[:8])
            more = f" -> ... ({len(cycle) - 8} more)" if len(cycle) > 8 else ""
            detail = f"parent cycle of {len(cycle)} spans: {shown}{more} -> {d.span_id}"
        problems.append(Problem(code="cycle", trace_id=d.trace_id, span_id=d.span_id, detail=detail))
    # 5.
    order = sorted(
        (i for i in range(len(drafts)) if i not in dropped),
        key=lambda i: (starts[i], drafts[i].trace_id, drafts[i].span_id, tiebreak.get(i, b"")),
    )
    steps: list[StepRecord] = []
    hashes: list[Digest] = []
    replace = msgspec.structs.replace
    for seq, index in enumerate(order, 1):
        step = (
            replace(drafts[index], seq=seq, flags=sorted(flags[index]))
            if index in flags
            else replace(drafts[index], seq=seq)
        )
        hashes.append(step_hash(step))
        steps.append(step)
    summary = summarise(steps, hashes)
    return NormalisedTrail(
        steps=steps,
        step_hashes=hashes,
        bundle_sha256=Digest(summary.bundle_sha256),
        summary=summary,
        # In a fixed order, once each: dropped identical copies repeat their span's problems.
        problems=sorted(dict.fromkeys(problems), key=lambda p: (p.trace_id, p.span_id, p.code, p.detail)),
        texts=texts or {},
    )


def _cycles(parent: list[int]) -> list[list[int]]:
    """Every cycle in a parent-pointer graph (-1: no parent), each listed from its first-seen
    member along parent links. Iterative three-colour walk: each node is entered once."""
    state = bytearray(len(parent))  # 0 unseen, 1 on the current path, 2 done
    found: list[list[int]] = []
    for start in range(len(parent)):
        path: list[int] = []
        node = start
        while node != -1 and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node != -1 and state[node] == 1:
            found.append(path[path.index(node) :])
        for member in path:
            state[member] = 2
    return found
