"""The referee's verdict back out as OpenTelemetry: `gen_ai.evaluation.result` events, OTLP/JSON.

OTel GenAI semantic conventions (events, status Development) model an evaluation as an
event — a log record whose `eventName` is ``gen_ai.evaluation.result`` — with attributes
``gen_ai.evaluation.name`` (required), ``gen_ai.evaluation.score.value`` (double) and
``gen_ai.evaluation.score.label`` (each "if applicable"), ``gen_ai.evaluation.explanation``
and ``gen_ai.response.id`` (recommended). It SHOULD be parented to the evaluated GenAI
operation's span: pass that span's trace and span ids and the record carries them.

One event for the verdict (name ``defendable.verdict``, score = the verdict's percentage,
label = its severity: honey / jelly / propolis) and, when findings are given, one per rule
(name ``defendable.rule.<rule_id>``, label pass / flag / open, score 1 for pass and 0 for a
flag, none for open). The exact decimal score, the run id, the recommended action and the
risk breakdown ride along as ``defendable.*`` attributes: a double cannot carry "83.33"
exactly, so the string is the one to trust.

The output is an OTLP/JSON ExportLogsServiceRequest (POST it to a collector's /v1/logs),
ids hex as OTLP/JSON requires. Pure: the caller passes the time; nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import msgspec

from .model import Finding, Verdict

EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
VERDICT_EVALUATION: Final = "defendable.verdict"
RULE_EVALUATION_PREFIX: Final = "defendable.rule."
SCOPE_NAME: Final = "defendable.referee"
_SEVERITY_INFO: Final = 9  # OTel log data model SeverityNumber INFO
_HEX = re.compile(r"[0-9a-f]+")


class _AnyValue(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: str | None = None  # int64 travels as a decimal string in OTLP/JSON
    double_value: float | None = None


class _KeyValue(msgspec.Struct, frozen=True, gc=False):
    key: str
    value: _AnyValue


class _LogRecord(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, rename="camel"):
    time_unix_nano: str
    observed_time_unix_nano: str
    severity_number: int
    severity_text: str
    event_name: str
    attributes: list[_KeyValue]
    trace_id: str = ""
    span_id: str = ""


class _Scope(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    name: str
    version: str = ""


class _ScopeLogs(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    scope: _Scope
    log_records: list[_LogRecord]


class _Resource(msgspec.Struct, frozen=True, gc=False):
    attributes: list[_KeyValue]


class _ResourceLogs(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource: _Resource
    scope_logs: list[_ScopeLogs]


class _ExportLogs(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource_logs: list[_ResourceLogs]


def _attr(key: str, value: str | bool | int | float) -> _KeyValue:
    if isinstance(value, bool):
        return _KeyValue(key=key, value=_AnyValue(bool_value=value))
    if isinstance(value, int):
        return _KeyValue(key=key, value=_AnyValue(int_value=str(value)))
    if isinstance(value, float):
        return _KeyValue(key=key, value=_AnyValue(double_value=value))
    return _KeyValue(key=key, value=_AnyValue(string_value=value))


def _hex_id(value: str | None, size: int, what: str) -> str:
    if value is None:
        return ""
    if len(value) != 2 * size or not _HEX.fullmatch(value) or not value.strip("0"):
        raise ValueError(f"{what} must be {2 * size} lowercase hex digits, not all zero: {value[:40]!r}")
    return value


def verdict_explanation(verdict: Verdict) -> str:
    """One line a person reads in a trace viewer: action, readiness, flag counts, top flag."""
    risk = verdict.risk
    parts = [
        f"recommended action: {verdict.recommended_action}",
        f"client ready: {'yes' if verdict.client_ready else 'no'}",
        f"flags: {risk.high} high, {risk.mid} mid, {risk.low} low",
    ]
    if verdict.flags:
        top = verdict.flags[0]
        parts.append(f"top flag: {top.rule_id} ({top.tier}): {top.message}")
    return "; ".join(parts)


def evaluation_events(
    verdict: Verdict,
    *,
    run_id: str,
    time_unix_nano: int,
    findings: Sequence[Finding] = (),
    trace_id: str | None = None,
    span_id: str | None = None,
    response_id: str | None = None,
    service_name: str = "defendable",
    scope_version: str = "",
) -> bytes:
    """OTLP/JSON ExportLogsServiceRequest bytes: the verdict, then each finding, as
    `gen_ai.evaluation.result` events. Raises ValueError for malformed ids or time."""
    if not 0 <= time_unix_nano < 2**64:
        raise ValueError(f"time_unix_nano {time_unix_nano} is not an unsigned 64-bit integer")
    trace, span = _hex_id(trace_id, 16, "trace_id"), _hex_id(span_id, 8, "span_id")
    if span and not trace:
        raise ValueError("span_id needs its trace_id")
    when = str(time_unix_nano)
    common = [_attr("defendable.run_id", run_id)]
    if response_id is not None:
        common.append(_attr("gen_ai.response.id", response_id))

    def event(attributes: list[_KeyValue]) -> _LogRecord:
        return _LogRecord(
            time_unix_nano=when,
            observed_time_unix_nano=when,
            severity_number=_SEVERITY_INFO,
            severity_text="INFO",
            event_name=EVALUATION_EVENT,
            attributes=attributes + common,
            trace_id=trace,
            span_id=span,
        )

    records = [
        event(
            [
                _attr("gen_ai.evaluation.name", VERDICT_EVALUATION),
                _attr("gen_ai.evaluation.score.value", float(Decimal(verdict.score))),
                _attr("gen_ai.evaluation.score.label", verdict.severity),
                _attr("gen_ai.evaluation.explanation", verdict_explanation(verdict)),
                _attr("defendable.score", verdict.score),
                _attr("defendable.recommended_action", verdict.recommended_action),
                _attr("defendable.client_ready", verdict.client_ready),
                _attr("defendable.risk.high", verdict.risk.high),
                _attr("defendable.risk.mid", verdict.risk.mid),
                _attr("defendable.risk.low", verdict.risk.low),
            ]
        )
    ]
    for finding in findings:
        attributes = [
            _attr("gen_ai.evaluation.name", RULE_EVALUATION_PREFIX + finding.rule_id),
            _attr("gen_ai.evaluation.score.label", finding.status),
        ]
        if finding.status != "open":
            attributes.append(_attr("gen_ai.evaluation.score.value", 1.0 if finding.status == "pass" else 0.0))
        if finding.message:
            attributes.append(_attr("gen_ai.evaluation.explanation", finding.message))
        attributes.append(_attr("defendable.rule.kind", finding.kind))
        if finding.tier is not None:
            attributes.append(_attr("defendable.rule.tier", finding.tier))
        records.append(event(attributes))
    request = _ExportLogs(
        resource_logs=[
            _ResourceLogs(
                resource=_Resource(attributes=[_attr("service.name", service_name)]),
                scope_logs=[_ScopeLogs(scope=_Scope(name=SCOPE_NAME, version=scope_version), log_records=records)],
            )
        ]
    )
    return msgspec.json.encode(request)
