"""The five services and the witness as real processes on the session's real servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_stack.process import free_port, spawn
from defendable_stack.servers import Stack

from .memo import EVIDENCE, memo

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `make install` installs it
SERVICES = ("gateway", "intake", "referee", "ledger", "render", "witness")
MAX_EVIDENCE_BYTES = 2 * 1024 * 1024  # small, so the 413 test stays cheap


@dataclass
class Services:
    env: dict[str, str]
    base_url: str
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        """Start (or restart) a service; `env` adds to the stack's environment for this process."""
        proc = spawn([sys.executable, "-m", f"defendable_{name}"], self.logs / f"{name}.log", env=self.env | env)
        self.procs[name] = proc
        return proc

    def start_extra(self, name: str) -> subprocess.Popen[bytes]:
        proc = spawn([sys.executable, "-m", f"defendable_{name}"], self.logs / f"{name}-extra.log", env=self.env)
        self.extra.append(proc)
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self, name: str) -> int:
        """SIGTERM, as a deployment stops a service, and wait for a clean exit; the exit status."""
        proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(60)

    def stop_all(self) -> None:
        for proc in [*self.procs.values(), *self.extra]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.procs.values(), *self.extra]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_ready(base_url: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}: {(logs / f'{name}.log').read_text()[-3000:]}"
                )
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"gateway not ready at {base_url} after {timeout}s")


@pytest.fixture(scope="session")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **stack.env(),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "PUBLIC_BASE_URL": base_url,
        "MAX_EVIDENCE_BYTES": str(MAX_EVIDENCE_BYTES),
        "PYTHONUNBUFFERED": "1",
    }
    svc = Services(env=env, base_url=base_url, logs=tmp_path_factory.mktemp("service-logs"))
    for name in SERVICES:
        svc.start(name)
    try:
        wait_ready(base_url, svc.procs, svc.logs)
        # The referee must answer flight-sheet questions before runs can be created.
        for _ in range(100):
            if svc.procs["referee"].poll() is None and _referee_answers(base_url):
                break
            time.sleep(0.1)
        yield svc
    finally:
        svc.stop_all()


def _referee_answers(base_url: str) -> bool:
    r = httpx.get(f"{base_url}/healthz", timeout=2)
    return r.status_code == 200


@pytest.fixture
async def org(stack: Stack, services: Services) -> CreatedOrg:
    return await create_org(stack.env()["DATABASE_URL"], "Ünïcode Capital Ørsted", approver="Zoë Ångström-Łukasiewicz")


def key(org: CreatedOrg, role: str) -> str:
    return next(k.key for k in org.keys if k.role == role)


@pytest.fixture
async def submitter(services: Services, org: CreatedOrg) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(services.base_url, key(org, "submitter"))
    yield client
    await client.aclose()


@pytest.fixture
async def approver(services: Services, org: CreatedOrg) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(services.base_url, key(org, "approver"))
    yield client
    await client.aclose()


async def checked_run(client: AsyncClient, **memo_kw: object) -> str:
    """Create a run, attach the three evidence files, submit a memo, wait for its verdict."""
    run_id = await create(client)
    await asyncio.gather(*(client.add_file(run_id, name, data) for name, data in EVIDENCE.items()))
    await client.wait_for(run_id, ("created",))
    await client.submit(run_id, memo(**memo_kw))  # type: ignore[arg-type]
    await client.wait_for(run_id, ("checked",))
    return run_id


async def minted_receipt(
    submitter: AsyncClient, approver: AsyncClient, note: str = "", *, rendered: bool = False
) -> dict[str, Any]:
    """A new checked run, approved: its receipt document once minted (and its PDF rendered)."""
    run_id = await checked_run(submitter)
    await approver.approve(run_id, note)
    run = await submitter.wait_for(run_id, ("rendered",) if rendered else ("minted",), timeout=90 if rendered else 60)
    receipt: dict[str, Any] = run["receipt"]
    assert receipt is not None, run
    return receipt


AGENT_PROFILE: dict[str, Any] = {
    "model": "gpt-test",
    "harness": "pytest",
    "tools": ["calculator"],
    "runtime": "python3.11",
}


async def create(
    client: AsyncClient,
    profile: dict[str, Any] | None = None,
    sheet: str = "cre_memo_dscr_ltv_v1@1.0.0",
    lane: str = "agent_work",
) -> str:
    """A run of `profile` (default AGENT_PROFILE): governance locks are per agent profile."""
    for attempt in range(50):  # the referee may still be starting on the first test
        try:
            return await client.create_run(
                "Harbour Point refinancing",
                sheet,
                profile or AGENT_PROFILE,
                lane=lane,
                assignment="Assess DSCR and LTV for the Harbour Point refinancing.",
            )
        except Exception as exc:  # 503 while the referee starts
            if "503" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Real headless Chromium (Debian's), driven by Playwright: the receipt page and verify.html."""
    assert shutil.which(CHROMIUM), "Chromium is missing: `make install` installs it (apt-get install chromium)"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()
