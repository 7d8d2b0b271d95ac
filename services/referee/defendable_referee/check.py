"""Check one submission against one Flight Sheet: bytes in, findings and verdict out.

The referee never crashes on a submission: oversized, malformed or non-object
JSON becomes a high structure flag (and so a "reject" verdict), like any other
failed check.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_canonical.trail import StepRecord
from defendable_referee.context import CheckContext
from defendable_referee.rules import run_rules
from defendable_referee.sheet import FlightSheet, LoadedSheet
from defendable_referee.verdict import decide

MAX_SUBMISSION_BYTES = 1024 * 1024

# JSON numbers with a fraction or exponent decode to Decimal, never float: the
# math rule compares them exactly. Built once (msgspec: decoders are reusable).
_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)


def check_submission(
    sheet: FlightSheet | LoadedSheet,
    submission: bytes,
    evidence: Sequence[EvidenceRef],
    *,
    evidence_text: Mapping[str, str] | None = None,
    trail: Sequence[StepRecord] | None = None,
    trail_error: str = "",
    files: Mapping[str, Path] | None = None,
    files_skipped: Mapping[str, str] | None = None,
) -> tuple[list[Finding], Verdict]:
    """Run every rule of `sheet`, in order, on the JSON `submission`; decide the verdict.

    `evidence_text` maps an evidence id to that item's decoded UTF-8 text, for the
    rules that search it (text_rules.py); an item without an entry (binary, too
    large) leaves any quote from it open, never passed. `trail` is the run's
    execution trail (None: no OTLP evidence, or unreadable as `trail_error` says).
    `files` maps an evidence id to a local copy of its bytes, for the Dataset and Compute
    lanes' rules (an item without one is checked as missing, never passed; `files_skipped`
    says why an item has none).
    """
    if isinstance(sheet, LoadedSheet):
        sheet = sheet.sheet
    document, problem = decode_submission(submission)
    if document is None:
        findings = [Finding(rule_id="submission", kind="structure", status="flag", tier="high", message=problem)]
    else:
        texts = dict(evidence_text or {})
        context = CheckContext(
            sheet=sheet,
            document=document,
            evidence=evidence,
            evidence_text=texts,
            trail=trail,
            trail_error=trail_error,
            files=dict(files or {}),
            files_skipped=dict(files_skipped or {}),
        )
        findings = run_rules(context)
    return findings, decide(findings)


def decode_submission(submission: bytes) -> tuple[dict[str, Any] | None, str]:
    """The submission as a JSON object, or None and the reason it is not one."""
    if len(submission) > MAX_SUBMISSION_BYTES:
        return None, f"submission is {len(submission)} bytes; the limit is {MAX_SUBMISSION_BYTES}"
    try:
        value = _DECODER.decode(submission)
    except msgspec.DecodeError as exc:
        return None, f"submission is not valid JSON: {exc}"
    except RecursionError:  # msgspec's answer to nesting deeper than it will follow
        return None, "submission is not valid JSON: nested too deeply"
    if not isinstance(value, dict):
        return None, f"submission must be a JSON object, got {_json_type(value)}"
    return value, ""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | decimal.Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__
