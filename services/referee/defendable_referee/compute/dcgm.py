"""`dcgmi diag -r 1..4 -j`: NVIDIA DCGM's diagnostic, as JSON.

DCGM 3.x nests results under "DCGM GPU Diagnostic" > "test_categories" > "tests" >
"results", one entry per GPU (or one for all, as "0,1,..."), and writes `null` between
tests; 4.x also hoists "tests" to the top. Both are read. A status of Pass means the
diagnostic found nothing at its level — not that the GPU is healthy — and the checks
say so. dcgmi may print warnings before the document; text before the first "{" is
skipped, as DCGM's own test of its output does.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized

MAX_DIAG_BYTES = 8 * 1024 * 1024
MAX_PREAMBLE = 4096
DiagStatus = Literal["pass", "fail", "warn", "skip", "other"]
_STATUS: dict[str, DiagStatus] = {
    "pass": "pass",
    "passed": "pass",
    "fail": "fail",
    "failed": "fail",
    "warn": "warn",
    "warning": "warn",
    "skip": "skip",
    "skipped": "skip",
    "not run": "skip",
}


class DiagResult(msgspec.Struct, frozen=True, kw_only=True):
    category: str
    test: str
    gpus: str  # "0", or "0,1,2,3" for a test run once for all
    status: DiagStatus
    warnings: list[str] = []


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True):
    version: str | None
    results: list[DiagResult]
    runtime_error: str | None = None


def parse_diag(data: bytes) -> Diagnostic:
    refuse_oversized("dcgmi diag output", len(data), MAX_DIAG_BYTES)
    start = data.find(b"{")
    if start < 0 or start > MAX_PREAMBLE:
        raise EvidenceRefused("dcgmi diag output has no JSON document")
    try:
        doc = msgspec.json.decode(data[start:])
    except msgspec.DecodeError as exc:
        raise EvidenceRefused(f"dcgmi diag output is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EvidenceRefused("dcgmi diag output is not a JSON object")
    root = doc.get("DCGM GPU Diagnostic", doc.get("DCGM Diagnostic", doc))
    if not isinstance(root, dict):
        raise EvidenceRefused("dcgmi diag output has no diagnostic object")
    results: list[DiagResult] = []
    for category in _list(root.get("test_categories")):
        if isinstance(category, dict):
            name = str(category.get("category", ""))
            results += [r for test in _list(category.get("tests")) for r in _results(name, test)]
    results += [r for test in _list(root.get("tests")) for r in _results("", test)]
    error = root.get("runtime_error") or doc.get("runtime_error")
    if not results and not error:
        raise EvidenceRefused("dcgmi diag output reports no test results")
    version = root.get("version")
    return Diagnostic(
        version=version if isinstance(version, str) else None,
        results=results,
        runtime_error=str(error)[:500] if error else None,
    )


def _results(category: str, test: Any) -> list[DiagResult]:
    if not isinstance(test, dict):  # DCGM 3.x writes null between tests
        return []
    name = str(test.get("name", ""))[:200]
    found: list[DiagResult] = []
    for result in _list(test.get("results")):
        if not isinstance(result, dict):
            continue
        gpus = result.get("gpu_ids", result.get("entity_id", ""))
        status = _STATUS.get(str(result.get("status", "")).strip().lower(), "other")
        warnings = [_warning(w) for w in _list(result.get("warnings"))][:20]
        found.append(DiagResult(category=category, test=name, gpus=str(gpus)[:200], status=status, warnings=warnings))
    return found


def _warning(warning: Any) -> str:
    if isinstance(warning, dict):
        warning = warning.get("warning", warning.get("message", ""))
    return str(warning)[:500]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
