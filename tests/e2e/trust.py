"""Verify a share document as a stranger would: against the stack's published key set, or with the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import httpx

from defendable_canonical.verification import Check, verify_document
from defendable_canonical.verify_transparency import Trust, parse_key_set


async def shared_checks(share_url: str) -> tuple[dict[str, Any], list[Check]]:
    """The share document at `share_url` and its checks, trusting the host's key set."""
    async with httpx.AsyncClient(timeout=30.0) as anonymous:
        doc = (await anonymous.get(share_url)).raise_for_status().json()
        keys = (await anonymous.get(share_url.split("/share/")[0] + "/.well-known/defendable-keys.json")).content
    return doc, verify_document(doc, Trust(keys=parse_key_set(keys), source="the stack's key set"))


def outcomes(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.outcome for c in checks}


async def verify_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """`defendable verify ARGV…`, run as the command a stranger runs, in its own process."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "defendable_cli.main", "verify", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
