"""The referee's verdict goes back out as valid OTLP: `gen_ai.evaluation.result` events that the
official protobuf JSON parser accepts, parented to the evaluated span."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from defendable_canonical.model import Finding, RankedFlag, RiskBreakdown, Verdict
from defendable_canonical.otel_export import EVALUATION_EVENT, evaluation_events

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
WHEN = 1_718_000_000_123_456_789

VERDICT = Verdict(
    score="83.33",
    severity="propolis",
    risk=RiskBreakdown(high=1, mid=0, low=1),
    client_ready=False,
    recommended_action="review",
    flags=[
        RankedFlag(rule_id="dscr_min", tier="high", message="DSCR 1.10 is below the 1.25 floor"),
        RankedFlag(rule_id="cite_sources", tier="low", message="one claim cites no evidence"),
    ],
)
FINDINGS = [
    Finding(rule_id="schema", kind="schema", status="pass"),
    Finding(rule_id="dscr_min", kind="math", status="flag", tier="high", message="DSCR 1.10 is below the 1.25 floor"),
    Finding(rule_id="approver_note", kind="policy", status="open", tier="mid", message="needs a human look"),
]


def parsed(body: bytes) -> ExportLogsServiceRequest:
    """Parse as a collector does: OTLP/JSON ids are hex where protobuf's JSON mapping wants
    base64, so convert those two fields and hand the rest to the official parser unchanged."""
    tree = json.loads(body)
    for resource in tree["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    return json_format.Parse(json.dumps(tree), ExportLogsServiceRequest())


def attributes(record: Any) -> dict[str, Any]:
    def plain(value: AnyValue) -> Any:
        which = value.WhichOneof("value")
        assert which is not None
        return getattr(value, which)

    return {kv.key: plain(kv.value) for kv in record.attributes}


def test_the_verdict_exports_as_a_gen_ai_evaluation_result_event_the_official_parser_accepts() -> None:
    body = evaluation_events(VERDICT, run_id="run_42", time_unix_nano=WHEN, trace_id=TRACE, span_id=SPAN)
    request = parsed(body)
    [resource] = request.resource_logs
    assert attributes(resource.resource)["service.name"] == "defendable"
    [scope] = resource.scope_logs
    assert scope.scope.name == "defendable.referee"
    [record] = scope.log_records
    assert record.event_name == EVALUATION_EVENT == "gen_ai.evaluation.result"
    assert record.trace_id == bytes.fromhex(TRACE) and record.span_id == bytes.fromhex(SPAN)
    assert record.time_unix_nano == WHEN and record.severity_number == 9
    attrs = attributes(record)
    assert attrs["gen_ai.evaluation.name"] == "defendable.verdict"
    assert attrs["gen_ai.evaluation.score.value"] == pytest.approx(83.33)
    assert attrs["gen_ai.evaluation.score.label"] == "propolis"
    assert attrs["gen_ai.evaluation.explanation"] == (
        "recommended action: review; client ready: no; flags: 1 high, 0 mid, 1 low; "
        "top flag: dscr_min (high): DSCR 1.10 is below the 1.25 floor"
    )
    assert attrs["defendable.score"] == "83.33" and attrs["defendable.run_id"] == "run_42"
    assert attrs["defendable.client_ready"] is False and attrs["defendable.risk.high"] == 1


def test_the_exported_json_is_otlp_json_with_hex_ids_and_string_int64() -> None:
    tree = json.loads(evaluation_events(VERDICT, run_id="r", time_unix_nano=WHEN, trace_id=TRACE, span_id=SPAN))
    record = tree["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert (record["traceId"], record["spanId"]) == (TRACE, SPAN)
    assert record["timeUnixNano"] == str(WHEN) and record["eventName"] == "gen_ai.evaluation.result"
    risk_high = next(a for a in record["attributes"] if a["key"] == "defendable.risk.high")
    assert risk_high["value"] == {"intValue": "1"}


def test_each_finding_becomes_its_own_evaluation_event() -> None:
    request = parsed(evaluation_events(VERDICT, run_id="r", time_unix_nano=WHEN, findings=FINDINGS))
    records = request.resource_logs[0].scope_logs[0].log_records
    assert len(records) == 4
    rules = [attributes(r) for r in records[1:]]
    assert [r["gen_ai.evaluation.name"] for r in rules] == [
        "defendable.rule.schema",
        "defendable.rule.dscr_min",
        "defendable.rule.approver_note",
    ]
    assert [r["gen_ai.evaluation.score.label"] for r in rules] == ["pass", "flag", "open"]
    assert [r.get("gen_ai.evaluation.score.value") for r in rules] == [1.0, 0.0, None]
    assert rules[1]["defendable.rule.tier"] == "high" and "gen_ai.evaluation.explanation" not in rules[0]
    assert all(not r.trace_id for r in records)  # no span given: the events stand alone


def test_a_response_id_links_the_event_when_no_span_is_known() -> None:
    record = parsed(evaluation_events(VERDICT, run_id="r", time_unix_nano=WHEN, response_id="chatcmpl-1"))
    assert attributes(record.resource_logs[0].scope_logs[0].log_records[0])["gen_ai.response.id"] == "chatcmpl-1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_id": "XYZ"}, "trace_id must be 32 lowercase hex"),
        ({"trace_id": "0" * 32}, "trace_id must be 32"),
        ({"trace_id": TRACE, "span_id": SPAN.upper()}, "span_id must be 16"),
        ({"span_id": SPAN}, "span_id needs its trace_id"),
        ({"time_unix_nano": -1}, "not an unsigned 64-bit integer"),
    ],
)
def test_malformed_ids_or_times_are_refused(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"run_id": "r", "time_unix_nano": WHEN, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluation_events(VERDICT, **arguments)
