"""vLLM serving benchmarks: the `vllm bench serve --save-result` JSON (formerly
`benchmarks/benchmark_serving.py`), and the server log line that times the model load.

The result JSON has `date` ("%Y%m%d-%H%M%S", host-local, written when the run ends),
`duration` (seconds), counts and throughputs, and one key per latency statistic:
`{mean|median|std|pNN}_{ttft|tpot|itl|e2el}_ms`. Which percentiles exist depends on
`--metric-percentiles`; a statistic that is not in the file is not measured.

The server logs, once per worker, "Model loading took 15.2 GiB and 10.5 seconds"
(newer releases: "... GiB memory and ... seconds").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized

MAX_RESULT_BYTES = 64 * 1024 * 1024  # --save-detailed adds per-request arrays
MAX_LOG_BYTES = 64 * 1024 * 1024
_STAT = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
_LOAD = re.compile(r"Model loading took ([0-9]+(?:\.[0-9]+)?) GiB(?: memory)? and ([0-9]+(?:\.[0-9]+)?) seconds")


class ServingResult(msgspec.Struct, frozen=True, kw_only=True):
    end: datetime  # host-local
    duration_s: float
    completed: int
    failed: int | None
    num_prompts: int | None
    model_id: str | None
    request_throughput: float | None
    output_throughput: float | None  # output tokens per second
    total_token_throughput: float | None
    latency_ms: dict[str, float]  # "ttft.p99" -> 89.77

    @property
    def start(self) -> datetime:
        return self.end - timedelta(seconds=self.duration_s)


class ModelLoad(msgspec.Struct, frozen=True, kw_only=True):
    gib: float
    seconds: float
    loads: int  # how many "Model loading took" lines (one per worker)


def parse_serving_result(data: bytes) -> ServingResult:
    refuse_oversized("vLLM benchmark result", len(data), MAX_RESULT_BYTES)
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise EvidenceRefused(f"vLLM benchmark result is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EvidenceRefused("vLLM benchmark result is not a JSON object")
    date, duration, completed = doc.get("date"), _number(doc.get("duration")), doc.get("completed")
    if not isinstance(date, str) or duration is None or not isinstance(completed, int) or not _is_int(completed):
        raise EvidenceRefused("not a vLLM benchmark result: needs date, duration and completed")
    try:
        end = datetime.strptime(date, "%Y%m%d-%H%M%S")
    except ValueError:
        raise EvidenceRefused(f"vLLM benchmark date {date[:40]!r} is not YYYYMMDD-HHMMSS") from None
    if duration <= 0:
        raise EvidenceRefused(f"vLLM benchmark duration {duration} s is not positive")
    latency: dict[str, float] = {}
    for key, value in doc.items():
        match = _STAT.match(key)
        number = _number(value)
        if match and number is not None:
            latency[f"{match.group(2)}.{match.group(1)}"] = number
    return ServingResult(
        end=end,
        duration_s=duration,
        completed=completed,
        failed=doc["failed"] if _is_int(doc.get("failed")) else None,
        num_prompts=doc["num_prompts"] if _is_int(doc.get("num_prompts")) else None,
        model_id=doc.get("model_id") if isinstance(doc.get("model_id"), str) else None,
        request_throughput=_number(doc.get("request_throughput")),
        output_throughput=_number(doc.get("output_throughput")),
        total_token_throughput=_number(doc.get("total_token_throughput")),
        latency_ms=latency,
    )


def parse_server_log(data: bytes) -> ModelLoad:
    """The model load, from a vLLM server log: the slowest worker's time, and its memory."""
    refuse_oversized("vLLM server log", len(data), MAX_LOG_BYTES)
    text = data.decode("utf-8", errors="replace")  # a log may carry stray bytes; the figures are ASCII
    loads = [(float(m.group(2)), float(m.group(1))) for m in _LOAD.finditer(text)]
    if not loads:
        raise EvidenceRefused("vLLM server log has no 'Model loading took ... GiB and ... seconds' line")
    seconds, gib = max(loads)
    return ModelLoad(gib=gib, seconds=seconds, loads=len(loads))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
