"""compute_inference_latency_v1 on a real vLLM bench result; compute_thermal_power_check_v1 on telemetry."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .kit import FIXTURES, H100, L40S, Bundle, Row, claim, flagged, of_kind, run, series, submission, unsatisfied

LATENCY = "compute_inference_latency_v1"
THERMAL = "compute_thermal_power_check_v1"
VLLM = FIXTURES / "vllm/bench-serve-l40s-llama-3.2-3b-10qps.json"
L40S_DECLARED: dict[str, Any] = {"model": "L40S-48GB", "count": 4, "memory_gb": 48, "driver": "535", "cuda": "12.2"}


def serving(tmp_path: Path, result: bytes | None = None, *, offset: str = "+00:00") -> tuple[dict[str, Any], Bundle]:
    # The result ends 2025-05-30 20:38:06 host time after 36.03 s; four L40S sampled every 2 s around it.
    bundle = Bundle(tmp_path)
    bundle.add("serving_benchmark", VLLM.name, result or VLLM.read_bytes(), "application/json")
    bundle.add("telemetry", "telemetry.csv", series(datetime(2025, 5, 30, 20, 37), 50, every_s=2, gpus=4, board=L40S))
    claims = [
        claim("output_tokens_per_second", 2249.25, "tok/s", VLLM.name),
        claim("ttft_p99_ms", 89.77, "ms", VLLM.name),
        claim("tpot_median_ms", 13.51, "ms", VLLM.name),
    ]
    document = submission(
        bundle, start="2025-05-30T20:36:00Z", end="2025-05-30T20:40:00Z", claims=claims, offset=offset, **L40S_DECLARED
    )
    return document, bundle


def edited(**changes: Any) -> bytes:
    result = json.loads(VLLM.read_bytes())
    for key, value in changes.items():
        if value is None:
            del result[key]
        else:
            result[key] = value
    return json.dumps(result).encode()


def test_a_real_vllm_run_within_the_lanes_floor_passes(tmp_path: Path) -> None:
    document, bundle = serving(tmp_path)
    findings, verdict = run(LATENCY, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    messages = [f.message for f in of_kind(findings, "inference_latency")]
    assert "300 requests completed, 0 failed (at least 10 and at most 0 failed required)" in messages
    assert "p99 TTFT 89.77 ms against the ceiling 2000 ms" in messages
    assert any("with 73 samples of 4 × L40S-48GB" in m for m in messages)


def test_a_ttft_over_the_ceiling_is_flagged(tmp_path: Path) -> None:
    document, bundle = serving(tmp_path, edited(p99_ttft_ms=2500.0))
    findings, _ = run(LATENCY, document, bundle)
    assert flagged(findings, "p99 TTFT 2500.00 ms against the ceiling 2000 ms")
    assert flagged(findings, "ttft_p99_ms = 89.77 ms does not match the 2500 ms")


def test_a_percentile_the_benchmark_did_not_record_is_not_measured(tmp_path: Path) -> None:
    document, bundle = serving(tmp_path, edited(median_tpot_ms=None))
    findings, _ = run(LATENCY, document, bundle)
    assert flagged(findings, "median TPOT not measured", tier="high")
    assert flagged(findings, "tpot_median_ms = 13.51 ms: not measured", tier="high")


def test_a_host_clock_offset_declared_wrong_puts_the_run_outside_its_window(tmp_path: Path) -> None:
    # Declaring the host at UTC+02:00 moves its 20:37 samples to 18:37Z, before the window opens.
    document, bundle = serving(tmp_path, offset="+02:00")
    findings, _ = run(LATENCY, document, bundle)
    assert flagged(findings, "fall outside the run window", tier="high")


# -- thermal and power ------------------------------------------------------------


def thermal(tmp_path: Path, shape: Any = None, power_limit_w: float = 700.0) -> tuple[dict[str, Any], Bundle]:
    bundle = Bundle(tmp_path)
    bundle.add("telemetry", "telemetry.csv", series(datetime(2024, 1, 20, 5, 21), 120, gpus=2, board=H100, shape=shape))
    claims = [claim("max_temperature_c", 64, "C", "telemetry.csv"), claim("mean_power_w", 1300, "W", "telemetry.csv")]
    document = submission(
        bundle,
        start="2024-01-20T05:20:00Z",
        end="2024-01-20T05:35:00Z",
        model="H100-SXM5-80GB",
        count=2,
        memory_gb=80,
        power_limit_w=power_limit_w,
        claims=claims,
    )
    return document, bundle


def test_steady_load_under_the_limit_passes(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path)
    findings, verdict = run(THERMAL, document, bundle)
    assert unsatisfied(findings) == [], [f.message for f in unsatisfied(findings)]
    assert verdict.recommended_action == "approve"
    assert "power limit 700 W requested and in force on all 2 GPUs" in [f.message for f in findings]


def test_any_thermal_slowdown_during_the_run_is_a_high_flag(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, shape=lambda i: Row(reasons=0x40 if i == 50 else 0x4))  # 0x4: SW power cap
    findings, _ = run(THERMAL, document, bundle)
    slowdown = flagged(findings, "thermal slowdown active in 2 samples during the run", tier="high")
    assert slowdown.observed == "2"


def test_a_temperature_over_the_ceiling_is_flagged(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, shape=lambda i: Row(temperature_c=91.0 if i > 100 else 64.0))
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "peak GPU temperature 91 C")
    assert flagged(findings, "max_temperature_c = 64 C does not match the 91 C")


def test_an_effective_limit_below_the_requested_one_is_flagged(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, shape=lambda i: Row(power_w=580.0, enforced_w=600.0))
    findings, _ = run(THERMAL, document, bundle)
    capped = flagged(findings, "effective 600 W ≠ requested 700 W (the platform capped it)")
    assert capped.expected == "700"


def test_a_declared_limit_that_does_not_read_back_is_flagged(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, power_limit_w=500.0)
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "requested 700 W, declared 500 W")


def test_power_above_the_enforced_limit_is_not_a_reading_of_this_board(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, shape=lambda i: Row(power_w=900.0 if i == 3 else 650.0))
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "power draw above the enforced limit", tier="high")


def test_telemetry_without_a_thermal_reason_column_cannot_show_no_slowdown(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path)
    path = bundle.files["ev_1"]
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")  # drop the reasons column
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "thermal slowdown not measured", tier="high")
