"""`GET /org/settings` and `PUT /org/settings` (admin) on the real gateway and PostgreSQL."""

from __future__ import annotations

import httpx

from defendable.client import AsyncClient
from defendable_gateway.admin import CreatedOrg, create_org
from defendable_stack.servers import Stack

from .conftest import Services, key

DEFAULTS = {"package_evidence": "files", "redact": []}


async def test_settings_default_then_an_admin_replaces_them_and_other_roles_cannot(
    org: CreatedOrg, stack: Stack, services: Services
) -> None:
    async with (
        AsyncClient(services.base_url, key(org, "admin")) as admin,
        AsyncClient(services.base_url, key(org, "submitter")) as submitter,
        AsyncClient(services.base_url, key(org, "approver")) as approver,
    ):
        got = await submitter.get("/org/settings")
        assert got.status_code == 200 and got.json() == DEFAULTS

        wanted = {"package_evidence": "hashes", "redact": ["evidence.name", "approval.note"]}
        put = await admin.request("PUT", "/org/settings", json=wanted)
        assert put.status_code == 200, put.text
        assert put.json() == wanted
        for client in (submitter, approver, admin):
            assert (await client.get("/org/settings")).json() == wanted

        for client in (submitter, approver):
            refused = await client.request("PUT", "/org/settings", json=DEFAULTS)
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert "admin" in refused.json()["detail"]
        assert (await submitter.get("/org/settings")).json() == wanted

        # a partial body replaces the whole: what it leaves out is the default again
        put = await admin.request("PUT", "/org/settings", json={"redact": ["approval.approver"]})
        assert put.json() == {"package_evidence": "files", "redact": ["approval.approver"]}

    other = await create_org(stack.env()["DATABASE_URL"], "Settings Elsewhere")
    async with AsyncClient(services.base_url, key(other, "submitter")) as stranger:
        assert (await stranger.get("/org/settings")).json() == DEFAULTS  # settings are per org
    async with httpx.AsyncClient(base_url=services.base_url, timeout=10) as anonymous:
        assert (await anonymous.get("/org/settings")).status_code == 401
        assert (await anonymous.put("/org/settings", json=DEFAULTS)).status_code == 401


async def test_bad_settings_are_a_400_that_says_why_and_nothing_is_stored(org: CreatedOrg, services: Services) -> None:
    async with AsyncClient(services.base_url, key(org, "admin")) as admin:
        cases: list[tuple[bytes, str]] = [
            (b'{"package_evidence": "files", "colour": "blue"}', "colour"),
            (b'{"package_evidence": "everything"}', "package_evidence"),
            (b'{"redact": ["evidence.content"]}', "redact"),
            (b'{"redact": ["approval.note", "approval.note"]}', "twice"),
            (b'{"redact": "approval.note"}', "redact"),
            (b"[]", "object"),
            (b"{not json", "JSON"),
        ]
        for body, says in cases:
            reply = await admin.request("PUT", "/org/settings", data=body, headers={"Content-Type": "application/json"})
            assert reply.status_code == 400, (body, reply.text)
            assert reply.headers["content-type"].startswith("application/problem+json")
            assert says in reply.json()["detail"], (body, reply.json())
        huge = b'{"redact": [' + b'"approval.note",' * 1000 + b'"approval.note"]}'
        too_large = await admin.request("PUT", "/org/settings", data=huge, headers={"Content-Type": "application/json"})
        assert too_large.status_code == 413, too_large.text
        assert (await admin.get("/org/settings")).json() == DEFAULTS
