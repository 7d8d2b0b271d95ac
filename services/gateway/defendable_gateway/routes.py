"""HTTP handlers. Thin: authenticate, validate, record, publish a command, answer.

Every state change goes out as an `ingest.*` command for intake to admit; the
handlers answer 202 and the read model catches up from `run.>` events.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypedDict

import msgspec
from asyncpg import Pool, UniqueViolationError
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Parameter
from litestar.plugins.problem_details import ProblemDetailsException

from defendable_canonical import jcs
from defendable_canonical.events import MAX_INLINE_EVIDENCE_BYTES, AttachEvidence, Command, CreateRun, Decide, Submit
from defendable_canonical.model import AgentProfile, FlightSheetRef
from defendable_canonical.subjects import LEDGER_KEYS, LEDGER_VERIFY, REFEREE_FLIGHT_SHEET
from defendable_runtime.settings import Settings
from defendable_runtime.storage import BlobStore, BlobTooLarge

from . import lane_lock, store, usage
from .auth import Principal, Role, hash_key, parse_bearer
from .org_settings import get_org_settings
from .schemas import (
    Accepted,
    CreateRunRequest,
    DecisionRequest,
    EvidenceAccepted,
    EvidenceNote,
    ReceiptDoc,
    ReceiptLinks,
    RunAccepted,
)
from .uploads import MultipartFile, UploadError
from .waiters import MAX_WAIT_S, RECHECK_S, waiters

MAX_SUBMISSION_BYTES = 256 * 1024
MAX_NOTE_BYTES = 80 * 1024
KEY_CACHE_S = 30.0
_RUN_ID = re.compile(r"run_[0-9a-f]{32}")
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
_SHA_HEX = re.compile(r"(sha256:)?[0-9a-f]{64}")


class Bus(Protocol):
    async def command(self, command: Command) -> None: ...
    # `timeout` is the NATS request-reply timeout, which a reply-less service turns into a TimeoutError.
    async def ask(self, subject: str, body: bytes, timeout: float) -> bytes: ...  # noqa: ASYNC109


@dataclass
class Resources:
    settings: Settings
    pool: Pool
    blobs: BlobStore
    bus: Bus
    keys: dict[str, tuple[float, Principal | None]]
    sheets: dict[str, tuple[float, dict[str, Any]]]


class _Holder:
    res: Resources


holder = _Holder()


def problem(status: int, detail: str, title: str | None = None) -> ProblemDetailsException:
    return ProblemDetailsException(status_code=status, detail=detail, title=title)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------- auth


async def require_key(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: runs before the body is read, so an unauthenticated caller learns nothing else."""
    role: Role | None = handler.opt.get("role")
    connection.state["principal"] = await authenticate(connection, role)


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state["principal"]
    return principal


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any], role: Role | None = None) -> Principal:
    res = holder.res
    key = parse_bearer(connection.headers.get("authorization"))
    if key is None:
        raise problem(401, "send `Authorization: Bearer <api key>`; create keys with `defendable admin create-org`")
    digest = hash_key(key)
    cached = res.keys.get(digest)
    if cached is not None and cached[0] > time.monotonic():
        principal = cached[1]
    else:
        row = await store.find_key(res.pool, digest)
        principal = None if row is None else Principal(**row)
        if len(res.keys) > 10_000:
            res.keys.clear()
        res.keys[digest] = (time.monotonic() + KEY_CACHE_S, principal)
    if principal is None:
        raise problem(401, "this API key is unknown or revoked")
    if role is not None and not principal.may(role):
        raise problem(403, f"this action needs the {role} role; this key has {principal.role}")
    return principal


async def own_run(principal: Principal, run_id: str) -> dict[str, Any]:
    """The run, if it belongs to the caller's org. Another org's run is simply not found."""
    run = None if not _RUN_ID.fullmatch(run_id) else await store.get_run(holder.res.pool, principal.org_id, run_id)
    if run is None:
        raise problem(404, f"no run {run_id[:80]} in this organisation")
    return run


async def own_receipt(principal: Principal, receipt_hash: str) -> dict[str, Any]:
    """The receipt's row, if it is of the caller's org. Another org's receipt is simply not found."""
    row = await store.get_receipt(holder.res.pool, receipt_hash) if _HASH.fullmatch(receipt_hash) else None
    if row is None or row["org_id"] != principal.org_id:
        raise problem(404, f"no receipt {receipt_hash[:80]} in this organisation")
    return row


class CommandBase(TypedDict):
    """The fields every command carries (see `Command`)."""

    command_id: str
    org_id: str
    run_id: str
    issued_at: str
    actor: str


