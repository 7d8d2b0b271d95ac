"""Evidence copied from real S3 into a run's work directory: verified, bounded, and never trusted when it changed."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef
from defendable_referee.evidence_files import fetch_files, local_name
from defendable_runtime.settings import from_env
from defendable_runtime.storage import BlobStore, evidence_key
from defendable_stack.servers import Stack


@pytest.fixture
async def blobs(stack: Stack) -> AsyncIterator[BlobStore]:
    settings = msgspec.structs.replace(
        from_env(),
        s3_endpoint_url=stack.s3_endpoint_url,
        s3_access_key_id=stack.s3_access_key_id,
        s3_secret_access_key=stack.s3_secret_access_key,
        s3_region=stack.s3_region,
        s3_bucket=stack.s3_bucket,
    )
    store = await BlobStore(settings).open()
    await store.ensure_bucket()
    yield store
    await store.close()


def ref(name: str, data: bytes, media_type: str = "text/csv", size: int | None = None) -> EvidenceRef:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return EvidenceRef(
        id="ev_" + secrets.token_hex(12), name=name, media_type=media_type, size=len(data) if size is None else size,
        sha256=digest,
    )  # fmt: skip


async def put(blobs: BlobStore, item: EvidenceRef, data: bytes) -> None:
    await blobs.put_bytes(evidence_key(item.sha256.removeprefix("sha256:")), data)


async def test_items_are_copied_verified_and_bounded(blobs: BlobStore, tmp_path: Path) -> None:
    good_data = b"id,label\n" + b"".join(b"%d,a\n" % i for i in range(300_000))  # ~2.3 MB: several chunks
    good = ref("train.csv", good_data)
    tampered = ref("test.csv", b"id,label\n1,a\n")
    longer = ref("val.csv", b"id\n1\n")
    missing = ref("gone.parquet", b"PAR1")
    big = ref("big.jsonl", b"{}\n" * 10, size=10_000)
    over_budget = ref("late.csv", b"x" * 3_000_000)
    trail = ref("spans.pb", b"\x0a\x00", media_type='application/x-protobuf; profile="otlp-traces"')
    await put(blobs, good, good_data)
    await put(blobs, tampered, b"id,label\n1,b\n")  # same length, other bytes
    await put(blobs, longer, b"id\n1\n2\n")  # more bytes than recorded
    await put(blobs, over_budget, b"x" * 3_000_000)
    await put(blobs, trail, b"\x0a\x00")

    refs = [good, tampered, longer, missing, big, over_budget, trail]
    fetched = await fetch_files(blobs, refs, tmp_path, max_item_bytes=5_000, max_run_bytes=4_000_000)

    # max_item_bytes is smaller than the good file: nothing is copied past the per-item limit.
    assert fetched.paths == {}
    fetched = await fetch_files(blobs, refs, tmp_path, max_item_bytes=4_000_000, max_run_bytes=4_000_000)
    assert set(fetched.paths) == {good.id}
    assert fetched.paths[good.id].read_bytes() == good_data
    assert fetched.paths[good.id].name == good.id + ".csv"
    assert set(fetched.skipped) == {tampered.id, longer.id, missing.id, big.id, over_budget.id}
    assert "no longer hash" in fetched.skipped[tampered.id] and "no longer hash" in fetched.skipped[longer.id]
    assert "disk budget" in fetched.skipped[over_budget.id]
    assert sorted(os.listdir(tmp_path)) == [good.id + ".csv"]  # no partial or bad copy left


def test_local_names_keep_only_a_plain_suffix() -> None:
    assert local_name(ref("data/train.CSV", b"")).endswith(".csv")
    assert local_name(ref("part-0.jsonl.gz", b"")).endswith(".jsonl.gz")
    hostile = ref("../../etc/passwd", b"")
    assert local_name(hostile) == hostile.id
    assert "/" not in local_name(ref("x/../../y.csv;rm -rf", b""))
