"""Shared fixtures: the packaged CRE memo sheet, its evidence, and the passing memo."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from defendable_canonical.model import EvidenceRef, Finding, Verdict
from defendable_referee.check import check_submission
from defendable_referee.sheet import LoadedSheet, load_library

FIXTURES = Path(__file__).parent / "fixtures"
CRE_SHEET = "cre_memo_dscr_ltv_v1@1.0.0"

Check = Callable[[dict[str, Any]], tuple[list[Finding], Verdict]]


def _evidence(id_: str, name: str, digit: str) -> EvidenceRef:
    return EvidenceRef(id=id_, name=name, media_type="application/pdf", size=1024, sha256="sha256:" + digit * 64)


EVIDENCE = [
    _evidence("ev_term_sheet", "term_sheet.pdf", "1"),
    _evidence("ev_t12", "t12_operating_statement.pdf", "2"),
    _evidence("ev_appraisal", "appraisal.pdf", "3"),
]


@pytest.fixture(scope="session")
def cre_sheet() -> LoadedSheet:
    return load_library().get(CRE_SHEET)


@pytest.fixture
def memo() -> dict[str, Any]:
    """A fresh copy of the passing memo for each test to mutate."""
    data: dict[str, Any] = json.loads((FIXTURES / "memo_pass.json").read_text())
    return copy.deepcopy(data)


@pytest.fixture
def check(cre_sheet: LoadedSheet) -> Check:
    def run(document: dict[str, Any]) -> tuple[list[Finding], Verdict]:
        return check_submission(cre_sheet, msgspec.json.encode(document), EVIDENCE)

    return run
