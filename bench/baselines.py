"""Raw baselines on the same servers: what the parts cost without our code around them."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import aioboto3
import aiohttp
import asyncpg
import nats
from botocore.config import Config
from nats.js.api import StorageType, StreamConfig


async def raw_pg_batched_insert(dsn: str, rows: int = 50_000, per_tx: int = 1000) -> float:
    """Rows/s for COPY of 2 KB rows, 1,000 per transaction (the ledger's shape without its logic)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (k bigint PRIMARY KEY, v bytea)")
        blob = os.urandom(2048)
        start = time.perf_counter()
        for base in range(0, rows, per_tx):
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw", records=[(base + i, blob) for i in range(per_tx)])
        elapsed = time.perf_counter() - start
        await conn.execute("DROP TABLE bench_raw")
    finally:
        await conn.close()
    return rows / elapsed


async def raw_jetstream_publish(nats_url: str, n_awaited: int = 2_000, n_concurrent: int = 10_000) -> dict[str, float]:
    """Publishes/s to a file stream on the same server (fsync always): one at a time, and pipelined."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="BENCHRAW", subjects=["benchraw.>"], storage=StorageType.FILE))
    body = os.urandom(1500)
    try:
        start = time.perf_counter()
        for i in range(n_awaited):
            await js.publish("benchraw.a", body, headers={"Nats-Msg-Id": f"a{i}"})
        awaited = n_awaited / (time.perf_counter() - start)
        start = time.perf_counter()
        for base in range(0, n_concurrent, 500):
            await asyncio.gather(
                *(js.publish("benchraw.b", body, headers={"Nats-Msg-Id": f"b{base + i}"}) for i in range(500))
            )
        concurrent = n_concurrent / (time.perf_counter() - start)
    finally:
        await js.delete_stream("BENCHRAW")
        await nc.close()
    return {"awaited_msgs_per_s": awaited, "pipelined_msgs_per_s": concurrent}


async def raw_s3_puts(env: dict[str, str], n: int = 600, concurrency: int = 16) -> float:
    """10 KiB PUTs/s with the stack's credentials."""
    session = aioboto3.Session()
    body = os.urandom(10 * 1024)
    async with session.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        aws_access_key_id=env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"],
        region_name=env["S3_REGION"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, max_pool_connections=64),
    ) as s3:
        sem = asyncio.Semaphore(concurrency)

        async def put(i: int) -> None:
            async with sem:
                await s3.put_object(Bucket=env["S3_BUCKET"], Key=f"bench/raw/{i}", Body=body)

        start = time.perf_counter()
        await asyncio.gather(*(put(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def raw_http(base_url: str, n: int = 3_000, concurrency: int = 32) -> float:
    """Requests/s to the gateway's /healthz: Litestar + uvicorn with no work behind it."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:
        sem = asyncio.Semaphore(concurrency)

        async def get() -> None:
            async with sem, client.get(f"{base_url}/healthz") as response:
                response.raise_for_status()
                await response.read()

        start = time.perf_counter()
        await asyncio.gather(*(get() for _ in range(n)))
        return n / (time.perf_counter() - start)


async def baselines(env: dict[str, str], base_url: str, quick: bool) -> dict[str, Any]:
    scale = 5 if quick else 1
    return {
        "postgres_batched_insert_rows_per_s": await raw_pg_batched_insert(env["DATABASE_URL"], 50_000 // scale),
        "jetstream_publish": await raw_jetstream_publish(env["NATS_URL"], 2_000 // scale, 10_000 // scale),
        "s3_put_10kib_per_s": await raw_s3_puts(env, 600 // scale),
        "http_healthz_req_per_s": await raw_http(base_url, 3_000 // scale),
    }
