"""A real witness process against a log the test plays, on real NATS and PostgreSQL.

Each test gets a NATS server of its own: the witness reads RUNS from its start, and on the
session's server the e2e suite's real ledger answers the same `svc.ledger.*` subjects the
test log answers here. PostgreSQL is the session's (or DATABASE_URL), with a fresh
database per test, as a witness deployed apart from the log would have.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient

from defendable_canonical.events import AnyEvent
from defendable_canonical.subjects import RUNS_STREAM
from defendable_runtime.messaging import ensure_streams, make_broker
from defendable_stack.process import spawn
from defendable_stack.servers import start_nats
from defendable_witness.config import durable_name

from .testlog import TestLog

READY_TIMEOUT_S = 60.0
EVENTS_TIMEOUT_S = 30.0


@pytest.fixture
async def witness_db(database_url: str) -> AsyncIterator[str]:
    """A database of the witness's own, dropped after the test."""
    name = "witness_" + secrets.token_hex(6)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    parts = urlsplit(database_url)
    yield urlunsplit(parts._replace(path="/" + name))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
def nats_url() -> Iterator[str]:
    data = Path(tempfile.mkdtemp(prefix="defendable-witness-nats-"))
    server = start_nats(data / "nats")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    broker = make_broker(nats_url)
    await ensure_streams(broker)  # the streams, as every service declares them
    await broker.stop()
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def test_log(nc: NatsClient) -> AsyncIterator[TestLog]:
    log = TestLog(nc)
    await log.start()
    yield log
    await log.stop()


class Witness:
    """`python -m defendable_witness` as a deployment runs it."""

    def __init__(self, nats_url: str, database_url: str, logs: Path, js_client: NatsClient) -> None:
        self.name = f"witness.test/{secrets.token_hex(4)}"
        self.env = {
            **os.environ,
            "NATS_URL": nats_url,
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unused",  # the witness must use its own
            "WITNESS_DATABASE_URL": database_url,
            "WITNESS_NAME": self.name,
            "CONSUMER_ACK_WAIT_S": "2",  # a killed witness's checkpoints come back quickly
            "PYTHONUNBUFFERED": "1",
        }
        self.database_url = database_url
        self.logs = logs
        self.js = js_client.jetstream()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.logs / f"witness-{self.starts}.log"

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("witness-*.log")))

    async def start(self, **env: str) -> None:
        self.env |= env
        self.starts += 1
        self.proc = spawn([sys.executable, "-m", "defendable_witness"], self.log_path, env=self.env)
        await self._ready()

    async def _ready(self) -> None:
        """Ready once FastStream says its consumer runs (the durable alone would be the last run's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        while loop.time() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"witness exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            if self.log_path.exists() and "started successfully" in self.log_path.read_text(errors="replace"):
                await self.js.consumer_info(RUNS_STREAM, durable_name(self.name))  # and its consumer exists
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"witness not ready after {READY_TIMEOUT_S}s:\n{self.log_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            return None

    async def vkey(self) -> str:
        """What `python -m defendable_witness vkey` prints, as a verifier would pin it."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "defendable_witness", "vkey", env=self.env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        return out.decode().strip()

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()

    async def cosigned_sizes(self, org_id: str) -> list[int]:
        rows = await self.fetch("SELECT size FROM witness.cosignatures WHERE org_id = $1 ORDER BY size", org_id)
        return [int(r["size"]) for r in rows]


@pytest.fixture
async def witness(nats_url: str, witness_db: str, nc: NatsClient, tmp_path: Path) -> AsyncIterator[Witness]:
    """A witness not yet started (`await witness.start(**env)`); stopped after the test."""
    w = Witness(nats_url, witness_db, tmp_path, nc)
    yield w
    code = w.stop()
    assert code in (None, 0), f"witness exited with {code} on SIGTERM:\n{w.log_text()[-3000:]}"


async def wait_events(log: TestLog, org_id: str, done: Callable[[list[AnyEvent]], bool]) -> list[AnyEvent]:
    """The org's events in RUNS once `done` says they are complete."""
    events: list[AnyEvent] = []
    try:
        async with asyncio.timeout(EVENTS_TIMEOUT_S):
            while True:
                if done(events := await log.events(org_id)):
                    return events
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"events of {org_id} never complete: {[type(e).__name__ for e in events]}") from None
