"""A small typed async client for the Defendable HTTP API (used by the demo, tests and bench)."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

import httpx

# The gateway's stage ranks (a run's stage only moves forward).
STAGE_RANK = {
    "requested": 0,
    "created": 1,
    "submitted": 2,
    "checked": 3,
    "approved": 4,
    "rejected": 4,
    "minted": 5,
    "rendered": 6,
    "refused": 7,
}


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, base_url: str, key: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}"}
        self._http = http or httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=200, keepalive_expiry=30.0)
        )
        self._own = http is None

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._http.request(method, self.base_url + path, headers=self._headers, **kw)
        body: Any = response.json() if response.content else None
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    async def create_run(
        self, project: str, flight_sheet: str, agent_profile: dict[str, Any], lane: str = "agent_work",
        assignment: str = "",
    ) -> str:  # fmt: skip
        body = await self._call(
            "POST",
            "/runs",
            json={
                "project": project,
                "lane": lane,
                "flight_sheet": flight_sheet,
                "agent_profile": agent_profile,
                "assignment": assignment,
            },
        )
        run_id: str = body["run_id"]
        return run_id

    async def add_file(
        self, run_id: str, name: str, data: bytes, media_type: str | None = None, sha256: str | None = None
    ) -> dict[str, Any]:
        media_type = media_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        fields = {"sha256": sha256} if sha256 else None
        result: dict[str, Any] = await self._call(
            "POST", f"/runs/{run_id}/evidence", files={"file": (name, data, media_type)}, data=fields
        )
        return result

    async def add_note(self, run_id: str, name: str, content: str, kind: str = "note") -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/runs/{run_id}/evidence", json={"kind": kind, "name": name, "content": content}
        )
        return result

    async def submit(self, run_id: str, submission: dict[str, Any] | bytes) -> None:
        if isinstance(submission, bytes):
            await self._call(
                "POST", f"/runs/{run_id}/submission", content=submission, headers={"content-type": "application/json"}
            )
        else:
            await self._call("POST", f"/runs/{run_id}/submission", json=submission)

    async def approve(self, run_id: str, note: str = "") -> None:
        await self._call("POST", f"/runs/{run_id}/approve", json={"note": note})

    async def reject(self, run_id: str, note: str = "") -> None:
        await self._call("POST", f"/runs/{run_id}/reject", json={"note": note})

    async def run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/runs/{run_id}")
        return result

    # `timeout` bounds a series of HTTP long-polls (each one a server-side wait), not one awaitable.
    async def wait_for(self, run_id: str, stages: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Long-poll until the run reaches one of `stages` (or passes them); refused or rejected ends it."""
        target = min(stages, key=lambda stage: STAGE_RANK[stage])
        deadline = time.monotonic() + timeout
        while True:
            left = min(deadline - time.monotonic(), 25.0)
            run: dict[str, Any] = await self._call(
                "GET", f"/runs/{run_id}", params={"until": target, "timeout": max(left, 0.1)}
            )
            stage = run["stage"]
            if stage in stages or (STAGE_RANK[stage] > STAGE_RANK[target] and stage not in ("rejected", "refused")):
                return run
            if stage in ("refused", "rejected") or time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is {stage}, waited for {stages}: {run.get('refusals')}")

    async def receipt(self, run_id: str) -> tuple[int, Any]:
        response = await self._http.post(f"{self.base_url}/runs/{run_id}/receipt", headers=self._headers)
        return response.status_code, response.json()

    async def get(self, path: str) -> httpx.Response:
        return await self._http.get(self.base_url + path, headers=self._headers)
