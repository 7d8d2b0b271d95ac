"""Bad input gets a 4xx problem+json that says what to fix — never a 5xx, never a hang."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import boto3  # type: ignore[import-untyped]  # the package ships no type information
import httpx
import pytest
from botocore.config import Config

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg
from defendable_stack.servers import Stack

from .conftest import MAX_EVIDENCE_BYTES, Services, create, key
from .memo import memo

SHEET = "cre_memo_dscr_ltv_v1@1.0.0"
PROFILE = {"model": "gpt-test", "harness": "pytest", "tools": [], "runtime": "python3.11"}


def run_request(**overrides: Any) -> dict[str, Any]:
    return {"project": "bad input", "lane": "agent_work", "flight_sheet": SHEET, "agent_profile": PROFILE} | overrides


def s3_keys(stack: Stack, prefix: str) -> list[str]:
    """Every object under `prefix`, listed straight from S3 (not through any service)."""
    env = stack.env()
    s3 = boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        aws_access_key_id=env["S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["S3_SECRET_ACCESS_KEY"],
        region_name=env["S3_REGION"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=env["S3_BUCKET"], Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture
async def http(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.base_url, timeout=20.0) as client:
        yield client


def auth(org: CreatedOrg, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key(org, role)}"}


def assert_problem(response: httpx.Response, status: int, *says: str) -> str:
    """The answer is RFC 9457 problem+json with this status, and its detail mentions each of `says`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    text = f"{body.get('detail', '')} {body.get('extra', '')}"
    for word in says:
        assert word in text, (word, body)
    return text


async def test_a_malformed_json_body_on_create_run_is_a_400_saying_the_json_is_malformed(
    http: httpx.AsyncClient, org: CreatedOrg
) -> None:
    response = await http.post(
        "/runs",
        content=b'{"project": "x", "lane": ',
        headers=auth(org, "submitter") | {"content-type": "application/json"},
    )
    assert_problem(response, 400, "not valid JSON")


async def test_a_malformed_json_submission_is_a_400_saying_it_is_not_valid_json(
    http: httpx.AsyncClient, submitter: AsyncClient, org: CreatedOrg
) -> None:
    run_id = await create(submitter)
    response = await http.post(
        f"/runs/{run_id}/submission",
        content=b'{"assignment_id": "a", ',
        headers=auth(org, "submitter") | {"content-type": "application/json"},
    )
    assert_problem(response, 400, "not valid JSON")
    assert (await submitter.run(run_id))["stage"] in ("requested", "created")


async def test_an_unknown_flight_sheet_is_a_422_naming_it(http: httpx.AsyncClient, org: CreatedOrg) -> None:
    response = await http.post(
        "/runs", json=run_request(flight_sheet="no_such_sheet@9.9.9"), headers=auth(org, "submitter")
    )
    assert_problem(response, 422, "no_such_sheet")


async def test_the_wrong_lane_for_a_flight_sheet_is_a_422_naming_both_lanes(
    http: httpx.AsyncClient, org: CreatedOrg
) -> None:
    response = await http.post("/runs", json=run_request(lane="compute"), headers=auth(org, "submitter"))
    assert_problem(response, 422, "agent_work", "compute")


async def test_an_unknown_field_is_a_400_naming_the_field(http: httpx.AsyncClient, org: CreatedOrg) -> None:
    response = await http.post("/runs", json=run_request(colour="mauve"), headers=auth(org, "submitter"))
    assert_problem(response, 400, "colour")
    nested = run_request(agent_profile=PROFILE | {"temperature": 2})
    response = await http.post("/runs", json=nested, headers=auth(org, "submitter"))
    assert_problem(response, 400, "temperature")


async def test_an_oversized_submission_is_a_413_and_the_run_stays_open(
    http: httpx.AsyncClient, submitter: AsyncClient, org: CreatedOrg
) -> None:
    run_id = await create(submitter)
    body = memo()
    body["agent_summary"] = "x" * (256 * 1024)
    response = await http.post(f"/runs/{run_id}/submission", json=body, headers=auth(org, "submitter"))
    assert_problem(response, 413, "at most 262144 bytes")
    assert (await submitter.run(run_id))["stage"] in ("requested", "created")


