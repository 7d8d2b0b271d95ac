"""Evidence whose bytes do not match their declared hash is refused and nothing of it is stored (DESIGN.md §6)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]  # the package ships no type information
import httpx
import msgspec
import nats
import pytest
from botocore.config import Config
from nats.aio.client import Client as Nats
from nats.js.client import JetStreamContext

from defendable.client import AsyncClient
from defendable_canonical.events import (
    MAX_INLINE_EVIDENCE_BYTES,
    AttachEvidence,
    Command,
    CommandRefused,
    Submit,
    encode,
    event_decoder,
)
from defendable_canonical.subjects import ingest_subject
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import Services, create, key


def s3_client(stack: Stack) -> object:
    env = stack.env()
    return boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        aws_access_key_id=env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"],
        region_name=env["S3_REGION"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def s3_keys(stack: Stack, prefix: str) -> list[str]:
    """Every object under `prefix`, listed straight from S3 (not through any service)."""
    s3 = s3_client(stack)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack.s3_bucket, Prefix=prefix)  # type: ignore[attr-defined]  # boto3 is untyped
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def hex_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_nothing_stored(stack: Stack, org_id: str, declared: str, actual: str) -> None:
    assert s3_keys(stack, f"staging/{org_id}/") == []
    assert s3_keys(stack, f"evidence/sha256/{declared}") == []
    assert s3_keys(stack, f"evidence/sha256/{actual}") == []


@pytest.fixture
async def bus(stack: Stack) -> AsyncIterator[Nats]:
    nc = await nats.connect(stack.nats_url)
    yield nc
    await nc.drain()


async def test_a_multipart_upload_with_a_wrong_sha256_is_a_422_naming_both_hashes_and_nothing_is_stored(
    services: Services, submitter: AsyncClient, org: CreatedOrg, stack: Stack
) -> None:
    run_id = await create(submitter)
    data, other = os.urandom(4096), os.urandom(4096)
    actual, declared = hex_of(data), hex_of(other)
    async with httpx.AsyncClient(base_url=services.base_url, timeout=20.0) as http:
        headers = {"Authorization": f"Bearer {key(org, 'submitter')}"}
        by_field = await http.post(
            f"/runs/{run_id}/evidence",
            files={"file": ("forged.bin", data)},
            data={"sha256": f"sha256:{declared}"},
            headers=headers,
        )
        by_header = await http.post(
            f"/runs/{run_id}/evidence",
            files={"file": ("forged.bin", data)},
            headers=headers | {"X-Content-SHA256": declared},
        )
    for response in (by_field, by_header):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        detail = response.json()["detail"]
        assert actual in detail and declared in detail, detail
    assert_nothing_stored(stack, org.org_id, declared, actual)
    assert (await submitter.run(run_id))["evidence"] == []

    # The same bytes with their true hash are accepted and land at their content-addressed key.
    accepted = await submitter.add_file(run_id, "honest.bin", data, sha256=f"sha256:{actual}")
    assert accepted.sha256 == f"sha256:{actual}"
    run = await submitter.run(run_id)
    assert [e["evidence_id"] for e in run["evidence"]] == [accepted.evidence_id]
    await submitter.wait_for(run_id, ("created",))
    for _ in range(100):
        if s3_keys(stack, f"evidence/sha256/{actual}"):
            break
        await asyncio.sleep(0.1)
    assert s3_keys(stack, f"evidence/sha256/{actual}") == [f"evidence/sha256/{actual}"]


def base(org_id: str, run_id: str) -> dict[str, Any]:
    return {
        "command_id": "cmd_" + secrets.token_hex(16),
        "org_id": org_id,
        "run_id": run_id,
        "issued_at": datetime.now(UTC).isoformat(),
        "actor": "platform-team-sdk",
    }


def attach_file(org_id: str, run_id: str, size: int, sha256: str, **where: Any) -> AttachEvidence:
    """An AttachEvidence for `size` bytes declared as `sha256`; `where` names the bytes
    (`content` or `staging_key`) and may fix the `evidence_id`."""
    return AttachEvidence(
        **base(org_id, run_id),
        evidence_id=where.pop("evidence_id", "ev_" + secrets.token_hex(12)),
        kind="file",
        name="evidence.bin",
        media_type="application/octet-stream",
        size=size,
        sha256=f"sha256:{sha256}",
        **where,
    )


async def next_refusal(refusals: JetStreamContext.PushSubscription) -> CommandRefused:
    """The next CommandRefused on a `run.refused.<org>.<run>` subscription (15 s at most)."""
    refused = event_decoder.decode((await refusals.next_msg(timeout=15)).data)
    assert isinstance(refused, CommandRefused), refused
    return refused


async def publish(bus: Nats, command: Command) -> None:
    ack = await bus.jetstream().publish(
        ingest_subject(command), encode(command), headers={"Nats-Msg-Id": command.command_id}
    )
    assert ack.stream == "INGEST"


async def test_a_streamed_attach_with_a_wrong_hash_is_refused_its_bytes_deleted_and_a_submit_naming_it_refused(
    submitter: AsyncClient, org: CreatedOrg, stack: Stack, bus: Nats
) -> None:
    run_id = await create(submitter)
    await submitter.wait_for(run_id, ("created",))
    data = os.urandom(2048)
    actual, declared = hex_of(data), hex_of(os.urandom(2048))
    evidence_id = "ev_" + secrets.token_hex(12)
    staging_key = f"staging/{org.org_id}/{evidence_id}"
    s3_client(stack).put_object(Bucket=stack.s3_bucket, Key=staging_key, Body=data)  # type: ignore[attr-defined]  # boto3 is untyped
    assert s3_keys(stack, staging_key) == [staging_key]

    refusals = await bus.jetstream().subscribe(f"run.refused.{org.org_id}.{run_id}", ordered_consumer=True)
    attach = attach_file(org.org_id, run_id, len(data), declared, evidence_id=evidence_id, staging_key=staging_key)
    await publish(bus, attach)
    refused = await next_refusal(refusals)
    assert (refused.command_type, refused.command_id) == ("AttachEvidence", attach.command_id)
    assert actual in refused.reason and declared in refused.reason, refused.reason
    assert_nothing_stored(stack, org.org_id, declared, actual)

    submit = Submit(
        **base(org.org_id, run_id), submission=msgspec.Raw(b'{"assignment_id": "a"}'), evidence_ids=[evidence_id]
    )
    await publish(bus, submit)
    refused = await next_refusal(refusals)
    assert (refused.command_type, refused.command_id) == ("Submit", submit.command_id)
    assert evidence_id in refused.reason and "refused" in refused.reason, refused.reason

    for _ in range(100):  # the gateway's read model folds the refusals shortly after intake emits them
        run = await submitter.run(run_id)
        if len(run["refusals"]) >= 2:
            break
        await asyncio.sleep(0.1)
    assert run["stage"] == "created" and run["submission_sha256"] is None
    assert evidence_id not in {e["evidence_id"] for e in run["evidence"]}
    assert [r["command"] for r in run["refusals"]] == ["AttachEvidence", "Submit"]


async def test_inline_evidence_streamed_with_a_wrong_hash_is_refused_and_with_its_own_hash_is_stored(
    submitter: AsyncClient, org: CreatedOrg, stack: Stack, bus: Nats
) -> None:
    """Small evidence rides inside the command (no S3 staging): intake re-hashes those bytes too."""
    run_id = await create(submitter)
    await submitter.wait_for(run_id, ("created",))
    data = os.urandom(3000)
    actual, declared = hex_of(data), hex_of(os.urandom(3000))
    refusals = await bus.jetstream().subscribe(f"run.refused.{org.org_id}.{run_id}", ordered_consumer=True)
    attached = await bus.jetstream().subscribe(f"run.evidence.{org.org_id}.{run_id}", ordered_consumer=True)

    def attach(sha256: str, **where: Any) -> AttachEvidence:
        return attach_file(org.org_id, run_id, len(data), sha256, **where)

    forged = attach(declared, content=data)
    await publish(bus, forged)
    refused = await next_refusal(refusals)
    assert refused.command_id == forged.command_id
    assert actual in refused.reason and declared in refused.reason, refused.reason
    assert_nothing_stored(stack, org.org_id, declared, actual)

    both = attach(actual, content=data, staging_key=f"staging/{org.org_id}/x")  # ambiguous: refused
    await publish(bus, both)
    refused = await next_refusal(refusals)
    assert refused.command_id == both.command_id
    assert "exactly one of content and staging_key" in refused.reason, refused.reason

    honest = attach(actual, content=data)
    await publish(bus, honest)
    event = event_decoder.decode((await attached.next_msg(timeout=15)).data)
    assert event.causation_id == honest.command_id
    assert s3_keys(stack, f"evidence/sha256/{actual}") == [f"evidence/sha256/{actual}"]
    assert s3_keys(stack, f"staging/{org.org_id}/") == []


async def test_evidence_over_the_inline_limit_is_staged_in_s3_then_promoted_to_its_content_address(
    submitter: AsyncClient, org: CreatedOrg, stack: Stack
) -> None:
    run_id = await create(submitter)
    data = os.urandom(MAX_INLINE_EVIDENCE_BYTES + 1)
    accepted = await submitter.add_file(run_id, "large.bin", data)
    assert accepted.sha256 == f"sha256:{hex_of(data)}" and accepted.size == len(data)
    await submitter.wait_for(run_id, ("created",))
    key = f"evidence/sha256/{hex_of(data)}"
    for _ in range(100):
        if s3_keys(stack, key) and not s3_keys(stack, f"staging/{org.org_id}/"):
            break
        await asyncio.sleep(0.1)
    assert s3_keys(stack, key) == [key]
    assert s3_keys(stack, f"staging/{org.org_id}/") == []  # promoted, then the staged copy deleted
    body = s3_client(stack).get_object(Bucket=stack.s3_bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]  # boto3 is untyped
    assert body == data