def command_base(principal: Principal, run_id: str) -> CommandBase:
    return {
        "command_id": "cmd_" + secrets.token_hex(16),
        "org_id": principal.org_id,
        "run_id": run_id,
        "issued_at": now_iso(),
        "actor": principal.key_id,
    }


# ---------------------------------------------------------------------------- runs


async def flight_sheet(ref: str) -> dict[str, Any]:
    """Ask the referee (the library's owner) about a sheet; cached briefly."""
    res = holder.res
    cached = res.sheets.get(ref)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        answer = msgspec.json.decode(
            await res.bus.ask(REFEREE_FLIGHT_SHEET, msgspec.json.encode({"ref": ref}), timeout=5.0)
        )
    except TimeoutError as exc:
        raise problem(503, "the referee did not answer; retry shortly") from exc
    if answer.get("found"):
        res.sheets[ref] = (time.monotonic() + 60.0, answer)
    return dict(answer)


@post("/runs", status_code=202, summary="Create a run", guards=[require_key], opt={"role": "submitter"})
async def create_run(request: Request[Any, Any, Any], data: CreateRunRequest) -> RunAccepted:
    principal = principal_of(request)
    sheet = await flight_sheet(data.flight_sheet)
    if not sheet.get("found"):
        raise problem(422, str(sheet.get("error") or f"unknown flight sheet {data.flight_sheet}"))
    if sheet["lane"] != data.lane:
        raise problem(422, f"flight sheet {data.flight_sheet} is for lane {sheet['lane']}, not {data.lane}")
    await lane_lock.refuse_if_locked(holder.res.pool, principal.org_id, data.lane, data.agent_profile)  # 423
    run_id = "run_" + secrets.token_hex(16)
    await store.record_requested_run(
        holder.res.pool, principal.org_id, run_id, data.project, data.lane, data.flight_sheet
    )
    profile = data.agent_profile
    await holder.res.bus.command(
        CreateRun(
            **command_base(principal, run_id),
            project=data.project,
            lane=data.lane,
            flight_sheet=FlightSheetRef(id=sheet["id"], version=sheet["version"], sha256=sheet["sha256"]),
            agent_profile=AgentProfile(
                model=profile.model, harness=profile.harness, tools=profile.tools, runtime=profile.runtime
            ),
            assignment=data.assignment,
        )
    )
    return RunAccepted(run_id=run_id, status="requested")


def require_open(run: dict[str, Any], what: str) -> None:
    if run["stage"] not in ("requested", "created"):
        raise problem(409, f"run {run['run_id']} is {run['stage']}: {what} is only accepted before submission")


def _tagged_as_trail(media_type: str) -> bool:
    """Trail evidence is tagged by a media-type parameter that only /v1/traces may set."""
    return any(p.strip().replace(" ", "").lower() == 'profile="otlp-traces"' for p in media_type.split(";")[1:])


def _declared_hash_problem(declared: str, sha: str, size: int) -> ProblemDetailsException | None:
    """Why a client's declared SHA-256 refuses the bytes it sent (None: it matches)."""
    if not _SHA_HEX.fullmatch(declared):
        return problem(400, "a declared sha256 must be 64 lowercase hex characters, optionally prefixed sha256:")
    if declared.removeprefix("sha256:") != sha:
        return problem(
            422,
            f"evidence bytes hash to sha256:{sha} ({size} bytes) but were declared as {declared}; nothing was stored",
        )
    return None


