"""Gateway: the HTTP API (Litestar) and the read model fed from `run.>` (FastStream).

Plan at start-up: connect PostgreSQL and apply the gateway's migrations, open
S3, start the broker (which starts the read-model consumer), declare streams.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from faststream.nats import PullSub
from litestar import Litestar, Request, Response, get
from litestar.exceptions import HTTPException, SerializationException
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from defendable_canonical.events import AnyEvent, Command, event_decoder
from defendable_runtime import db
from defendable_runtime.messaging import (
    RUNS,
    NatsBatchMessage,
    consumer,
    dead_letter,
    durable_subscriber,
    ensure_streams,
    make_broker,
    publish_command,
    settle,
)
from defendable_runtime.progress import holding
from defendable_runtime.settings import Settings, from_env
from defendable_runtime.storage import BlobStore

from . import (
    cook_routes,
    export_routes,
    incident_routes,
    package_routes,
    receipt_page,
    reveal_routes,
    routes,
    sheet_routes,
    store,
    tlog_routes,
    trace_routes,
)
from .waiters import waiters

log = logging.getLogger("defendable.gateway")
SERVICE = "gateway"

settings = from_env()
broker = make_broker(settings.nats_url)


class NatsBus:
    async def command(self, command: Command) -> None:
        await publish_command(broker, command)

    # `timeout` is the NATS request-reply timeout, handed to the broker (see `Bus`).
    async def ask(self, subject: str, body: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        """Request-reply to the owning service; no responder or no answer is a TimeoutError."""
        try:
            reply = await broker.request(body, subject, timeout=timeout)
        except NoRespondersError as exc:
            raise TimeoutError(f"no service answers {subject}") from exc
        data: bytes = reply.body
        return data


@durable_subscriber(
    broker,
    "run.>",
    RUNS,
    consumer("gateway", max_ack_pending=20_000),
    PullSub(batch_size=500, timeout=0.02, batch=True),
)
async def on_run_events(msg: NatsBatchMessage) -> None:
    raws: list[Msg] = list(msg.raw_message)
    with holding(raws):
        await fold(raws)


async def fold(raws: list[Msg]) -> None:
    """Fold events into the read model, a batch per transaction."""
    good: list[tuple[Msg, AnyEvent]] = []
    for raw in raws:
        try:
            good.append((raw, event_decoder.decode(raw.data)))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await dead_letter(broker, SERVICE, raw, f"undecodable event: {exc}")
            await raw.term()

    async def apply() -> None:
        async with routes.holder.res.pool.acquire() as conn, conn.transaction():
            for _, event in good:
                await store.apply_event(conn, event)
        waiters.notify({(event.org_id, event.run_id) for _, event in good})

    if good:
        await settle(broker, SERVICE, [raw for raw, _ in good], apply, infra_errors=db.INFRA_ERRORS)


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    pool = await db.create_pool(settings.database_url, max_size=20)
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    blobs = await BlobStore(settings).open()
    await blobs.ensure_bucket()
    routes.holder.res = routes.Resources(settings=settings, pool=pool, blobs=blobs, bus=NatsBus(), keys={}, sheets={})
    await ensure_streams(broker)  # before the read-model consumer starts
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()
        await blobs.close()
        await pool.close()


@get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="NATS, PostgreSQL and S3 are reachable")
async def readyz() -> Response[dict[str, Any]]:
    res = routes.holder.res
    checks: dict[str, str] = {}
    try:
        checks["nats"] = "ok" if await broker.ping(timeout=2.0) else "unreachable"
    except Exception as exc:
        checks["nats"] = f"unreachable: {exc!r}"
    try:
        await res.pool.fetchval("SELECT 1", timeout=2.0)
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"unreachable: {exc!r}"
    try:
        await res.blobs.ping()
        checks["s3"] = "ok"
    except Exception as exc:
        checks["s3"] = f"unreachable: {exc!r}"
    ok = all(v == "ok" for v in checks.values())
    return Response({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug or an outage: log it, and still answer problem+json without internals."""
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(
        {"type": "about:blank", "title": "Internal Server Error", "status": 500, "detail": "unexpected error; logged"},
        status_code=500,
        media_type="application/problem+json",
    )


def client_problem(exc: HTTPException) -> ProblemDetailsException:
    """Litestar's own 4xx (body decoding, validation, size limits) with a `detail` that says what to fix.

    The stock conversion puts the message in `title` and leaves `detail` as the bare
    status phrase ("Bad Request"), which tells a caller nothing.
    """
    detail = exc.detail
    if isinstance(exc.__cause__, SerializationException):
        detail = f"the request body is not valid JSON ({exc.detail}); send one JSON object"
    return ProblemDetailsException(status_code=exc.status_code, detail=detail, extra=exc.extra, headers=exc.headers)


class MetricsController(PrometheusController):
    path = "/metrics"


def create_app(cfg: Settings | None = None) -> Litestar:
    prometheus = PrometheusConfig(app_name="defendable_gateway", group_path=True)
    return Litestar(
        route_handlers=[
            routes.create_run,
            routes.add_evidence,
            routes.submit,
            routes.approve,
            routes.reject,
            routes.get_run,
            routes.list_runs,
            routes.run_receipt,
            routes.get_receipt,
            *package_routes.PACKAGE_ROUTES,
            receipt_page.receipt_page,
            receipt_page.static_asset,
            routes.ledger_verify,
            routes.ledger_keys,
            export_routes.ledger_export,
            *tlog_routes.TLOG_ROUTES,
            *reveal_routes.REVEAL_ROUTES,
            sheet_routes.list_flight_sheets,
            sheet_routes.get_flight_sheet,
            cook_routes.request_cook,
            cook_routes.get_cook,
            cook_routes.approve_cook,
            cook_routes.reject_cook,
            trace_routes.otlp_traces,
            trace_routes.run_trail,
            trace_routes.run_trail_step,
            trace_routes.run_otel,
            incident_routes.heartbeat,
            incident_routes.list_incidents,
            incident_routes.get_incident,
            incident_routes.acknowledge,
            incident_routes.unlock,
            healthz,
            readyz,
            MetricsController,
        ],
        lifespan=[lifespan],
        plugins=[
            ProblemDetailsPlugin(
                ProblemDetailsConfig(
                    enable_for_all_http_exceptions=True,
                    exception_to_problem_detail_map={HTTPException: client_problem},
                )
            )
        ],
        middleware=[prometheus.middleware],
        exception_handlers={Exception: internal_error},
        openapi_config=OpenAPIConfig(title="Defendable", version="0.1.0", path="/schema"),
        request_max_body_size=1024 * 1024,
        debug=False,
    )


app = create_app()
__all__ = ["ProblemDetailsException", "app"]