async def test_oversized_evidence_is_a_413_naming_the_limit_and_leaves_nothing_in_staging(
    http: httpx.AsyncClient, submitter: AsyncClient, org: CreatedOrg, stack: Stack
) -> None:
    run_id = await create(submitter)
    too_big = os.urandom(MAX_EVIDENCE_BYTES + 1)
    multipart = await http.post(
        f"/runs/{run_id}/evidence", files={"file": ("big.bin", too_big)}, headers=auth(org, "submitter")
    )
    assert_problem(multipart, 413, str(MAX_EVIDENCE_BYTES))
    raw = await http.post(
        f"/runs/{run_id}/evidence?name=big.bin",
        content=too_big,
        headers=auth(org, "submitter") | {"content-type": "application/octet-stream"},
    )
    assert_problem(raw, 413, str(MAX_EVIDENCE_BYTES))
    assert s3_keys(stack, f"staging/{org.org_id}/") == []
    assert (await submitter.run(run_id))["evidence"] == []


async def test_a_request_without_an_api_key_is_a_401_saying_how_to_authenticate(
    http: httpx.AsyncClient, submitter: AsyncClient
) -> None:
    run_id = await create(submitter)
    for method, path in [("POST", "/runs"), ("GET", "/runs"), ("GET", f"/runs/{run_id}"), ("GET", "/ledger/verify")]:
        response = await http.request(method, path, json=run_request() if method == "POST" else None)
        assert_problem(response, 401, "Authorization: Bearer")
    wrong = await http.get("/runs", headers={"Authorization": "Bearer dk_0000_not-a-real-key"})
    assert_problem(wrong, 401, "unknown or revoked")


async def test_a_submitter_cannot_approve_or_reject_and_is_told_the_role_needed(
    http: httpx.AsyncClient, submitter: AsyncClient, org: CreatedOrg
) -> None:
    run_id = await create(submitter)
    for action in ("approve", "reject"):
        response = await http.post(f"/runs/{run_id}/{action}", json={"note": ""}, headers=auth(org, "submitter"))
        assert_problem(response, 403, "approver role", "submitter")
    assert (await submitter.run(run_id))["approval"] is None


async def test_a_cursor_this_api_did_not_issue_is_a_400(http: httpx.AsyncClient, org: CreatedOrg) -> None:
    for cursor in ("garbage", "!!!!", "WyJub3QtYS1kYXRlIl0="):
        response = await http.get("/runs", params={"cursor": cursor}, headers=auth(org, "submitter"))
        assert_problem(response, 400, "cursor")


async def test_an_unknown_status_filter_is_a_400_listing_the_stages(http: httpx.AsyncClient, org: CreatedOrg) -> None:
    response = await http.get("/runs", params={"status": "done"}, headers=auth(org, "submitter"))
    assert_problem(response, 400, "checked")


async def test_a_garbage_run_id_is_a_404_everywhere(http: httpx.AsyncClient, org: CreatedOrg) -> None:
    for run_id in ("garbage", "run_" + "0" * 32, "run_" + "z" * 32, "%2e%2e", "x" * 500):
        for method, path, role in [
            ("GET", f"/runs/{run_id}", "submitter"),
            ("POST", f"/runs/{run_id}/submission", "submitter"),
            ("POST", f"/runs/{run_id}/evidence", "submitter"),
            ("POST", f"/runs/{run_id}/approve", "approver"),
            ("POST", f"/runs/{run_id}/receipt", "approver"),
        ]:
            response = await http.request(method, path, json={}, headers=auth(org, role))
            assert_problem(response, 404, "no run")
    for ref in ("garbage", "sha256:" + "0" * 64, "sha256:" + "0" * 64 + ".pdf"):
        response = await http.get(f"/receipts/{ref}", headers=auth(org, "approver"))
        assert_problem(response, 404, "no receipt")
    response = await http.get("/share/not-a-share-token-at-all", headers={})
    assert_problem(response, 404, "no receipt")
