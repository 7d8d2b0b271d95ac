"""compute_benchmark_score_validation_v1 and compute_efficiency_metrics_v1 on a real MLPerf H100 run.

The LoadGen pair is NVIDIA's retinanet Offline submission for one H100-SXM (MLPerf Inference
v4.0): run from 2024-01-20T05:21:33Z for 649 s at 1728.33 samples/s. The telemetry covering
it is built by kit.series (no real capture of that run exists).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .kit import A100, MLPERF_H100, Bundle, Row, claim, flagged, of_kind, run, series, submission, unsatisfied

BENCHMARK = "compute_benchmark_score_validation_v1"
EFFICIENCY = "compute_efficiency_metrics_v1"
WINDOW: dict[str, Any] = {"start": "2024-01-20T05:20:00Z", "end": "2024-01-20T05:35:00Z"}
H100_DECLARED: dict[str, Any] = {
    "model": "H100-SXM5-80GB",
    "count": 1,
    "memory_gb": 80,
    "driver": "535",
    "cuda": "12.2",
}


def telemetry(**kwargs: Any) -> bytes:
    return series(datetime(2024, 1, 20, 5, 21, 0), 140, **kwargs)  # every 5 s to 05:32:35


def mlperf(tmp_path: Path, *, system: bool = True, csv: bytes | None = None) -> Bundle:
    bundle = Bundle(tmp_path)
    bundle.fixture("benchmark_summary", MLPERF_H100 / "mlperf_log_summary.txt")
    bundle.fixture("benchmark_detail", MLPERF_H100 / "mlperf_log_detail.txt")
    if system:
        bundle.fixture("system_description", MLPERF_H100 / "DGX-H100_H100-SXM-80GBx1_TRT.json", "application/json")
    bundle.add("telemetry", "telemetry.csv", csv if csv is not None else telemetry(), "text/csv")
    return bundle


def benchmark_submission(bundle: Bundle, target: float = 1500, **declared: Any) -> dict[str, Any]:
    claims = [
        claim("samples_per_second", 1728.33, "samples/s", "mlperf_log_summary.txt"),
        claim("latency_p99_ms", 642710.09, "ms", "mlperf_log_summary.txt"),
    ]
    return submission(
        bundle,
        **WINDOW,
        claims=claims,
        targets={"min_samples_per_second": target},
        **(H100_DECLARED | declared),
    )


def test_a_valid_h100_run_above_its_declared_target_passes(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path)
    findings, verdict = run(BENCHMARK, benchmark_submission(bundle), bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    messages = [f.message for f in of_kind(findings, "benchmark_score")]
    assert any("1728.33 samples/s (summary and detail agree) against the declared target 1500" in m for m in messages)
    assert any("covers benchmark_detail" in m and "1 × H100-SXM5-80GB" in m for m in messages)


def test_a_run_below_its_declared_target_is_flagged(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path)
    findings, _ = run(BENCHMARK, benchmark_submission(bundle, target=2000), bundle)
    below = flagged(findings, "against the declared target 2000")
    assert (below.observed, below.expected) == ("1728.33", "≥ 2000")


def test_an_invalid_loadgen_result_is_flagged_and_summary_and_detail_must_agree(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path)
    text = (MLPERF_H100 / "mlperf_log_summary.txt").read_bytes().replace(b"Result is : VALID", b"Result is : INVALID")
    bundle.add("benchmark_summary", "mlperf_log_summary.txt", text)
    bundle.fixture("benchmark_detail", MLPERF_H100 / "mlperf_log_detail.txt")
    bundle.add("telemetry", "telemetry.csv", telemetry(), "text/csv")
    findings, _ = run(BENCHMARK, benchmark_submission(bundle), bundle)
    validity = flagged(findings, "says Result is INVALID")
    assert "not one run" in validity.message


def test_a_benchmark_log_from_a_different_gpu_than_declared_is_flagged(tmp_path: Path) -> None:
    # The H100 log and its system description, submitted as an A100 run with A100 telemetry.
    bundle = mlperf(tmp_path, csv=telemetry(board=A100))
    document = benchmark_submission(bundle, model="A100-SXM4-80GB")
    findings, verdict = run(BENCHMARK, document, bundle)
    system = flagged(findings, "names 'NVIDIA H100-SXM-80GB' (H100-SXM5-80GB); declared A100-SXM4-80GB", tier="high")
    assert system.kind == "benchmark_score"
    assert verdict.severity == "propolis"


def test_a_benchmark_log_with_telemetry_of_another_gpu_is_flagged(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path, system=False, csv=telemetry(board=A100))
    findings, _ = run(BENCHMARK, benchmark_submission(bundle), bundle)
    assert flagged(findings, "the telemetry shows GPUs other than the declared H100-SXM5-80GB", tier="high")


def test_a_benchmark_log_no_telemetry_covers_is_not_bound_to_the_hardware(tmp_path: Path) -> None:
    # Telemetry from the day before: inside nobody's run, and not during this benchmark.
    csv = series(datetime(2024, 1, 20, 5, 0, 0), 60)
    bundle = mlperf(tmp_path, system=False, csv=csv)
    document = benchmark_submission(bundle) | {
        "run_window": {"start": "2024-01-20T04:59:00Z", "end": "2024-01-20T05:35:00Z", "host_utc_offset": "+00:00"}
    }
    findings, _ = run(BENCHMARK, document, bundle)
    assert flagged(findings, "has no samples during benchmark_detail", tier="high")


def test_a_declared_target_below_the_sheets_floor_is_flagged(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path)
    findings, _ = run(BENCHMARK, benchmark_submission(bundle, target=0.5), bundle)
    assert flagged(findings, "declared target 0.5 samples/s is below this sheet's floor 1")


def test_a_claimed_throughput_the_log_does_not_show_is_flagged(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path)
    document = benchmark_submission(bundle)
    document["claims"][0]["value"] = 1900.0
    findings, _ = run(BENCHMARK, document, bundle)
    assert flagged(findings, "samples_per_second = 1900 samples/s does not match the 1728.33 samples/s")


# -- efficiency -----------------------------------------------------------------


def efficiency_submission(bundle: Bundle, value: float) -> dict[str, Any]:
    claims = [claim("samples_per_second_per_watt", value, "samples/s/W", "mlperf_log_detail.txt", "telemetry.csv")]
    return submission(bundle, **WINDOW, claims=claims, **H100_DECLARED)


def test_perf_per_watt_is_joined_on_the_benchmark_window_and_matches_the_claim(tmp_path: Path) -> None:
    bundle = mlperf(tmp_path, system=False, csv=telemetry(shape=lambda i: Row(power_w=400.0)))
    findings, verdict = run(EFFICIENCY, efficiency_submission(bundle, 1728.33 / 400), bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    headline = of_kind(findings, "efficiency")[0]
    assert headline.message.startswith("4.321 samples/s/W: 1728.33 samples/s over 400.0 W")
    assert verdict.recommended_action == "approve"


def test_throttled_samples_are_excluded_from_perf_per_watt_and_counted(tmp_path: Path) -> None:
    # Every tenth sample throttled (SM clock at 0.5 × max) and drawing 100 W: excluded, so power stays 400 W.
    def shape(i: int) -> Row:
        return Row(sm_fraction=0.5, power_w=100.0) if i % 10 == 0 else Row(power_w=400.0)

    bundle = mlperf(tmp_path, system=False, csv=telemetry(shape=shape))
    findings, _ = run(EFFICIENCY, efficiency_submission(bundle, 1728.33 / 400), bundle)
    headline = of_kind(findings, "efficiency")[0]
    assert "over 400.0 W" in headline.message and "13 throttled excluded" in headline.message
    assert flagged(findings, "13 of 130 samples throttled (SM clock < 0.75 × max): 10.0%")


def test_a_perf_per_watt_claim_computed_over_throttled_power_does_not_match(tmp_path: Path) -> None:
    def shape(i: int) -> Row:
        return Row(sm_fraction=0.5, power_w=100.0) if i % 10 == 0 else Row(power_w=400.0)

    bundle = mlperf(tmp_path, system=False, csv=telemetry(shape=shape))
    diluted = 1728.33 / ((13 * 100 + 117 * 400) / 130)  # the flattering figure: throttled power averaged in
    findings, _ = run(EFFICIENCY, efficiency_submission(bundle, diluted), bundle)
    assert flagged(findings, "does not match the 4.32083 samples/s/W")