@post(
    "/runs/{run_id:str}/evidence",
    status_code=202,
    request_max_body_size=None,
    summary="Attach evidence",
    guards=[require_key],
    opt={"role": "submitter"},
)
async def add_evidence(request: Request[Any, Any, Any], run_id: str) -> EvidenceAccepted:
    """Multipart `file` (+ optional `sha256`, `name`), a JSON note/url/observation, or a raw body."""
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    require_open(run, "evidence")
    res = holder.res
    evidence_id = "ev_" + secrets.token_hex(12)
    staging_key = f"staging/{principal.org_id}/{evidence_id}"
    content_type = request.headers.get("content-type", "application/octet-stream")
    declared = request.headers.get("x-content-sha256")
    limit = res.settings.max_evidence_bytes
    inline_max = MAX_INLINE_EVIDENCE_BYTES  # small evidence rides in the command: no S3 staging round trips
    kind = "file"
    try:
        if content_type.startswith("multipart/form-data"):
            form = MultipartFile(content_type)
            sha, size, inline = await res.blobs.put_stream(
                staging_key, form.file_chunks(request.stream()), limit, inline_max=inline_max
            )
            name = form.fields.get("name") or form.filename or "upload"
            media_type = form.file_media_type
            declared = form.fields.get("sha256") or declared
        elif content_type.startswith("application/json"):
            body = await request.body()
            if len(body) > MAX_NOTE_BYTES:
                raise problem(413, f"a JSON evidence note may be at most {MAX_NOTE_BYTES} bytes; upload a file")
            note = msgspec.json.decode(body, type=EvidenceNote)
            data = jcs.canonicalize(msgspec.to_builtins(note))
            name, media_type, kind = note.name, "application/json", note.kind
            sha, size, inline = await res.blobs.put_stream(staging_key, _one(data), limit, inline_max=inline_max)
        else:
            name = request.query_params.get("name") or "upload"
            media_type = content_type.split(";")[0].strip() or "application/octet-stream"
            sha, size, inline = await res.blobs.put_stream(staging_key, request.stream(), limit, inline_max=inline_max)
    except BlobTooLarge as exc:
        await res.blobs.delete(staging_key)
        raise problem(413, f"evidence exceeds the limit of {exc.limit} bytes") from exc
    except UploadError as exc:
        await res.blobs.delete(staging_key)
        raise problem(400, str(exc)) from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise problem(400, f"invalid evidence note: {exc}") from exc
    if _tagged_as_trail(media_type):
        if inline is None:
            await res.blobs.delete(staging_key)
        raise problem(
            400,
            'OTLP traces are sent to POST /v1/traces, which checks them; a file may not claim profile="otlp-traces"',
        )
    if len(name) > 200:
        name = name[:200]
    if declared is not None and (refused := _declared_hash_problem(declared.strip(), sha, size)) is not None:
        if inline is None:  # inline bytes were never staged
            await res.blobs.delete(staging_key)
        raise refused
    base = command_base(principal, run_id)
    await store.record_pending_evidence(
        res.pool, principal.org_id, run_id, evidence_id, name, media_type, kind, size, "sha256:" + sha,
        base["command_id"],
    )  # fmt: skip
    await res.bus.command(
        AttachEvidence(
            **base,
            evidence_id=evidence_id,
            kind=kind,  # type: ignore[arg-type]  # one of the EvidenceKind literals by construction
            name=name,
            media_type=media_type,
            size=size,
            sha256="sha256:" + sha,
            staging_key=None if inline is not None else staging_key,
            content=inline,
        )
    )
    return EvidenceAccepted(evidence_id=evidence_id, sha256="sha256:" + sha, size=size)


async def _one(data: bytes) -> Any:
    yield data


