"""`GET /ledger/export` against a ledger that answers `LEDGER_TLOG` from an in-memory log: paging,
the cut at the latest checkpoint, refusals as problem+json, a cut-short stream — and that what
it streams is what `verify_chain_export` verifies."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.testing import AsyncTestClient

from defendable_canonical import tlog_api
from defendable_canonical.events import Command
from defendable_canonical.subjects import LEDGER_TLOG
from defendable_canonical.verification import all_passed
from defendable_canonical.verify_export import verify_chain_export
from defendable_gateway import export_routes, routes
from defendable_gateway.auth import Principal

from ..canonical.tlog_kit import ORG, Log

HEADERS = {"Authorization": "Bearer test"}


@dataclass
class Ledger:
    """Answers the tlog questions from `log`: its first `receipts`, checkpoints at `sizes`."""

    log: Log
    sizes: list[int]
    receipts: int
    fail_after: int | None = None  # answer a problem once this many questions were answered
    asked: list[dict[str, Any]] = field(default_factory=list)

    async def command(self, command: Command) -> None:
        raise AssertionError("no commands")

    async def ask(self, subject: str, body: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        assert subject == LEDGER_TLOG
        query = tlog_api.query_decoder.decode(body)
        self.asked.append(msgspec.to_builtins(query))
        if self.fail_after is not None and len(self.asked) > self.fail_after:
            return msgspec.json.encode(tlog_api.TlogProblem(status=500, detail="the ledger fell over"))
        assert query.org_id == ORG
        return msgspec.json.encode(self.answer(query))

    def answer(self, query: tlog_api.AnyTlogQuery) -> tlog_api.AnyTlogAnswer:
        if isinstance(query, tlog_api.CheckpointQuery):
            if not self.sizes:
                return tlog_api.TlogProblem(status=404, detail="no checkpoint yet")
            return self.checkpoint(self.sizes[-1])
        if isinstance(query, tlog_api.ReceiptsQuery):
            lines = self.log.export([], receipts=self.receipts)[query.after : query.after + query.limit]
            rows = [msgspec.json.decode(line, type=tlog_api.StoredReceiptRow) for line in lines]
            return tlog_api.ReceiptsAnswer(receipts=rows)
        if isinstance(query, tlog_api.CheckpointsQuery):
            above = [s for s in self.sizes if s > query.after][: query.limit]
            return tlog_api.CheckpointsAnswer(origin=self.log.origin, checkpoints=[self.checkpoint(s) for s in above])
        raise AssertionError(f"unexpected question {query!r}")

    def checkpoint(self, size: int) -> tlog_api.CheckpointAnswer:
        return tlog_api.CheckpointAnswer(
            origin=self.log.origin,
            size=size,
            root_hash=base64.b64encode(self.log.tree.root(size)).decode(),
            checkpoint=self.log.checkpoint(size).decode(),
        )


class Silent(Ledger):
    async def ask(self, subject: str, body: bytes, timeout: float) -> bytes:  # noqa: ASYNC109
        raise TimeoutError("no service answers")


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(10)


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async def authenticate(connection: Any, role: Any = None) -> Principal:
        if connection.headers.get("authorization") != "Bearer test":
            raise routes.problem(401, "send `Authorization: Bearer <api key>`")
        return Principal(org_id=ORG, key_id="k", role="submitter", label="test")

    monkeypatch.setattr(routes, "authenticate", authenticate)
    monkeypatch.setattr(routes.holder, "res", None, raising=False)  # `use` sets it; put back after
    monkeypatch.setattr(tlog_api, "MAX_PAGE", 3)  # pages of 3: every path through the paging
    app = Litestar(
        route_handlers=[export_routes.ledger_export],
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=True))],
    )
    async with AsyncTestClient(app) as c:
        yield c


def use(ledger: Ledger) -> Ledger:
    routes.holder.res = routes.Resources(
        settings=None,  # type: ignore[arg-type]
        pool=None,
        blobs=None,  # type: ignore[arg-type]
        bus=ledger,
        keys={},
        sheets={},
    )
    return ledger


def lines(body: bytes) -> list[bytes]:
    return [line + b"\n" for line in body.split(b"\n") if line]


async def test_the_export_streams_every_receipt_then_every_checkpoint_and_verifies(
    client: AsyncTestClient[Litestar], log: Log
) -> None:
    ledger = use(Ledger(log, sizes=[2, 3, 4, 7, 9, 10], receipts=10))
    reply = await client.get("/ledger/export", headers=HEADERS)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    body = lines(reply.content)
    assert len(body) == 10 + 6
    assert body == log.export([2, 3, 4, 7, 9, 10])  # byte for byte what the ledger holds
    checks = verify_chain_export(body, log.trust())
    assert all(c.outcome == "PASS" for c in checks if c.name != "witnessed checkpoint (truncation)"), checks
    ops = [q["op"] for q in ledger.asked]
    assert ops == ["checkpoint"] + ["receipts"] * 4 + ["checkpoints"] * 3


async def test_the_export_stops_at_the_latest_checkpoint_it_started_with(
    client: AsyncTestClient[Litestar], log: Log
) -> None:
    use(Ledger(log, sizes=[3, 7], receipts=10))  # receipts 8-10 minted after the checkpoint at 7
    body = lines((await client.get("/ledger/export", headers=HEADERS)).content)
    assert body == log.export([3, 7], receipts=7)
    assert all_passed(verify_chain_export(body, log.trust()))


async def test_an_org_without_checkpoints_exports_its_receipts_alone(
    client: AsyncTestClient[Litestar], log: Log
) -> None:
    use(Ledger(log, sizes=[], receipts=5))
    body = lines((await client.get("/ledger/export", headers=HEADERS)).content)
    assert body == log.export([], receipts=5)


async def test_a_refusal_before_the_stream_is_problem_json_with_the_ledgers_status(
    client: AsyncTestClient[Litestar], log: Log
) -> None:
    use(Ledger(log, sizes=[10], receipts=10, fail_after=1))  # the checkpoint answered, the receipts not
    reply = await client.get("/ledger/export", headers=HEADERS)
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["detail"] == "the ledger fell over"
    use(Silent(log, sizes=[], receipts=0))
    reply = await client.get("/ledger/export", headers=HEADERS)
    assert reply.status_code == 503 and "did not answer" in reply.json()["detail"]


async def test_a_refusal_mid_stream_ends_it_with_an_error_line_the_verifier_fails(
    client: AsyncTestClient[Litestar], log: Log
) -> None:
    use(Ledger(log, sizes=[10], receipts=10, fail_after=3))  # two receipt pages, then a problem
    reply = await client.get("/ledger/export", headers=HEADERS)
    assert reply.status_code == 200
    body = lines(reply.content)
    assert len(body) == 7 and body[-1].startswith(b'{"error":"the export is incomplete: the ledger fell over"')
    checks = {c.name: c for c in verify_chain_export(body, log.trust())}
    assert checks["export format"].outcome == "FAIL" and "cut the export short" in checks["export format"].detail


async def test_the_export_needs_an_api_key(client: AsyncTestClient[Litestar], log: Log) -> None:
    use(Ledger(log, sizes=[10], receipts=10))
    assert (await client.get("/ledger/export")).status_code == 401
