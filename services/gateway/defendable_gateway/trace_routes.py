"""OTLP/HTTP trace ingest, a run's execution trail, and its verdict as OTel evaluation events.

`POST /v1/traces` is the OTLP/HTTP endpoint an agent's SDK exports to
(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=<base>/v1/traces), with two headers
(OTEL_EXPORTER_OTLP_TRACES_HEADERS): `Authorization: Bearer <submitter key>` and
`X-Defendable-Run: <run id>`. Each export becomes one evidence item of the run — the
exact bytes, content-addressed like any evidence, tagged `profile="otlp-traces"` — so
the receipt lists what was sent, and the referee derives the trail from those bytes.
The body is decoded here too, only to refuse what is not OTLP with a 4xx at once.

Answers follow OTLP/HTTP: 200 with an ExportTraceServiceResponse in the request's
encoding; `partial_success.error_message` carries trail problems (cycles, missing
parents…) as a warning, with no span rejected. Refusals are problem+json (4xx).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from defendable_canonical.digest import sha256_digest
from defendable_canonical.events import MAX_INLINE_EVIDENCE_BYTES, AttachEvidence
from defendable_canonical.model import Finding, Verdict
from defendable_canonical.otel_export import evaluation_events
from defendable_canonical.otlp import MAX_BODY_BYTES, OtlpRejected, format_of, inflate
from defendable_canonical.otlp_steps import NormalisedTrail, ingest
from defendable_canonical.trail import TrailSummary
from defendable_runtime.storage import BlobTooLarge

from . import store
from .routes import command_base, holder, own_run, principal_of, problem, read_bounded, require_key, require_open

RUN_HEADER = "x-defendable-run"
_SUFFIX = {"protobuf": "pb", "json": "json", "jsonl": "jsonl"}  # by format: every alias of one format alike
MAX_STEPS_PAGE = 1_000


@post(
    "/v1/traces",
    status_code=200,
    request_max_body_size=None,  # bounded by read_bounded (64 MiB) and inflate's own limit
    summary="OTLP/HTTP traces (protobuf, JSON or JSON Lines) as execution-trail evidence of a run",
    guards=[require_key],
    opt={"role": "submitter"},
)
async def otlp_traces(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = principal_of(request)
    run_id = request.headers.get(RUN_HEADER, "").strip()
    if not run_id:
        raise problem(400, "name the run these spans belong to: send the header X-Defendable-Run: <run id>")
    run = await own_run(principal, run_id)
    require_open(run, "trace evidence")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw = await read_bounded(request, MAX_BODY_BYTES, "an OTLP export")
    try:
        body = inflate(raw, request.headers.get("content-encoding"))
        trail = await asyncio.to_thread(ingest, body, media_type)  # CPU-bound: off the event loop
    except OtlpRejected as exc:
        raise problem(exc.status, f"not accepted as OTLP traces: {exc.detail}") from exc
    evidence_id = await _attach(principal, run_id, body, media_type)
    return _export_response(media_type, trail, evidence_id)


async def _attach(principal: Any, run_id: str, body: bytes, media_type: str) -> str:
    res = holder.res
    evidence_id = "ev_" + secrets.token_hex(12)
    staging_key = f"staging/{principal.org_id}/{evidence_id}"
    tagged = f'{media_type}; profile="otlp-traces"'
    try:
        sha, size, inline = await res.blobs.put_stream(
            staging_key, _one(body), res.settings.max_evidence_bytes, inline_max=MAX_INLINE_EVIDENCE_BYTES
        )
    except BlobTooLarge as exc:
        await res.blobs.delete(staging_key)
        raise problem(413, f"evidence exceeds the limit of {exc.limit} bytes") from exc
    name = f"otlp-traces-{evidence_id[3:11]}.{_SUFFIX[format_of(media_type) or 'protobuf']}"
    base = command_base(principal, run_id)
    await store.record_pending_evidence(
        res.pool, principal.org_id, run_id, evidence_id, name, tagged, "file", size, "sha256:" + sha,
        base["command_id"],
    )  # fmt: skip
    await res.bus.command(
        AttachEvidence(
            **base,
            evidence_id=evidence_id,
            kind="file",
            name=name,
            media_type=tagged,
            size=size,
            sha256="sha256:" + sha,
            staging_key=None if inline is not None else staging_key,
            content=inline,
        )
    )
    return evidence_id


async def _one(data: bytes) -> Any:
    yield data


def _export_response(media_type: str, trail: NormalisedTrail, evidence_id: str) -> Response[Any]:
    warning = _warning(trail)
    headers = {"X-Defendable-Evidence": evidence_id, "X-Defendable-Steps": str(len(trail.steps))}
    if format_of(media_type) == "protobuf":  # answered in the request's encoding, whichever alias named it
        message = ExportTraceServiceResponse()
        if warning:
            message.partial_success.error_message = warning
        return Response(message.SerializeToString(), media_type=media_type, headers=headers)
    doc: dict[str, Any] = {"partialSuccess": {"rejectedSpans": "0", "errorMessage": warning}} if warning else {}
    return Response(doc, media_type="application/json", headers=headers)


def _warning(trail: NormalisedTrail) -> str:
    if not trail.problems:
        return ""
    counts: dict[str, int] = {}
    for p in trail.problems:
        counts[p.code] = counts.get(p.code, 0) + 1
    listed = ", ".join(f"{code} ×{n}" for code, n in sorted(counts.items()))
    return f"accepted all spans; the trail has problems the referee will see: {listed}"


# ---------------------------------------------------------------------------- reading the trail


@get("/runs/{run_id:str}/trail", summary="The run's execution trail: summary and a page of steps", guards=[require_key])
async def run_trail(request: Request[Any, Any, Any], run_id: str, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    if offset < 0 or not 1 <= limit <= MAX_STEPS_PAGE:
        raise problem(400, f"offset must be ≥ 0 and limit 1..{MAX_STEPS_PAGE}")
    principal = principal_of(request)
    summary, steps = await _trail_of(await own_run(principal, run_id))
    page = steps[offset : offset + limit]
    return {
        "run_id": run_id,
        "execution_trail": summary,
        "step_hashes": [sha256_digest(line) for line in steps],
        "steps": [msgspec.Raw(line) for line in page],
        "offset": offset,
        "next_offset": offset + len(page) if offset + len(page) < len(steps) else None,
    }


@get(
    "/runs/{run_id:str}/trail/steps/{seq:int}",
    summary="One step with what verifies it on its own: its hash, the ordered hashes, the bundle hash",
    guards=[require_key],
)
async def run_trail_step(request: Request[Any, Any, Any], run_id: str, seq: int) -> dict[str, Any]:
    principal = principal_of(request)
    summary, steps = await _trail_of(await own_run(principal, run_id))
    if not 1 <= seq <= len(steps):
        raise problem(404, f"the trail has steps 1..{len(steps)}, not {seq}")
    line = steps[seq - 1]
    return {
        "step": msgspec.Raw(line),
        "step_hash": sha256_digest(line),
        "step_hashes": [sha256_digest(s) for s in steps],
        "bundle_sha256": summary.bundle_sha256,
        "verify": "sha256(JCS(step)) is step_hashes[seq-1]; sha256 of "
        '{"schema":"defendablecloud.trail/v1","steps":[...step_hashes]} in JCS is bundle_sha256',
    }


async def _trail_of(run: dict[str, Any]) -> tuple[TrailSummary, list[bytes]]:
    if run["trail"] is None or not run["trail_key"]:
        raise problem(404, f"run {run['run_id']} has no execution trail (no OTLP evidence was checked)")
    summary = msgspec.json.decode(bytes(run["trail"]), type=TrailSummary)
    data = await holder.res.blobs.get_bytes(run["trail_key"])
    if data is None:
        raise problem(404, "the trail's step records are missing from storage; they re-derive from the evidence")
    return summary, data.splitlines()  # each line is a step's canonical bytes: its hash is the step hash


@get(
    "/runs/{run_id:str}/otel",
    summary="The verdict as OTLP/JSON logs: gen_ai.evaluation.result events, for POSTing to any OTLP /v1/logs",
    guards=[require_key],
)
async def run_otel(request: Request[Any, Any, Any], run_id: str) -> Response[Any]:
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    if run["verdict"] is None:
        raise problem(409, f"run {run_id} is {run['stage']}: it has no verdict yet")
    verdict = msgspec.json.decode(bytes(run["verdict"]), type=Verdict)
    findings = msgspec.json.decode(bytes(run["findings"]), type=list[Finding])
    trace_id = None
    if run["trail"] is not None:
        trace_ids = msgspec.json.decode(bytes(run["trail"]), type=TrailSummary).trace_ids
        trace_id = trace_ids[0] if len(trace_ids) == 1 else None  # one agent trace: link the events to it
    checked = datetime.fromisoformat(run["checked_at"]) if run["checked_at"] else run["created_at"]
    checked_at = int(checked.timestamp() * 1000) * 1_000_000  # ms precision, as events carry it
    body = evaluation_events(verdict, run_id=run_id, time_unix_nano=checked_at, findings=findings, trace_id=trace_id)
    return Response(msgspec.Raw(body), media_type="application/json")
