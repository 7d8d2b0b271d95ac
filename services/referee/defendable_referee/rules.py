"""The rule kinds. Each is `(rule, context) -> list[Finding]`; a failed check is data.
The two that read the evidence's text, citation and extraction, live in text_rules.py.

Granularity (it sets the verdict's score): structure, schema and each evidence
sub-check give one finding; math gives one per calculation, one for input
consistency and one per re-derived quantity — plus, where the sheet asks, one
per quantity with `excludes` that the memo calculates, and (`reconcile`) one
per quantity the memo states somewhere besides its own result; policy gives
one per gate.

Statuses: "pass"; "flag" (checked and failed, with the rule's tier unless
stated); "open" (could not be decided from the submission — e.g. a base
input needed to re-derive DSCR is absent; it carries a tier and counts as an
unsatisfied flag of that tier in the verdict).

A rule that raises, returns nothing, or whose kind is unknown yields one high
flag "check could not run: ..." — never a pass.
"""

from __future__ import annotations

import itertools
import operator
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from defendable_canonical.model import Finding
from defendable_referee import output_schema
from defendable_referee.compute import checks as compute_checks
from defendable_referee.context import CheckContext
from defendable_referee.dataset import checks as dataset_checks
from defendable_referee.errors import EvaluationError
from defendable_referee.evaluator import parse_expression
from defendable_referee.findings import MAX_LISTED
from defendable_referee.findings import finding as _finding
from defendable_referee.findings import listing as _listing
from defendable_referee.numeric import CONTEXT, MAX_PLACES, fixed, round_half_up, to_decimal, within
from defendable_referee.sheet import (
    Derivation,
    EvidenceParams,
    Gate,
    MathParams,
    PolicyParams,
    Rule,
    SchemaParams,
    StructureParams,
    params_for,
)
from defendable_referee.text_rules import check_citation, check_extraction
from defendable_referee.trail_rules import check_trail

MAX_TEXT = 200  # characters of submitted text quoted in a message
MAX_SCHEMA_ERRORS_SCANNED = 100

RuleCheck = Callable[[Rule, CheckContext], list[Finding]]


