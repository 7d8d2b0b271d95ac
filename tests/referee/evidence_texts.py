"""Evidence with text, for the sheets whose rules read it: two text items, one image, and a checker."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.sheet import LoadedSheet

FIXTURES = Path(__file__).parent / "fixtures"
CITATION_SHEET = "genai_evidence_citation_v1@1.0.0"
EXTRACTION_SHEET = "evx_numerical_fact_extraction_v1@1.0.0"

Check = Callable[[dict[str, Any]], tuple[list[Finding], Verdict]]


def _text_item(id_: str, filename: str) -> tuple[EvidenceRef, str]:
    data = (FIXTURES / "evidence" / filename).read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return EvidenceRef(id=id_, name=filename, media_type="text/plain", size=len(data), sha256=digest), data.decode()


BRIEF, BRIEF_TEXT = _text_item("ev_brief", "policy_brief.txt")
REPORT, REPORT_TEXT = _text_item("ev_report", "annual_report.txt")
PHOTO = EvidenceRef(
    id="ev_photo", name="site_photo.png", media_type="image/png", size=48_213, sha256="sha256:" + "4" * 64
)
EVIDENCE = [BRIEF, REPORT, PHOTO]
TEXTS = {BRIEF.id: BRIEF_TEXT, REPORT.id: REPORT_TEXT}  # the photo has none: the referee cannot read it


def submission(filename: str) -> dict[str, Any]:
    """A fresh copy of a fixture submission for a test to mutate."""
    data: dict[str, Any] = json.loads((FIXTURES / filename).read_text("utf-8"))
    return copy.deepcopy(data)


def checker(
    sheet: LoadedSheet, evidence: Sequence[EvidenceRef] = EVIDENCE, texts: Mapping[str, str] | None = TEXTS
) -> Check:
    def run(document: dict[str, Any]) -> tuple[list[Finding], Verdict]:
        return check_submission(sheet, msgspec.json.encode(document), evidence, evidence_text=texts)

    return run


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def unsatisfied(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status != "pass"]
