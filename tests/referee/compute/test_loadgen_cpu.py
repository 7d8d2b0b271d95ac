"""A real MLPerf LoadGen run on CPU (the mlcommons-loadgen wheel, a small NumPy workload):
its logs are parsed, and the benchmark check accepts them.

LoadGen writes the same mlperf_log_summary.txt and mlperf_log_detail.txt on a laptop as on
a DGX; only the hardware differs. There is no GPU here, so the telemetry that binds the run
to hardware is built by kit.series over the run's own window (and says H100): the test is
of the logs and the check, not of a GPU.
"""

from __future__ import annotations

import array
import time
from datetime import timedelta
from pathlib import Path

import mlperf_loadgen as lg  # type: ignore[import-not-found]  # a compiled extension that ships no type stubs
import numpy as np
import pytest

from defendable_cli.benchmark import SAMPLES, start_offline_test
from defendable_referee.compute.mlperf import parse_detail, parse_summary

from .kit import Bundle, claim, of_kind, run, series, submission, unsatisfied

MIN_DURATION_MS = 2000


@pytest.fixture(scope="module")
def loadgen_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run LoadGen Offline for ~2 s of measured time (~10 s in all on a slow core)."""
    out = tmp_path_factory.mktemp("loadgen")
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((256, 512)).astype(np.float32) / 16
    w2 = rng.standard_normal((512, 256)).astype(np.float32) / 16
    x = rng.standard_normal((SAMPLES, 256)).astype(np.float32)

    def infer(index: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.tanh(np.tanh(x[index] @ w1) @ w2)
        return result

    kept: list[array.array[float]] = []

    def serve(index: np.ndarray) -> list[tuple[int, int]]:
        outputs = infer(index)
        buffers = []
        for i in range(len(index)):
            buffer = array.array("f", outputs[i, :4].tolist())
            kept.append(buffer)
            address, length = buffer.buffer_info()
            buffers.append((address, length * buffer.itemsize))
        return buffers

    def issue(queries: list[lg.QuerySample]) -> None:
        index = np.fromiter((q.index for q in queries), dtype=np.int64, count=len(queries))
        responses = [lg.QuerySampleResponse(q.id, a, n) for q, (a, n) in zip(queries, serve(index), strict=True)]
        lg.QuerySamplesComplete(responses)

    serve(np.arange(SAMPLES))  # warm up, then time the whole serving path, per-sample work included
    started = time.perf_counter()
    serve(np.arange(SAMPLES) % SAMPLES)
    rate = SAMPLES / (time.perf_counter() - started)
    kept.clear()

    # more than it can do: the one query outlasts min_duration
    start_offline_test(lg, issue, out, expected=rate * 3, duration_s=MIN_DURATION_MS / 1000)
    return out


def test_loadgen_on_cpu_writes_logs_the_parsers_read(loadgen_logs: Path) -> None:
    summary = parse_summary((loadgen_logs / "mlperf_log_summary.txt").read_bytes())
    detail = parse_detail((loadgen_logs / "mlperf_log_detail.txt").read_bytes())
    assert (summary.sut_name, summary.scenario, summary.mode) == ("PySUT", "Offline", "PerformanceOnly")
    assert summary.valid and detail.validity == "VALID", summary.fields
    assert summary.samples_per_second is not None and summary.samples_per_second > 0
    assert detail.samples_per_second == summary.samples_per_second
    assert (detail.end - detail.start).total_seconds() >= MIN_DURATION_MS / 1000
    assert {"p50", "p90", "p99"} <= set(summary.latency_ns)


def test_the_benchmark_check_accepts_a_real_loadgen_run(loadgen_logs: Path, tmp_path: Path) -> None:
    detail = parse_detail((loadgen_logs / "mlperf_log_detail.txt").read_bytes())
    rate = parse_summary((loadgen_logs / "mlperf_log_summary.txt").read_bytes()).samples_per_second
    assert rate is not None
    bundle = Bundle(tmp_path)
    bundle.fixture("benchmark_summary", loadgen_logs / "mlperf_log_summary.txt")
    bundle.fixture("benchmark_detail", loadgen_logs / "mlperf_log_detail.txt")
    first = detail.start.replace(tzinfo=None) - timedelta(seconds=2)  # host clock at UTC
    seconds = (detail.end - detail.start).total_seconds() + 4
    bundle.add("telemetry", "telemetry.csv", series(first, int(seconds) + 1, every_s=1.0))
    document = submission(
        bundle,
        start=(detail.start - timedelta(minutes=1)).isoformat(),
        end=(detail.end + timedelta(minutes=1)).isoformat(),
        model="H100-SXM5-80GB",
        count=1,
        memory_gb=80,
        claims=[claim("samples_per_second", rate, "samples/s", "mlperf_log_summary.txt")],
        targets={"min_samples_per_second": 100},
    )
    findings, verdict = run("compute_benchmark_score_validation_v1", document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    assert any("LoadGen reports VALID" in f.message for f in of_kind(findings, "benchmark_score"))
