"""The local servers are real and keep what they acknowledged across a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aioboto3
import asyncpg
import nats
import pytest
from botocore.config import Config
from nats.js.api import StreamConfig

from defendable_runtime.messaging import NATS_MAX_PAYLOAD
from defendable_stack.process import ServerStartError, become_subreaper, pid_alive, reap
from defendable_stack.servers import NatsServer, PostgresServer, Stack, stack_from_env, start_s3


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# --- NATS ----------------------------------------------------------------------


async def test_jetstream_stores_a_published_message_and_delivers_it(stack: Stack) -> None:
    name = unique("STACK")
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        ack = await js.publish(f"{name}.hello", b"payload")
        assert ack.stream == name and ack.seq == 1

        subscription = await js.pull_subscribe(f"{name}.>", durable="reader")
        [message] = await subscription.fetch(1, timeout=5)
        assert message.data == b"payload"
        await message.ack()
        await js.delete_stream(name)
    finally:
        await nc.close()


async def test_nats_allows_the_8_mib_payloads_the_services_publish(stack: Stack) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        assert nc.max_payload == NATS_MAX_PAYLOAD == 8 * 1024 * 1024  # the stack's "max_payload: 8MB"
    finally:
        await nc.close()


async def test_an_acknowledged_message_survives_a_nats_crash(nats_server: NatsServer) -> None:
    name = unique("CRASH")
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        ack = await js.publish(f"{name}.kept", b"acknowledged before the crash")
    finally:
        await nc.close()

    old_pid = nats_server.pid
    nats_server.kill()
    assert not pid_alive(old_pid)
    nats_server.restart()
    assert nats_server.pid != old_pid

    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        stored = await js.get_msg(name, ack.seq)
        assert stored.data == b"acknowledged before the crash"
        await js.delete_stream(name)
    finally:
        await nc.close()


# --- PostgreSQL -----------------------------------------------------------------


async def test_postgres_round_trips_a_row_with_durable_settings(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW fsync") == "on"
        table = unique("round_trip")
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text NOT NULL)")
        await conn.execute(f"INSERT INTO {table} VALUES ($1, $2)", 1, "hello")
        assert await conn.fetchval(f"SELECT body FROM {table} WHERE id = 1") == "hello"
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


async def test_a_committed_row_survives_a_postgres_crash(pg_server: PostgresServer) -> None:
    table = unique("crash")
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text NOT NULL)")
        await conn.execute(f"INSERT INTO {table} VALUES (1, 'committed before the crash')")
    finally:
        await conn.close()

    pg_server.kill()
    pg_server.restart()

    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval(f"SELECT body FROM {table} WHERE id = 1") == "committed before the crash"
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


# --- S3 ------------------------------------------------------------------------


@pytest.mark.parametrize("bucket", ["Not_A_Bucket", "not a bucket!"])  # refused by the server; by botocore
def test_s3_start_stops_at_once_on_a_bucket_name_s3_refuses(tmp_path: Path, bucket: str) -> None:
    """A refused S3_BUCKET is a configuration error: say so, rather than retry until the timeout."""
    with pytest.raises(ServerStartError, match=f"refuses the bucket name '{bucket}'"):
        start_s3(tmp_path / "s3", bucket=bucket, timeout=120)


async def test_s3_puts_gets_and_deletes_a_1_mib_object(stack: Stack) -> None:
    body = os.urandom(1024 * 1024)
    key = f"stack-test/{uuid.uuid4().hex}"
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=stack.s3_endpoint_url,
        aws_access_key_id=stack.s3_access_key_id,
        aws_secret_access_key=stack.s3_secret_access_key,
        region_name=stack.s3_region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    ) as s3:
        await s3.put_object(Bucket=stack.s3_bucket, Key=key, Body=body)
        response = await s3.get_object(Bucket=stack.s3_bucket, Key=key)
        async with response["Body"] as stream:
            assert await stream.read() == body
        await s3.delete_object(Bucket=stack.s3_bucket, Key=key)
        listed = await s3.list_objects_v2(Bucket=stack.s3_bucket, Prefix=key)
        assert listed.get("KeyCount", 0) == 0


# --- the stack as the services see it ----------------------------------------------


def test_stack_env_names_every_variable_a_service_reads(stack: Stack) -> None:
    env = stack.env()
    assert set(env) == {
        "NATS_URL",
        "DATABASE_URL",
        "S3_ENDPOINT_URL",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "S3_REGION",
        "S3_BUCKET",
    }
    assert env["DATABASE_URL"].startswith("postgresql://")
    assert env["NATS_URL"].startswith("nats://")


def test_stack_from_env_uses_servers_named_by_the_environment() -> None:
    environ = {
        "NATS_URL": "nats://nats.example:4222",
        "DATABASE_URL": "postgresql://app@db.example:5432/app",
        "S3_ENDPOINT_URL": "https://s3.example",
        "S3_ACCESS_KEY_ID": "key",
        "S3_SECRET_ACCESS_KEY": "secret",
    }
    stack = stack_from_env(environ)
    assert stack is not None
    assert stack.env() == environ | {"S3_REGION": "us-east-1", "S3_BUCKET": "defendable"}
    assert stack_from_env({"NATS_URL": "nats://only:4222"}) is None


@pytest.fixture
def cli_dir() -> Iterator[Path]:
    # Not tmp_path: as root, PostgreSQL must traverse the parents (see conftest.server_dir).
    path = Path(tempfile.mkdtemp(prefix="defendable-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_up_status_down_runs_the_servers_detached_and_stops_them(cli_dir: Path) -> None:
    tmp_path = cli_dir
    env = {k: v for k, v in os.environ.items() if k not in {"NATS_URL", "DATABASE_URL", "S3_ENDPOINT_URL"}}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "defendable_stack", "--dir", str(tmp_path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # `up` detaches its servers and exits; adopting them lets us reap them
    # after `down` instead of leaving zombies where pid 1 does not reap.
    become_subreaper()
    up = cli("up", "--servers-only")
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    pids = [process["pid"] for process in state["processes"]]
    assert [process["name"] for process in state["processes"]] == ["nats", "postgres", "s3"]
    try:
        status = cli("status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("alive") == 3
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(pid) for pid in pids)
    for pid in pids:
        reap(pid)
    assert not (tmp_path / "state.json").exists()
    assert (tmp_path / "pg" / "pgdata" / "PG_VERSION").exists(), "down keeps the data"
    assert cli("down").returncode == 0, "down is idempotent"
    assert cli("status").returncode == 3
