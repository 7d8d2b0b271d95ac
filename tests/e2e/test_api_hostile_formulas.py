"""Hostile formulas in a submission are flagged, never evaluated into a hang or a crash (DESIGN.md §6)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from defendable.client import AsyncClient

from .conftest import AGENT_PROFILE, Services, create
from .memo import EVIDENCE, memo

CHECK_WITHIN_S = 30.0
HOSTILE = {
    "tower of powers": "9**9**9**9",
    "huge product": "(10**4000)*(10**4000)",
    "import": "__import__('os')",
    "deep nesting": "(" * 10_000 + "1" + ")" * 10_000,
    "dunder walk": "().__class__",
}


async def checked_within(client: AsyncClient, formula: str, profile: dict[str, Any] | None = None) -> dict[str, object]:
    run_id = await create(client, profile)
    await asyncio.gather(*(client.add_file(run_id, name, data) for name, data in EVIDENCE.items()))
    await client.submit(run_id, memo(formula=formula))
    return await client.wait_for(run_id, ("checked",), timeout=CHECK_WITHIN_S)


@pytest.mark.parametrize("formula", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_formula_is_a_high_flag_and_the_referee_survives(
    submitter: AsyncClient, services: Services, formula: str
) -> None:
    started = time.monotonic()
    run = await checked_within(submitter, formula)
    assert time.monotonic() - started < CHECK_WITHIN_S
    assert run["stage"] == "checked"
    verdict = run["verdict"]
    findings = run["findings"]
    assert isinstance(verdict, dict) and isinstance(findings, list)
    assert verdict["severity"] == "propolis", verdict
    assert verdict["risk"]["high"] >= 1, verdict
    high = [f for f in findings if f["status"] == "flag" and f["tier"] == "high"]
    # The math rule refuses the hostile calculation itself (calculations[2] is the memo's dscr).
    assert any(
        f["rule_id"] == "math.calculations" and "calculations[2] dscr: formula refused" in f["message"] for f in high
    ), high
    assert services.procs["referee"].poll() is None, "the referee died on a hostile formula"


async def test_the_referee_still_checks_an_honest_run_after_hostile_ones(
    submitter: AsyncClient, services: Services
) -> None:
    await asyncio.gather(*(checked_within(submitter, formula) for formula in HOSTILE.values()))
    # Another agent profile: five high-flag verdicts lock the lane for the hostile one (governance, issue 3).
    run = await checked_within(submitter, "noi / annual_debt_service", {**AGENT_PROFILE, "model": "gpt-honest"})
    assert isinstance(run["verdict"], dict)
    assert run["verdict"]["severity"] == "honey", run["findings"]
    assert services.procs["referee"].poll() is None