def _clip(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


# -- structure --------------------------------------------------------------


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


def check_structure(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, StructureParams)
    doc = context.document
    missing = [key for key in params.required if key not in doc]
    empty = [key for key in params.non_empty if key in doc and _is_empty(doc[key])]
    if not missing and not empty:
        return [_finding(rule, "pass", f"all {len(params.required)} required sections are present")]
    problems = ([f"missing: {_listing(missing)}"] if missing else []) + ([f"empty: {_listing(empty)}"] if empty else [])
    return [_finding(rule, "flag", "required sections " + "; ".join(problems), observed=", ".join(missing + empty))]


# -- schema -----------------------------------------------------------------


def check_schema(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, SchemaParams)
    # Scan a bounded number of errors, then sort so the report does not depend on
    # the validator's traversal order.
    found = output_schema.errors(context.sheet.required_output_schema, context.document)
    scanned = list(itertools.islice(found, MAX_SCHEMA_ERRORS_SCANNED))
    if not scanned:
        return [_finding(rule, "pass", "submission matches the required output schema")]
    errors = sorted((path, _clip(message)) for path, message in scanned)
    shown = [f"{path}: {message}" for path, message in errors[: params.max_errors_reported]]
    more = len(scanned) - len(shown)
    count = f"{len(scanned)}+" if len(scanned) == MAX_SCHEMA_ERRORS_SCANNED else str(len(scanned))
    tail = f" (and {more} more)" if more else ""
    return [
        _finding(
            rule,
            "flag",
            f"submission does not match the required output schema ({count} errors): " + "; ".join(shown) + tail,
            observed=shown[0],
        )
    ]


# -- math -------------------------------------------------------------------


def check_math(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, MathParams)
    findings = _recompute_calculations(rule, context, params)
    if params.rederive and context.sheet.derivations:
        findings += _compare_rederived(rule, context)
        findings += _check_exclusions(rule, context)
        if params.reconcile:
            findings += _reconcile_derived(rule, context)
    return findings


def _recompute_calculations(rule: Rule, context: CheckContext, params: MathParams) -> list[Finding]:
    calculations = context.items("calculations")
    if calculations is None:
        return [_finding(rule, "flag", "calculations is missing or not a list: nothing to recompute")]
    if len(calculations) > params.max_calculations:
        return [
            _finding(
                rule,
                "flag",
                f"{len(calculations)} calculations; the limit is {params.max_calculations}: not recomputed",
                observed=str(len(calculations)),
                expected=f"≤ {params.max_calculations}",
            )
        ]
    return [_recompute_one(rule, context, i, calc) for i, calc in enumerate(calculations)]


def _recompute_one(rule: Rule, context: CheckContext, index: int, calc: object) -> Finding:
    where = f"calculations[{index}]"
    if not isinstance(calc, dict):
        return _finding(rule, "flag", f"{where} is not an object")
    label = f"{where} {_clip(calc.get('name'))}"
    formula, raw_inputs = calc.get("formula"), calc.get("inputs")
    if not isinstance(formula, str) or not isinstance(raw_inputs, dict):
        return _finding(rule, "flag", f"{label}: needs a formula (text) and inputs (object) to recompute")
    declared = to_decimal(calc.get("result"))
    if declared is None:
        return _finding(rule, "flag", f"{label}: result {_clip(calc.get('result'))} is not a number")
    inputs: dict[str, Decimal] = {}
    for name, raw in raw_inputs.items():
        value = to_decimal(raw)
        if value is None:
            return _finding(rule, "flag", f"{label}: input {_clip(name)} = {_clip(raw)} is not a number")
        inputs[name] = value
    try:
        computed = parse_expression(formula).evaluate(inputs)
    except EvaluationError as exc:
        # A formula we cannot safely evaluate is unverified work: a flag, never a pass.
        return _finding(rule, "flag", f"{label}: formula refused: {exc}", observed=_clip(formula))
    tolerance = context.sheet.tolerances.for_units(calc.get("units"))
    rounding = calc.get("rounding")
    places = rounding if isinstance(rounding, int) and not isinstance(rounding, bool) else tolerance.places
    places = min(max(places, 0), MAX_PLACES)
    expected = round_half_up(computed, places)
    ok = within(declared, expected, tolerance.absolute_decimal)
    verb = "matches" if ok else "does not match"
    return _finding(
        rule,
        "pass" if ok else "flag",
        f"{label}: declared {fixed(declared)} {verb} {_clip(formula)} = {fixed(expected)}"
        f" (±{tolerance.absolute}, {places} places)",
        observed=fixed(declared),
        expected=fixed(expected),
    )


def _compare_rederived(rule: Rule, context: CheckContext) -> list[Finding]:
    """The sheet's figures against the memo's, independent of the agent's formulas."""
    derivation = context.rederivation
    findings: list[Finding] = []
    if derivation.conflicts:
        stated = [f"{name} = {' vs '.join(texts[:3])}" for name, texts in sorted(derivation.conflicts.items())]
        findings.append(_finding(rule, "flag", f"inputs stated with different values: {_listing(stated)}"))
    else:
        findings.append(_finding(rule, "pass", "every base input is stated with one value"))
    reported: dict[str, list[tuple[int, object]]] = {}
    for i, calc in context.calculation_objects():
        if isinstance(calc.get("name"), str):
            reported.setdefault(calc["name"], []).append((i, calc.get("result")))
    for d in context.sheet.derivations:
        tolerance = context.sheet.tolerances.classes[d.tolerance]
        memo = reported.get(d.name, [])
        if d.name in derivation.missing:
            missing = _listing(list(derivation.missing[d.name]))
            findings.append(
                _finding(rule, "open", f"cannot re-derive {d.name}: the submission does not state {missing}")
            )
            continue
        if d.name in derivation.errors:
            findings.append(_finding(rule, "flag", f"{d.name} cannot be re-derived: {derivation.errors[d.name]}"))
            continue
        expected = round_half_up(derivation.values[d.name], tolerance.places)
        if not memo:
            findings.append(
                _finding(rule, "open", f"the memo reports no calculation named {d.name}", expected=fixed(expected))
            )
            continue
        if len(memo) > 1:
            places = ", ".join(f"calculations[{i}]" for i, _ in memo[:MAX_LISTED])
            findings.append(_finding(rule, "flag", f"{d.name} is reported {len(memo)} times ({places})"))
            continue
        index, raw = memo[0]
        declared = to_decimal(raw)
        ok = declared is not None and within(declared, expected, tolerance.absolute_decimal)
        shown = fixed(declared) if declared is not None else _clip(raw)
        why = "" if ok or declared is None else _excluded_difference(context, d, declared, expected)
        findings.append(
            _finding(
                rule,
                "pass" if ok else "flag",
                f"{d.name}: memo reports {shown} (calculations[{index}]); re-derived from base inputs"
                f" {d.formula} = {fixed(expected)} (±{tolerance.absolute}){why}",
                observed=shown,
                expected=fixed(expected),
            )
        )
    return findings


def _stated_value(context: CheckContext, name: str) -> Decimal | None:
    """The first value the memo states for `name`: as an input, else as a calculation's result."""
    for stated, _, value in context.input_values():
        if stated == name:
            return value
    for _, calc in context.calculation_objects():
        if calc.get("name") == name and (result := to_decimal(calc.get("result"))) is not None:
            return result
    return None


def _excluded_difference(context: CheckContext, d: Derivation, declared: Decimal, expected: Decimal) -> str:
    """Why a figure is off, when the gap is exactly one excluded item the memo states
    (NOI reported as EGI − opex − debt service, with the subtraction hidden in a literal)."""
    tolerance = context.sheet.tolerances.classes[d.tolerance].absolute_decimal
    gap = CONTEXT.subtract(expected, declared)
    for name in d.excludes:
        value = _stated_value(context, name)
        if value is not None and value and within(gap, value, tolerance):
            return f"; the memo's figure is short by exactly {name} ({fixed(value)}), which {d.name} excludes"
    return ""


def _reads(calc: dict[str, object], by_name: dict[str, list[tuple[int, dict[str, object]]]]) -> list[tuple[str, str]]:
    """(name, via) for every input `calc` reads, following inputs that are the memo's own
    calculations; `via` names the calculation an indirect input came through ("" if direct)."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    queue: deque[tuple[dict[str, object], str]] = deque([(calc, "")])
    while queue:
        current, via = queue.popleft()
        inputs = current.get("inputs")
        for name in inputs if isinstance(inputs, dict) else ():
            if not isinstance(name, str) or name in seen:
                continue
            seen.add(name)
            found.append((name, via))
            for i, source in by_name.get(name, []):
                if source is not calc:
                    queue.append((source, via or f"calculations[{i}] {name}"))
    return found


def _check_exclusions(rule: Rule, context: CheckContext) -> list[Finding]:
    """A quantity defined without some items (NOI: no debt service, depreciation or capex)
    must not read them, directly or through the memo's other calculations. One finding per
    such quantity the memo calculates; none where it does not (the re-derivation opens that)."""
    by_name: dict[str, list[tuple[int, dict[str, object]]]] = {}
    for i, calc in context.calculation_objects():
        if isinstance(calc.get("name"), str):
            by_name.setdefault(calc["name"], []).append((i, calc))
    findings: list[Finding] = []
    for d in context.sheet.derivations:
        if not d.excludes or d.name not in by_name:
            continue
        excluded = _listing(d.excludes)
        hits: list[str] = []
        names: list[str] = []
        for i, calc in by_name[d.name]:
            for name, via in _reads(calc, by_name):
                if name in d.excludes:
                    hits.append(f"calculations[{i}] reads {name}" + (f" via {via}" if via else ""))
                    names.append(name)
        if not hits:
            findings.append(_finding(rule, "pass", f"{d.name} reads none of the items it excludes ({excluded})"))
            continue
        findings.append(
            _finding(
                rule,
                "flag",
                f"{d.name} must exclude {excluded}, but {_listing(hits)}",
                observed=_listing(names),
                expected=f"none of {excluded}",
            )
        )
    return findings


def _reconcile_derived(rule: Rule, context: CheckContext) -> list[Finding]:
    """A derived quantity the memo also states elsewhere — in `inputs_used`, or as another
    calculation's input (NOI feeding cap rate) — must be one figure: every statement and the
    calculation's own result agree within the quantity's tolerance. With no calculation of it,
    the sheet's re-derived figure stands in for the result. One finding per quantity so used;
    the result itself is compared with the re-derivation by `_compare_rederived`."""
    listed = [(name, where, value) for name, where, value in context.input_values() if where.startswith("inputs_used")]
    derivation = context.rederivation
    findings: list[Finding] = []
    for d in context.sheet.derivations:
        tolerance = context.sheet.tolerances.classes[d.tolerance]
        stated = [(where, value) for name, where, value in listed if name == d.name]
        results = 0
        for i, calc in context.calculation_objects():
            if calc.get("name") == d.name and (result := to_decimal(calc.get("result"))) is not None:
                stated.append((f"calculations[{i}] result", result))
                results += 1
            inputs = calc.get("inputs")
            if isinstance(inputs, dict) and (used := to_decimal(inputs.get(d.name))) is not None:
                stated.append((f"calculations[{i}].inputs", used))
        if len(stated) == results:
            continue  # stated nowhere but as its own result: nothing to reconcile
        if not results and d.name in derivation.values:
            expected = round_half_up(derivation.values[d.name], tolerance.places)
            stated.append((f"re-derived {d.formula}", expected))
        values = [value for _, value in stated]
        agree = within(max(values), min(values), tolerance.absolute_decimal)
        shown = _listing([f"{fixed(value)} ({where})" for where, value in stated])
        message = (
            f"{d.name} is the same figure (±{tolerance.absolute}) wherever it is stated: {shown}"
            if agree
            else f"{d.name} is stated with different values (±{tolerance.absolute}): {shown}"
        )
        findings.append(
            _finding(
                rule,
                "pass" if agree else "flag",
                message,
                observed=None if agree else fixed(max(values)) + " vs " + fixed(min(values)),
            )
        )
    return findings


# -- evidence ---------------------------------------------------------------


def check_evidence(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, EvidenceParams)
    return [_claims_resolve(rule, context, params), _inputs_disclosed(rule, context, params)]


def _claims_resolve(rule: Rule, context: CheckContext, params: EvidenceParams) -> Finding:
    claims = context.items("claims")
    if claims is None:
        return _finding(rule, "flag", "claims is missing or not a list: no claim can be traced to evidence")
    if len(claims) > params.max_claims:
        return _finding(
            rule,
            "flag",
            f"{len(claims)} claims; the limit is {params.max_claims}: not checked",
            observed=str(len(claims)),
        )
    unresolved = [
        f"claims[{i}] → {_clip(claim.get('evidence_reference') if isinstance(claim, dict) else None)}"
        for i, claim in enumerate(claims)
        if not (isinstance(claim, dict) and context.resolves(claim.get("evidence_reference")))
    ]
    if not unresolved:
        return _finding(rule, "pass", f"all {len(claims)} claims cite attached evidence")
    return _finding(
        rule,
        "flag",
        f"{len(unresolved)} of {len(claims)} claims cite evidence that is not attached: {_listing(unresolved)}",
        observed=str(len(unresolved)),
        expected="0",
    )


def _inputs_disclosed(rule: Rule, context: CheckContext, params: EvidenceParams) -> Finding:
    """An input with no attached evidence must be admitted in missing_inputs."""
    evidenced: set[str] = set()
    for entry in context.items("inputs_used") or []:
        if isinstance(entry, dict) and context.resolves(entry.get("evidence_reference")):
            evidenced.add(str(entry.get("name")))
    disclosed = {str(m.get("name")) if isinstance(m, dict) else str(m) for m in context.items("missing_inputs") or []}
    used: list[str] = []
    for _, calc in context.calculation_objects():
        inputs = calc.get("inputs")
        for name in inputs if isinstance(inputs, dict) else ():
            if name not in used and name not in context.calculation_results:
                used.append(name)
    undisclosed = [name for name in used if name not in evidenced and name not in disclosed]
    if not undisclosed:
        return _finding(rule, "pass", f"all {len(used)} calculation inputs are evidenced or disclosed as missing")
    return _finding(
        rule,
        "flag",
        f"inputs with no attached evidence and not listed in missing_inputs: {_listing(undisclosed)}",
        tier=params.undisclosed_input_tier,
        observed=_listing(undisclosed),
    )


# -- policy -----------------------------------------------------------------

_GATE_OPS: dict[str, Callable[[Decimal, Decimal], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def check_policy(rule: Rule, context: CheckContext) -> list[Finding]:
    params = params_for(rule)
    assert isinstance(params, PolicyParams)
    return [_apply_gate(rule, context, gate) for gate in context.sheet.gates_for(params)]


def _apply_gate(rule: Rule, context: CheckContext, gate: Gate) -> Finding:
    """Gates read the sheet's re-derived value — never the figure the agent reported —
    compared exactly (34 digits), so 600,000 / 500,000 = 1.2 meets `>= 1.20`."""
    derivation = context.rederivation
    bound = f"{gate.quantity} {gate.op} {gate.threshold}"
    value = derivation.values.get(gate.quantity)
    if value is None:
        why = derivation.errors.get(gate.quantity) or "missing " + _listing(
            list(derivation.missing.get(gate.quantity, ()))
        )
        return _finding(rule, "open", f"gate {gate.id} ({bound}) not decidable: {gate.quantity} not re-derived ({why})")
    shown = fixed(round_half_up(value, 10).normalize(CONTEXT))
    ok = _GATE_OPS[gate.op](value, gate.threshold_decimal)
    return _finding(
        rule,
        "pass" if ok else "flag",
        f"gate {gate.id}: re-derived {gate.quantity} {shown} {'meets' if ok else 'fails'} {bound}",
        observed=shown,
        expected=f"{gate.op} {gate.threshold}",
    )


# -- dispatch ---------------------------------------------------------------

RULE_CHECKS: dict[str, RuleCheck] = {
    "structure": check_structure,
    "schema": check_schema,
    "math": check_math,
    "evidence": check_evidence,
    "policy": check_policy,
    "citation": check_citation,
    "extraction": check_extraction,
    "trail": check_trail,
    **dataset_checks.CHECKS,
    **compute_checks.CHECKS,
}


def could_not_run(rule: Rule, reason: str) -> Finding:
    return Finding(
        rule_id=rule.id, kind=rule.kind, status="flag", tier="high", message=f"check could not run: {_clip(reason)}"
    )


def run_rule(rule: Rule, context: CheckContext, checks: dict[str, RuleCheck] | None = None) -> list[Finding]:
    check = (checks or RULE_CHECKS).get(rule.kind)
    if check is None:
        return [could_not_run(rule, f"unknown rule kind {rule.kind!r}")]
    try:
        findings = check(rule, context)
    except Exception as exc:  # a crashing check must fail closed, never pass or crash the referee
        return [could_not_run(rule, f"{type(exc).__name__}: {exc}")]
    return findings or [could_not_run(rule, "the check produced no findings")]


def run_rules(context: CheckContext, checks: dict[str, RuleCheck] | None = None) -> list[Finding]:
    """Every rule of the sheet, in sheet order."""
    findings: list[Finding] = []
    for rule in context.sheet.rules:
        findings += run_rule(rule, context, checks)
    return findings
