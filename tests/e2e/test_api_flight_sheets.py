"""GET /flight-sheets: the library the running referee holds, each sheet exactly as published."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from defendable.client import AsyncClient
from defendable_canonical.digest import sha256_digest
from defendable_canonical.jcs import canonicalize
from defendable_referee.publication import read_lock

from .conftest import Services

SHEETS = Path(__file__).parents[2] / "services/referee/defendable_referee/flight_sheets"


async def test_the_library_lists_every_published_sheet_with_its_pinned_hash(submitter: AsyncClient) -> None:
    reply = await submitter.get("/flight-sheets")
    assert reply.status_code == 200, reply.text
    items = reply.json()["items"]
    pinned = read_lock((SHEETS / "published.txt").read_text())
    assert {f"{i['id']}@{i['version']}": i["sha256"] for i in items} == pinned
    assert all(i["lane"] in ("agent_work", "dataset", "compute") and i["title"] for i in items)
    assert [f"{i['id']}@{i['version']}" for i in items] == sorted(pinned)


async def test_one_sheet_is_served_as_published_and_hashes_to_its_etag(submitter: AsyncClient) -> None:
    reply = await submitter.get("/flight-sheets/cre_memo_dscr_ltv_v1@1.0.0")
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    assert doc["sheet"] == json.loads((SHEETS / "cre_memo_dscr_ltv_v1.json").read_text())
    assert (SHEETS / "cre_memo_dscr_ltv_v1.json").read_bytes().strip() in reply.content  # the bytes, as published
    assert sha256_digest(canonicalize(doc["sheet"])) == doc["sha256"]
    assert reply.headers["etag"] == f'"{doc["sha256"]}"' and "immutable" in reply.headers["cache-control"]
    assert (doc["id"], doc["version"], doc["lane"]) == ("cre_memo_dscr_ltv_v1", "1.0.0", "agent_work")


async def test_unknown_or_malformed_sheet_refs_are_404_problems(submitter: AsyncClient) -> None:
    for ref in ("cre_memo_dscr_ltv_v1@9.9.9", "cre_memo_dscr_ltv_v1", "..%2F..%2Fetc", "x" * 500 + "@1.0.0"):
        reply = await submitter.get(f"/flight-sheets/{ref}")
        assert reply.status_code == 404, (ref, reply.text)
        assert reply.headers["content-type"].startswith("application/problem+json")
        assert reply.json()["status"] == 404


def test_the_library_needs_an_api_key(services: Services) -> None:
    for path in ("/flight-sheets", "/flight-sheets/cre_memo_dscr_ltv_v1@1.0.0"):
        assert httpx.get(services.base_url + path, timeout=10).status_code == 401
