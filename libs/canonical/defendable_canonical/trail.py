"""The execution trail: one hashed record per step of a run, and one bundle hash over them all.

A step is one span of the agent's OTLP trace, normalised (defendable_canonical.otlp_steps) into a
`StepRecord`. The constructions below are the whole contract an outsider needs:

* ``step_bytes(step) = JCS(step)`` — RFC 8785 canonical JSON of the record as msgspec writes
  it, fields at their default (None, []) left out (``omit_defaults``), so a later schema
  version that adds a field with a default leaves every earlier step hash unchanged.
* ``step_hash(step) = "sha256:" + hex(SHA-256(step_bytes(step)))``.
* ``bundle_hash([h1, …, hn]) = "sha256:" + hex(SHA-256(JCS({"schema": TRAIL_SCHEMA,
  "steps": [h1, …, hn]})))`` — a flat hash over the ordered step hashes (the peer design's
  "project bundle", docs/REFERENCES), in `seq` order; the schema string separates it from
  every other hash in the project. For two steps the hashed bytes are exactly::

      {"schema":"defendablecloud.trail/v1","steps":["sha256:…","sha256:…"]}

  An empty trail is well defined: ``{"schema":"defendablecloud.trail/v1","steps":[]}``.

One step is shown and verified on its own (`step_problem`) by handing over the step, the
ordered list of step hashes (64 hex characters each — small beside the steps) and the bundle
hash the receipt names: the step's hash must sit at position ``seq`` and the list must hash
to the bundle. No other step's content is needed.

Times are unix nanoseconds as *decimal strings* (``"1718000000123456789"``), not integers:
today's unix nanos (~1.7e18) lie far beyond ±(2^53-1), the I-JSON range RFC 8785 requires, and
this is also how OTLP/JSON itself writes ``startTimeUnixNano`` (the proto3 JSON mapping of
int64). A string keeps the OTLP value exactly, costs nothing to produce, and sorts correctly
once parsed (`start_unix_nano`). RFC 3339 text would be readable but needs a nanosecond
formatter Python lacks, and is one more conversion for a verifier to get right.

Tool arguments and results are *not* in the record: only the SHA-256 of their exact bytes
(the UTF-8 text of a string attribute). A step can then be shown without disclosing them,
and the texts, when kept, are evidence blobs stored content-addressed under the very same
digest (the OTLP normaliser can hand them back for that); a verifier re-hashes the blob.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Final, Literal

import msgspec

from .digest import Digest, is_digest, sha256_digest
from .jcs import canonical_struct

TRAIL_SCHEMA: Final = "defendablecloud.trail/v1"

StepKind = Literal["agent", "tool", "llm", "retrieval", "other"]
STEP_KINDS: Final[tuple[StepKind, ...]] = ("agent", "tool", "llm", "retrieval", "other")
StepStatus = Literal["ok", "error", "unset"]


class StepRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One step of a run's execution trail; hashed on its own (`step_hash`).

    `flags` names what the normaliser found wrong with this step (codes of
    `defendable_canonical.otlp_steps.ProblemCode`: missing_parent, cycle, duplicate_span_id,
    time_inverted, …), sorted; hashed with the step so a shown step carries its own caveats.
    """

    seq: int  # 1-based position in the trail; the step's hash sits at step_hashes[seq - 1]
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    parent_span_id: str | None = None  # as the span claims it, even when that parent is absent
    kind: StepKind
    operation: str | None = None  # the raw gen_ai.operation.name / openinference.span.kind that chose `kind`
    name: str
    service: str | None = None  # resource service.name
    agent_name: str | None = None
    model: str | None = None
    provider: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    arguments_sha256: str | None = None  # the step's input: tool arguments, or a model call's input
    result_sha256: str | None = None  # the step's output: tool result, or a model call's output
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: str | None = None  # decimal string as reported (openinference llm.cost.total is USD)
    start_ns: str  # unix nanoseconds, decimal digits
    end_ns: str
    status: StepStatus
    status_message: str | None = None
    error_type: str | None = None
    flags: list[str] = []

    @property
    def start_unix_nano(self) -> int:
        return int(self.start_ns)

    @property
    def end_unix_nano(self) -> int:
        return int(self.end_ns)


