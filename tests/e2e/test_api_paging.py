"""Listing runs pages with an opaque cursor: every run exactly once, newest first, filters respected."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from defendable.client import AsyncClient

from .conftest import create

PROFILE = {"model": "gpt-test", "harness": "pytest", "tools": [], "runtime": "python3.11"}


async def all_pages(client: AsyncClient, limit: int, **filters: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params = {"limit": str(limit), **filters} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/runs?" + "&".join(f"{k}={v}" for k, v in params.items()))
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["runs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 20, "paging does not end"


async def test_paging_with_a_cursor_returns_every_run_exactly_once_newest_first(submitter: AsyncClient) -> None:
    project = "paging " + secrets.token_hex(4)
    ours = [
        await submitter.create_run(project, "cre_memo_dscr_ltv_v1@1.0.0", PROFILE, assignment="page me")
        for _ in range(7)
    ]
    other = await create(submitter)  # another project in the same org: filtered out
    await asyncio.gather(*(submitter.wait_for(run_id, ("created",)) for run_id in [*ours, other]))

    for filters in ({"project": project}, {"project": project, "status": "created"}):
        pages = await all_pages(submitter, 3, **filters)
        assert [len(page) for page in pages] == [3, 3, 1]
        listed = [run["run_id"] for page in pages for run in page]
        assert sorted(listed) == sorted(ours) and len(set(listed)) == 7
        stamps = [(run["created_at"], run["run_id"]) for page in pages for run in page]
        assert stamps == sorted(stamps, reverse=True)
        assert all(run["project"] == project and run["stage"] == "created" for page in pages for run in page)

    assert await all_pages(submitter, 3, project=project, status="checked") == [[]]
    everything = [run["run_id"] for page in await all_pages(submitter, 2) for run in page]
    assert set(everything) == {*ours, other} and len(everything) == 8
