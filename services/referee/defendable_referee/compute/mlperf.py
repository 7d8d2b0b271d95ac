"""MLPerf LoadGen output: `mlperf_log_summary.txt`, `mlperf_log_detail.txt`, and the
submission's system description (`systems/<system>.json`).

The summary is "key : value" lines under banner sections. The detail log is one
`:::MLLOG {json}` event per line; `time_ms` counts from LoadGen start, and `test_datetime`
(UTC, "Z") anchors it, so the run occupies [test_datetime, test_datetime + last time_ms].
The two files are the same run seen twice; benchmark checks require them to agree.
Only the events the checks read are kept (result_*, effective_*, requested_*, the run's
names): `loaded_qsl_set` alone can be megabytes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized

MAX_SUMMARY_BYTES = 1024 * 1024
MAX_DETAIL_BYTES = 64 * 1024 * 1024
MAX_SYSTEM_BYTES = 1024 * 1024
_KEPT_PREFIXES = ("result_", "effective_", "requested_")
_KEPT = frozenset(
    {"test_datetime", "sut_name", "qsl_name", "loadgen_version", "early_stopping_met", "power_begin", "power_end"}
)
_PERCENTILE = re.compile(r"^(\d+(?:\.\d+)?) percentile latency \(ns\)$")
_THROUGHPUT_KEYS = ("Samples per second", "Completed samples per second", "Scheduled samples per second")


class LoadgenSummary(msgspec.Struct, frozen=True, kw_only=True):
    sut_name: str | None
    scenario: str | None
    mode: str | None
    validity: str  # "VALID" / "INVALID"
    samples_per_second: float | None
    latency_ns: dict[str, float]  # "min", "max", "mean", "p50", "p90", "p99", "p99.9", ...
    errors: int  # "N ERRORS encountered"; 0 for "No errors encountered"
    fields: dict[str, str]  # every "key : value" line, for the record

    @property
    def valid(self) -> bool:
        return self.validity == "VALID"


class LoadgenDetail(msgspec.Struct, frozen=True, kw_only=True):
    start: datetime  # test_datetime, UTC
    end: datetime  # start + the last event's time_ms
    events: dict[str, Any]  # key -> value of the last event with that key (kept keys only)
    errors: int  # events flagged is_error

    @property
    def validity(self) -> str | None:
        value = self.events.get("result_validity")
        return value if isinstance(value, str) else None

    @property
    def samples_per_second(self) -> float | None:
        return _number(self.events.get("result_samples_per_second"))

    @property
    def scenario(self) -> str | None:
        value = self.events.get("effective_scenario")
        return value if isinstance(value, str) else None


class SystemDescription(msgspec.Struct, frozen=True, kw_only=True):
    accelerator_model_name: str
    accelerators_per_node: int
    number_of_nodes: int = 1
    system_name: str = ""


def parse_summary(data: bytes) -> LoadgenSummary:
    refuse_oversized("MLPerf summary", len(data), MAX_SUMMARY_BYTES)
    text = _decode(data, "MLPerf summary")
    if "MLPerf Results Summary" not in text:
        raise EvidenceRefused("not an mlperf_log_summary.txt: no 'MLPerf Results Summary' banner")
    fields: dict[str, str] = {}
    errors = 0
    for raw in text.splitlines():
        line = raw.strip()
        if match := re.fullmatch(r"(\d+) ERRORS? encountered\..*", line):
            errors = int(match.group(1))
        if ":" not in line or line.startswith(("*", "=")):
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    validity = fields.get("Result is")
    if validity not in ("VALID", "INVALID"):
        raise EvidenceRefused(f"MLPerf summary has no 'Result is : VALID|INVALID' line (found {validity!r})")
    latency: dict[str, float] = {}
    for key, value in fields.items():
        name = {"Min latency (ns)": "min", "Max latency (ns)": "max", "Mean latency (ns)": "mean"}.get(key)
        if name is None and (match := _PERCENTILE.match(key)):
            name = "p" + _trim(match.group(1))
        if name is not None:
            latency[name] = _summary_number(value, key)
    throughput = next((fields[k] for k in _THROUGHPUT_KEYS if k in fields), None)
    return LoadgenSummary(
        sut_name=fields.get("SUT name"),
        scenario=fields.get("Scenario"),
        mode=fields.get("Mode"),
        validity=validity,
        samples_per_second=None if throughput is None else _summary_number(throughput, "samples per second"),
        latency_ns=latency,
        errors=errors,
        fields=fields,
    )


_EVENT = msgspec.json.Decoder(dict[str, Any])


def parse_detail(data: bytes) -> LoadgenDetail:
    refuse_oversized("MLPerf detail log", len(data), MAX_DETAIL_BYTES)
    text = _decode(data, "MLPerf detail log")
    events: dict[str, Any] = {}
    errors = 0
    last_ms = 0.0
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith(":::MLLOG "):
            continue
        try:
            event = _EVENT.decode(line[len(":::MLLOG ") :])
        except msgspec.DecodeError as exc:
            raise EvidenceRefused(f"MLPerf detail log line {number} is not valid JSON: {exc}") from None
        seen += 1
        key, at = event.get("key"), _number(event.get("time_ms"))
        if not isinstance(key, str) or at is None or at < 0:
            raise EvidenceRefused(f"MLPerf detail log line {number} has no key or time_ms")
        last_ms = max(last_ms, at)
        metadata = event.get("metadata")
        if isinstance(metadata, dict) and metadata.get("is_error") is True:
            errors += 1
        if key in _KEPT or key.startswith(_KEPT_PREFIXES):
            events[key] = event.get("value")
    if not seen:
        raise EvidenceRefused("not an mlperf_log_detail.txt: no ':::MLLOG' lines")
    stamp = events.get("test_datetime")
    if not isinstance(stamp, str):
        raise EvidenceRefused("MLPerf detail log has no test_datetime event")
    try:
        start = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise EvidenceRefused(f"MLPerf detail log test_datetime {stamp[:40]!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
    return LoadgenDetail(start=start, end=start + timedelta(milliseconds=last_ms), events=events, errors=errors)


def parse_system_description(data: bytes) -> SystemDescription:
    refuse_oversized("MLPerf system description", len(data), MAX_SYSTEM_BYTES)
    try:
        return msgspec.json.decode(data, type=SystemDescription)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EvidenceRefused(f"not an MLPerf system description: {exc}") from None


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvidenceRefused(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from None


def _summary_number(text: str, key: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EvidenceRefused(f"MLPerf summary {key!r}: {text[:40]!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise EvidenceRefused(f"MLPerf summary {key!r}: {text[:40]!r} is not finite")
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _trim(percentile: str) -> str:
    """ "99.90" -> "99.9", "50.00" -> "50"."""
    return percentile.rstrip("0").rstrip(".") if "." in percentile else percentile
