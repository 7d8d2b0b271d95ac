"""The `trail` rule kind: what the execution trail must show. `(rule, context) -> list[Finding]`.

The trail is the run's OTLP evidence normalised into step records (defendable_canonical
otlp_steps); a sheet names the tool calls the work must rest on — "the memo's NOI must
come from a `read_rent_roll` tool call" — and the rule checks the trail holds them.

Granularity: one finding for the trail itself (present, readable, intact) and one per
required tool. Statuses:
* no trail evidence, or trail evidence that cannot be read → a flag of the rule's tier on
  the trail finding, and every required tool is a flag too (nothing shows it was called);
* cycles, duplicate span ids or steps that end before they start → the trail finding is a
  flag of `integrity_tier` (the trail is there but cannot be fully trusted);
* a required tool counts only steps of kind "tool" with that tool name and status other
  than "error": a failed call is not evidence that the figure came from the tool.
"""

from __future__ import annotations

from collections.abc import Sequence

from defendable_canonical.model import Finding
from defendable_canonical.trail import StepRecord
from defendable_referee.context import CheckContext
from defendable_referee.findings import finding, listing
from defendable_referee.sheet import RequiredTool, Rule, TrailParams, params_for

INTEGRITY_PROBLEMS = ("cycle", "duplicate_span_id", "time_inverted")


def check_trail(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, TrailParams)
    steps = context.trail
    if steps is None:
        why = context.trail_error or "the run attached no execution trail (OTLP trace evidence)"
        return [finding(rule, "flag", f"no execution trail to check: {why}")] + [
            finding(rule, "flag", f"required tool {tool.name}: no trail shows it was called{_because(tool)}")
            for tool in params.tools
        ]
    return [_integrity(rule, params, steps)] + [_required(rule, steps, tool) for tool in params.tools]


def _integrity(rule: Rule, params: TrailParams, steps: Sequence[StepRecord]) -> Finding:
    broken: dict[str, list[str]] = {}
    for step in steps:
        for flag in step.flags:
            if flag in INTEGRITY_PROBLEMS:
                broken.setdefault(flag, []).append(f"step {step.seq}")
    if not broken:
        return finding(rule, "pass", f"execution trail of {len(steps)} steps is intact")
    shown = "; ".join(f"{code}: {listing(where)}" for code, where in sorted(broken.items()))
    return finding(
        rule, "flag", f"execution trail of {len(steps)} steps has problems: {shown}", tier=params.integrity_tier
    )


def _required(rule: Rule, steps: Sequence[StepRecord], tool: RequiredTool) -> Finding:
    calls = [s for s in steps if s.kind == "tool" and s.tool_name == tool.name]
    good = [s for s in calls if s.status != "error"]
    failed = len(calls) - len(good)
    where = listing([f"step {s.seq}" for s in good])
    if len(good) >= tool.min_calls:
        return finding(
            rule,
            "pass",
            f"required tool {tool.name}: {len(good)} successful call{'s' if len(good) != 1 else ''} ({where})",
            observed=str(len(good)),
            expected=f"≥ {tool.min_calls}",
        )
    failures = f"; {failed} failed" if failed else ""
    return finding(
        rule,
        "flag",
        f"required tool {tool.name}: {len(good)} successful calls, {tool.min_calls} needed{failures}{_because(tool)}",
        observed=str(len(good)),
        expected=f"≥ {tool.min_calls}",
    )


def _because(tool: RequiredTool) -> str:
    return f" ({tool.why})" if tool.why else ""
