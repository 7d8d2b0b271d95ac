"""Stream an agent's OpenTelemetry spans to its runs: a SpanExporter for the OpenTelemetry SDK.

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DefendableSpanExporter(client)))

Each batch the SDK hands over is encoded with the SDK's own OTLP protobuf encoder and POSTed
to `/v1/traces`, once per run it touches. A span names its run by the attribute
`defendable.run_id` (on the span or on its resource), or the exporter is built for one run
(`run_id=`). Spans naming no run are not sent, and counted in `unrouted`, since the gateway
would refuse them. Needs `opentelemetry-sdk` and `opentelemetry-exporter-otlp-proto-common`
(`pip install 'defendable[otel]'`). The SDK's own OTLPSpanExporter works too, pointed at
`<base>/v1/traces` with the headers `Authorization` and `X-Defendable-Run`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .client import ApiError, Client, TraceExport

__all__ = ["RUN_ATTRIBUTE", "DefendableSpanExporter"]

RUN_ATTRIBUTE: Final = "defendable.run_id"
log = logging.getLogger(__name__)


def run_of(span: ReadableSpan) -> str | None:
    for attributes in (span.attributes, span.resource.attributes if span.resource else None):
        value = (attributes or {}).get(RUN_ATTRIBUTE)
        if isinstance(value, str) and value:
            return value
    return None


class DefendableSpanExporter(SpanExporter):
    """Sends finished spans to the run they belong to, as trail evidence (one export per run per batch)."""

    def __init__(self, client: Client, run_id: str | None = None) -> None:
        self._client = client
        self._run_id = run_id
        self.exports: list[TraceExport] = []  # what the gateway answered, in order: evidence ids, warnings
        self.unrouted = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        by_run: dict[str, list[ReadableSpan]] = {}
        for span in spans:
            run_id = self._run_id or run_of(span)
            if run_id is None:
                self.unrouted += 1
                continue
            by_run.setdefault(run_id, []).append(span)
        result = SpanExportResult.SUCCESS
        for run_id, batch in by_run.items():
            try:
                self.exports.append(self._client.send_traces(run_id, encode_spans(batch).SerializeToString()))
            except (ApiError, OSError, TimeoutError) as exc:  # the SDK logs and drops; say which run lost spans
                log.warning("could not send %d spans to run %s: %s", len(batch), run_id, exc)
                result = SpanExportResult.FAILURE
        return result

    def shutdown(self) -> None:
        """The client is the caller's: it stays open for their other calls."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here: every export is sent before export() returns