@post(
    "/runs/{run_id:str}/submission",
    status_code=202,
    request_max_body_size=None,  # bounded by read_bounded, whose 413 names the limit
    summary="Submit",
    guards=[require_key],
    opt={"role": "submitter"},
)
async def submit(request: Request[Any, Any, Any], run_id: str) -> Accepted:
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    require_open(run, "a submission")
    declared = usage.declared_usage(request.headers.get(usage.HEADER))  # beside the submission (usage.py)
    body = await read_bounded(request, MAX_SUBMISSION_BYTES, "a submission")
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise problem(400, f"the submission is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise problem(422, "the submission must be a JSON object matching the flight sheet's output schema")
    try:
        jcs.canonicalize_json(body)
    except jcs.CanonicalError as exc:
        raise problem(422, f"the submission cannot be canonicalised (RFC 8785): {exc}") from exc
    evidence = await store.run_evidence(holder.res.pool, principal.org_id, run_id)
    await holder.res.bus.command(
        Submit(
            **command_base(principal, run_id),
            submission=msgspec.Raw(body),
            evidence_ids=[e["evidence_id"] for e in evidence if e["status"] in ("pending", "attached")],
            usage=declared,
        )
    )
    return Accepted(run_id=run_id, status="submitting")


async def read_bounded(request: Request[Any, Any, Any], limit: int, what: str) -> bytes:
    """The whole body, refused with a 413 that names the limit as soon as it passes `limit` bytes."""
    too_large = problem(413, f"{what} may be at most {limit} bytes; this request is larger")
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def decide(request: Request[Any, Any, Any], run_id: str, data: DecisionRequest | None, decision: str) -> Accepted:
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    if run["stage"] in ("approved", "rejected", "minted", "rendered"):
        raise problem(409, f"run {run_id} was already decided ({run['stage']})")
    if run["stage"] != "checked":
        raise problem(409, f"run {run_id} has no verdict yet (stage {run['stage']}); decide once it is checked")
    # The org's redaction setting at approval is the one its receipt is minted under.
    redact = (await get_org_settings(holder.res.pool, principal.org_id)).redact if decision == "approve" else []
    await holder.res.bus.command(
        Decide(
            **command_base(principal, run_id),
            decision=decision,  # type: ignore[arg-type]  # "approve" | "reject" from the two routes below
            approver=principal.label,
            note=data.note if data else "",
            redact=redact,
        )
    )
    return Accepted(run_id=run_id, status=f"{decision} requested")


@post(
    "/runs/{run_id:str}/approve",
    status_code=202,
    summary="Approve a checked run",
    guards=[require_key],
    opt={"role": "approver"},
)
async def approve(request: Request[Any, Any, Any], run_id: str, data: DecisionRequest | None = None) -> Accepted:
    return await decide(request, run_id, data, "approve")


@post(
    "/runs/{run_id:str}/reject",
    status_code=202,
    summary="Reject a checked run",
    guards=[require_key],
    opt={"role": "approver"},
)
async def reject(request: Request[Any, Any, Any], run_id: str, data: DecisionRequest | None = None) -> Accepted:
    return await decide(request, run_id, data, "reject")


def receipt_doc(row: dict[str, Any]) -> ReceiptDoc:
    base = holder.res.settings.public_base_url
    h = row["receipt_hash"]
    return ReceiptDoc(
        receipt_hash=h,
        seq=row["seq"],
        parent_hash=row["parent_hash"],
        run_id=row["run_id"],
        payload=msgspec.Raw(bytes(row["payload"])),
        signature=msgspec.Raw(bytes(row["signature"])),
        links=ReceiptLinks(
            share=f"{base}/share/{row['share_token']}", pdf=f"{base}/receipts/{h}.pdf", json=f"{base}/receipts/{h}"
        ),
        rendered=row["pdf_key"] is not None,
    )


def raw_or_none(data: bytes | None) -> msgspec.Raw | None:
    return None if data is None else msgspec.Raw(bytes(data))


@get("/runs/{run_id:str}", summary="A run and everything known about it", guards=[require_key])
async def get_run(
    request: Request[Any, Any, Any],
    run_id: str,
    until: str | None = Parameter(default=None, description="long-poll: answer once the run reaches this stage"),
    # `timeout` is the HTTP long-poll query parameter (part of the API), not an asyncio timeout.
    timeout: float = Parameter(default=10.0, gt=0, le=MAX_WAIT_S, description="long-poll limit in seconds"),  # noqa: ASYNC109
) -> dict[str, Any]:
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    if until is not None:
        run = await wait_for_stage(principal, run, until, timeout)
    receipt = None
    if run["receipt_hash"]:
        row = await store.get_receipt(holder.res.pool, run["receipt_hash"])
        receipt = None if row is None else receipt_doc(row)
    return {
        "run_id": run_id,
        "project": run["project"],
        "lane": run["lane"],
        "flight_sheet": run["flight_sheet"],
        "stage": run["stage"],
        "created_at": run["created_at"].isoformat(),
        "evidence": await store.run_evidence(holder.res.pool, principal.org_id, run_id),
        "submission_sha256": run["submission_sha256"],
        "findings": raw_or_none(run["findings"]),
        "verdict": raw_or_none(run["verdict"]),
        "execution_trail": raw_or_none(run["trail"]),
        "approval": raw_or_none(run["approval"]),
        "receipt": receipt,
        "refusals": [msgspec.Raw(bytes(r)) for r in run["refusals"]],
    }


# `timeout` is the HTTP long-poll limit from the request, spent over several waits.
async def wait_for_stage(principal: Principal, run: dict[str, Any], until: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Hold the request until the run reaches `until` (or a terminal stage), at most `timeout` seconds."""
    return await long_poll(principal, run, until, timeout, stages=store.STAGES, id_key="run_id", reload=own_run)


async def long_poll(
    principal: Principal,
    row: dict[str, Any],
    until: str,
    timeout: float,  # noqa: ASYNC109 - the HTTP long-poll limit, spent over several waits
    *,
    stages: Mapping[str, int],
    id_key: str,
    reload: Callable[[Principal, str], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """`row` once its stage reaches `until` or ends (rejected, refused), re-read on each wake-up;
    shared by runs and cooks, whose stages differ but whose read-model rows wait alike."""
    if until not in stages:
        raise problem(400, f"until must be one of {', '.join(stages)}")
    if waiters.full():
        raise problem(503, "too many requests are waiting; poll without `until` or retry shortly")
    deadline = time.monotonic() + timeout
    target = stages[until]
    while row["stage_rank"] < target and row["stage"] not in ("rejected", "refused"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        await waiters.wait(principal.org_id, row[id_key], min(left, RECHECK_S))
        row = await reload(principal, row[id_key])
    return row


@get("/runs", summary="List runs, newest first, with cursor paging", guards=[require_key])
async def list_runs(
    request: Request[Any, Any, Any],
    project: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = Parameter(default=50, ge=1, le=200),
) -> dict[str, Any]:
    principal = principal_of(request)
    if status is not None and status not in store.STAGES:
        raise problem(400, f"status must be one of {', '.join(store.STAGES)}")
    after: tuple[datetime, str] | None = None
    if cursor:
        try:
            # asyncpg binds timestamptz only from a datetime, so decode the cursor's time into one here.
            created_at, run_id = msgspec.json.decode(
                base64.urlsafe_b64decode(cursor.encode()), type=tuple[datetime, str]
            )
            after = (created_at, run_id)
        except Exception as exc:
            raise problem(400, "cursor is not one this API issued; pass next_cursor back unchanged") from exc
    rows = await store.list_runs(holder.res.pool, principal.org_id, project, status, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "runs": [
            {
                "run_id": r["run_id"],
                "project": r["project"],
                "lane": r["lane"],
                "flight_sheet": r["flight_sheet"],
                "stage": r["stage"],
                "created_at": r["created_at"].isoformat(),
                "receipt_hash": r["receipt_hash"],
            }
            for r in rows
        ],
        "next_cursor": store.encode_cursor(rows[-1]["created_at"], rows[-1]["run_id"]) if more else None,
    }


@post(
    "/runs/{run_id:str}/receipt",
    summary="The run's receipt: 200 once minted, 202 while minting",
    guards=[require_key],
)
async def run_receipt(request: Request[Any, Any, Any], run_id: str) -> Response[Any]:
    principal = principal_of(request)
    run = await own_run(principal, run_id)
    if run["receipt_hash"]:
        row = await store.get_receipt(holder.res.pool, run["receipt_hash"])
        if row is not None:
            return Response(receipt_doc(row), status_code=200)
    if run["stage"] == "approved":
        return Response({"run_id": run_id, "status": "minting"}, status_code=202)
    raise problem(409, f"run {run_id} is {run['stage']}: only an approved run gets a receipt")


@get("/receipts/{ref:str}", summary="A receipt as JSON, or its PDF with a .pdf suffix", guards=[require_key])
async def get_receipt(request: Request[Any, Any, Any], ref: str) -> Response[Any]:
    principal = principal_of(request)
    pdf = ref.endswith(".pdf")
    receipt_hash = ref.removesuffix(".pdf")
    row = await own_receipt(principal, receipt_hash)
    if not pdf:
        return Response(receipt_doc(row))
    if row["pdf_key"] is None:
        raise problem(404, "the PDF is not rendered yet; retry in a moment")
    data = await holder.res.blobs.get_bytes(row["pdf_key"])
    if data is None:
        raise problem(404, "the PDF is missing from storage; it is regenerable from the receipt JSON")
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{receipt_hash[7:23]}.pdf"'},
    )


@get(
    "/.well-known/defendable-keys.json",
    summary="Every public key the ledger has signed receipts with: the active one and the retired ones",
)
async def ledger_keys() -> Response[Any]:
    answer = await ledger_key_set()
    # Verifiers may cache it briefly; a rotation shows within the minute.
    return Response(msgspec.Raw(answer), media_type="application/json", headers={"Cache-Control": "public, max-age=60"})


async def ledger_key_set() -> bytes:
    """The ledger's key set (defendable-keys.json) as it answers it; 503 when it does not."""
    try:
        return await holder.res.bus.ask(LEDGER_KEYS, b"{}", 10.0)
    except TimeoutError as exc:
        raise problem(503, "the ledger did not answer for its key set; retry shortly") from exc


@get("/ledger/verify", summary="The ledger verifies this org's chain over its own table", guards=[require_key])
async def ledger_verify(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = principal_of(request)
    try:
        answer = await holder.res.bus.ask(LEDGER_VERIFY, msgspec.json.encode({"org_id": principal.org_id}), 60.0)
    except TimeoutError as exc:
        raise problem(503, "the ledger did not answer; retry shortly") from exc
    return Response(msgspec.Raw(answer), media_type="application/json")


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, UniqueViolationError)