class KindCounts(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    agent: int = 0
    tool: int = 0
    llm: int = 0
    retrieval: int = 0
    other: int = 0


class TrailSummary(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a receipt carries about a run's trail: the bundle hash and the figures beside it."""

    schema: str = TRAIL_SCHEMA
    bundle_sha256: str
    steps: int
    trace_ids: list[str]  # sorted, distinct
    kinds: KindCounts  # steps per kind
    start_ns: str | None  # earliest step start; None for an empty trail
    end_ns: str | None  # latest step end
    input_tokens: int
    output_tokens: int
    cost: str | None  # sum of the steps' reported costs, None when none reported one
    errors: int  # steps with status "error"
    problems: list[str]  # distinct flag codes over all steps, sorted


_DIGEST_LIST: Final = re.compile(r"sha256:[0-9a-f]{64}(?:,sha256:[0-9a-f]{64})*")


class _Bundle(msgspec.Struct, frozen=True, gc=False):
    schema: str
    steps: list[str]


def step_bytes(step: StepRecord) -> bytes:
    """RFC 8785 canonical bytes of one step: what is hashed, and what to store."""
    return canonical_struct(step)


def step_hash(step: StepRecord) -> Digest:
    return sha256_digest(canonical_struct(step))


def decode_step(data: bytes) -> StepRecord:
    """A stored step from its canonical bytes; raises msgspec.ValidationError / DecodeError."""
    return msgspec.json.decode(data, type=StepRecord)


def bundle_hash(step_hashes: Sequence[str]) -> Digest:
    """SHA-256 over JCS({"schema": TRAIL_SCHEMA, "steps": [ordered step hashes]}).

    Every entry must be a ``sha256:<64 lowercase hex>`` digest; raises ValueError otherwise,
    since a malformed entry would make the bundle unverifiable by anyone else.
    """
    hashes = list(step_hashes)
    # One C-level match over all of them; only a failure pays for finding which one.
    if hashes and not _DIGEST_LIST.fullmatch(",".join(hashes)):
        for index, digest in enumerate(hashes):
            if not is_digest(digest):
                raise ValueError(f"step hash {index + 1} is not a sha256 digest: {digest[:80]!r}")
    return sha256_digest(canonical_struct(_Bundle(schema=TRAIL_SCHEMA, steps=hashes)))


def step_problem(step: StepRecord, step_hashes: Sequence[str], bundle: str) -> str | None:
    """Why one step does not verify against a bundle, or None when it does.

    Plan: 1. the ordered hashes must hash to the bundle; 2. the step's seq must name a
    position in them; 3. the step's own hash must be the one at that position.
    """
    # 1.
    try:
        computed = bundle_hash(step_hashes)
    except ValueError as e:
        return str(e)
    if computed != bundle:
        return f"the {len(step_hashes)} step hashes hash to {computed}, not to the bundle {bundle}"
    # 2.
    if not 1 <= step.seq <= len(step_hashes):
        return f"step seq {step.seq} is outside the trail's {len(step_hashes)} steps"
    # 3.
    own = step_hash(step)
    listed = step_hashes[step.seq - 1]
    if own != listed:
        return f"step {step.seq} hashes to {own}, but the trail lists {listed} at that position"
    return None


def verify_step(step: StepRecord, step_hashes: Sequence[str], bundle: str) -> bool:
    """True when `step` is, byte for byte, step `seq` of the trail whose bundle hash is `bundle`."""
    return step_problem(step, step_hashes, bundle) is None


def summarise(steps: Sequence[StepRecord], step_hashes: Sequence[str] | None = None) -> TrailSummary:
    """The receipt's view of a trail, in seq order; `step_hashes` saves re-hashing when known."""
    hashes = step_hashes if step_hashes is not None else [step_hash(s) for s in steps]
    if len(hashes) != len(steps):
        raise ValueError(f"{len(steps)} steps but {len(hashes)} step hashes")
    kinds: dict[str, int] = dict.fromkeys(STEP_KINDS, 0)
    traces: set[str] = set()
    problems: set[str] = set()
    start: int | None = None
    end: int | None = None
    input_tokens = output_tokens = errors = 0
    cost: Decimal | None = None
    for step in steps:  # one pass: a trail may hold 100,000 steps
        kinds[step.kind] += 1
        traces.add(step.trace_id)
        begins, ends = int(step.start_ns), int(step.end_ns)
        start = begins if start is None or begins < start else start
        end = ends if end is None or ends > end else end
        input_tokens += step.input_tokens or 0
        output_tokens += step.output_tokens or 0
        errors += step.status == "error"
        if step.cost is not None:
            cost = Decimal(step.cost) + (cost or 0)
        if step.flags:
            problems.update(step.flags)
    return TrailSummary(
        bundle_sha256=bundle_hash(hashes),
        steps=len(steps),
        trace_ids=sorted(traces),
        kinds=KindCounts(**kinds),
        start_ns=None if start is None else str(start),
        end_ns=None if end is None else str(end),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=None if cost is None else format(cost, "f"),
        errors=errors,
        problems=sorted(problems),
    )
