"""Verify a share document as a stranger would: against the stack's published key set."""

from __future__ import annotations

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
