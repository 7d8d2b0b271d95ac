"""Operations endpoints: liveness, readiness with its checks, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import httpx

from .conftest import Services


async def test_health_ready_metrics_and_openapi_answer_without_auth(services: Services) -> None:
    async with httpx.AsyncClient(base_url=services.base_url, timeout=10.0) as http:
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        ready = await http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "checks": {"nats": "ok", "postgres": "ok", "s3": "ok"}}

        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE litestar_requests_total counter" in metrics.text, metrics.text[:2000]
        assert 'app_name="defendable_gateway"' in metrics.text and 'path="/readyz"' in metrics.text

        openapi = await http.get("/schema/openapi.json")
        assert openapi.status_code == 200
        paths = openapi.json()["paths"]
        for path, method in [
            ("/runs", "post"),
            ("/runs", "get"),
            ("/runs/{run_id}", "get"),
            ("/runs/{run_id}/evidence", "post"),
            ("/runs/{run_id}/submission", "post"),
            ("/runs/{run_id}/approve", "post"),
            ("/runs/{run_id}/reject", "post"),
            ("/runs/{run_id}/receipt", "post"),
            ("/receipts/{ref}", "get"),
            ("/share/{token}", "get"),
            ("/ledger/verify", "get"),
        ]:
            assert method in paths.get(path, {}), (path, method, sorted(paths))
