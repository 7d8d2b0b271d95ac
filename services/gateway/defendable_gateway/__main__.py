"""`python -m defendable_gateway` serves the HTTP API (GATEWAY_HOST, GATEWAY_PORT)."""

import logging
import os

import uvicorn

logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
uvicorn.run(
    "defendable_gateway.app:app",
    host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
    port=int(os.environ.get("GATEWAY_PORT", "8700")),
    log_level="warning",
    access_log=False,
    timeout_keep_alive=75,  # longer than clients keep idle connections, so a reused one is never half-closed
)
