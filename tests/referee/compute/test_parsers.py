"""The parsers read every real capture under fixtures/, across driver generations and tools."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from defendable_referee.compute.dcgm import parse_diag
from defendable_referee.compute.errors import EvidenceRefused
from defendable_referee.compute.gpu_specs import MODELS, SPECS, by_device_id, by_name
from defendable_referee.compute.host import parse_df, parse_uptime
from defendable_referee.compute.mlperf import parse_detail, parse_summary, parse_system_description
from defendable_referee.compute.nvidia_smi import parse_smi_xml
from defendable_referee.compute.quantity import pci_ids, quantity
from defendable_referee.compute.smi_csv import canonical_column, parse_smi_csv
from defendable_referee.compute.stream_log import parse_bandwidth_log
from defendable_referee.compute.vllm_bench import parse_server_log, parse_serving_result

from .kit import FIXTURES, MLPERF_H100, XML

# -- nvidia-smi -q -x, one capture per driver generation ----------------------


def test_pre_535_xml_reads_power_readings_power_limit_and_throttle_reasons() -> None:
    log = parse_smi_xml((XML / "tesla-t4-driver-515.xml").read_bytes())
    assert (log.driver_version, log.cuda_version, log.attached_gpus, log.power_schema) == (
        "515.105.01",
        "11.7",
        1,
        "power_readings",
    )
    assert log.timestamp == datetime(2023, 4, 24, 16, 22, 39)
    [gpu] = log.gpus
    assert (gpu.device_id, gpu.vendor_id, gpu.product_name) == (0x1EB8, 0x10DE, "Tesla T4")
    assert gpu.memory_total_mib == 15360
    assert (gpu.power_draw_w, gpu.power_limit_requested_w, gpu.power_limit_effective_w) == (26.78, 70.0, 70.0)
    assert (gpu.sm_clock_mhz, gpu.max_sm_clock_mhz, gpu.temperature_c) == (585, 1590, 40)
    assert gpu.clock_reasons["hw_thermal_slowdown"] is False and gpu.thermal_slowdown is False
    assert (gpu.ecc_mode, gpu.persistence_mode, gpu.retired_pages_double_bit) == ("Enabled", "Disabled", 0)
    assert gpu.remapped_rows_failure is None  # "N/A" on this board


def test_535_xml_reads_gpu_power_readings_and_clocks_event_reasons() -> None:
    log = parse_smi_xml((XML / "a100-sxm4-80gb-driver-535.xml").read_bytes())
    assert (log.driver_version, log.power_schema, log.attached_gpus, len(log.gpus)) == (
        "535.54.03",
        "gpu_power_readings",
        4,
        1,  # a partial capture: attached_gpus says 4, one <gpu> is listed
    )
    [gpu] = log.gpus
    assert (gpu.device_id, gpu.memory_total_mib, gpu.power_draw_w) == (0x20B2, 81920, 67.03)
    assert (gpu.power_limit_requested_w, gpu.power_limit_effective_w) == (500.0, 500.0)
    assert "sw_power_cap" in gpu.clock_reasons and gpu.thermal_slowdown is False
    assert gpu.retired_pages_double_bit is None  # "N/A": A100s remap rows instead


def test_newer_xml_reads_instant_power_draw_over_average() -> None:
    log = parse_smi_xml((XML / "rtx-4000-sff-ada-driver-595.xml").read_bytes())
    [gpu] = log.gpus
    assert (log.driver_version, log.cuda_version, gpu.device_id) == ("595.84", "13.2", 0x27B0)
    assert gpu.power_draw_w == 8.44  # instant_power_draw, not average_power_draw 8.81
    assert (gpu.power_limit_requested_w, gpu.power_limit_effective_w, gpu.max_sm_clock_mhz) == (70.0, 70.0, 3105)
    assert gpu.clock_reasons["gpu_idle"] is True
    assert (gpu.persistence_mode, gpu.ecc_mode, gpu.remapped_rows_failure) == ("Enabled", "Disabled", "No")


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("81559 MiB", "MiB", 81559.0),
        ("350.00 W", "W", 350.0),
        ("1980 MHz", "MHz", 1980.0),
        ("45 C", "C", 45.0),
        ("37 %", "%", 37.0),
        ("1980", "MHz", 1980.0),  # --format=csv,nounits
        ("N/A", "W", None),
        ("[N/A]", "W", None),
        ("[Not Supported]", "W", None),
        ("Requested functionality has been deprecated", "MHz", None),
    ],
)
def test_values_are_read_with_their_units(text: str, unit: str, value: float | None) -> None:
    assert quantity(text, unit, field="f") == value


@pytest.mark.parametrize("text", ["350.00 mW", "81559 GiB", "NaN W", "inf", "12,5 W", "0x10 W"])
def test_a_value_in_another_unit_or_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(EvidenceRefused):
        quantity(text, "W", field="power")


def test_pci_device_ids_split_into_device_and_vendor() -> None:
    assert pci_ids("20B210DE") == (0x20B2, 0x10DE)
    assert pci_ids("0x233010DE") == (0x2330, 0x10DE)
    assert pci_ids("N/A") is None
    with pytest.raises(EvidenceRefused):
        pci_ids("20B2")


# -- nvidia-smi --query-gpu CSV -----------------------------------------------


def test_query_gpu_csv_reads_units_in_the_header_and_bare_values() -> None:
    telemetry = parse_smi_csv((FIXTURES / "nvidia-smi-csv/h100-1x-query-gpu.csv").read_bytes())
    [sample] = telemetry.samples
    assert sample.time == datetime(2024, 3, 15, 13, 57, 59, 791000)
    assert (sample.gpu, sample.name) == ("00000000:0A:00.0", "NVIDIA H100 80GB HBM3")
    assert sample.sm_clock_mhz == 345 and sample.utilization_pct == 1 and sample.temperature_c == 26
    assert sample.power_w == 70.68  # power.draw.instant is preferred over power.draw.average (70.89)
    assert telemetry.has_power and not telemetry.has_thermal_reason and not telemetry.backward_jumps


def test_query_gpu_csv_reads_na_and_bracketed_na_as_no_reading() -> None:
    telemetry = parse_smi_csv((FIXTURES / "nvidia-smi-csv/t4-1x-query-gpu-na.csv").read_bytes())
    [sample] = telemetry.samples
    assert sample.name == "Tesla T4" and sample.power_w == 9.31  # average is [N/A]; instant is read


def test_query_gpu_csv_reads_eight_gpus() -> None:
    telemetry = parse_smi_csv((FIXTURES / "nvidia-smi-csv/h100-8x-query-gpu.csv").read_bytes())
    assert len(telemetry.samples) == 8 and {s.name for s in telemetry.samples} == {"NVIDIA H100 80GB HBM3"}


def test_renamed_event_reason_columns_read_as_throttle_reasons() -> None:
    assert canonical_column("clocks_event_reasons.hw_thermal_slowdown") == "clocks_throttle_reasons.hw_thermal_slowdown"
    assert canonical_column("clocks.sm [MHz]") == "clocks.current.sm"
    csv = (
        b"timestamp, uuid, clocks_event_reasons.hw_thermal_slowdown, clocks_event_reasons.sw_thermal_slowdown\n"
        b"2024/01/20 05:21:00.000, GPU-1, Not Active, Active\n"
    )
    [sample] = parse_smi_csv(csv).samples
    assert sample.thermal_slowdown is True


def test_a_backward_clock_jump_is_recorded_per_gpu() -> None:
    csv = (
        b"timestamp, uuid, power.draw [W]\n"
        b"2024/01/20 05:21:00.000, GPU-1, 100 W\n"
        b"2024/01/20 05:20:00.000, GPU-2, 100 W\n"  # another GPU: not a jump
        b"2024/01/20 05:19:00.000, GPU-1, 100 W\n"
    )
    [jump] = parse_smi_csv(csv).backward_jumps
    assert (jump.row, jump.gpu) == (4, "GPU-1")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"index, power.draw [W]\n0, 100 W\n",  # no timestamp column
        b"timestamp, uuid\n2024/01/20 05:21:00.000, GPU-1, extra\n",  # ragged
        b"timestamp, uuid\nyesterday, GPU-1\n",
        b"timestamp, uuid, power.draw [W]\n2024/01/20 05:21:00.000, GPU-1, 100 kW\n",
        b"\xff\xfe\x00",
    ],
)
def test_malformed_query_gpu_csv_is_refused(data: bytes) -> None:
    with pytest.raises(EvidenceRefused):
        parse_smi_csv(data)


# -- MLPerf LoadGen -------------------------------------------------------------


def test_mlperf_summary_of_a_real_h100_run() -> None:
    summary = parse_summary((MLPERF_H100 / "mlperf_log_summary.txt").read_bytes())
    assert (summary.sut_name, summary.scenario, summary.mode, summary.validity) == (
        "LWIS_Server",
        "Offline",
        "PerformanceOnly",
        "VALID",
    )
    assert summary.samples_per_second == 1728.33 and summary.errors == 0
    assert summary.latency_ns["p99"] == 642710090978 and summary.latency_ns["p99.9"] == 648538677683


def test_mlperf_detail_of_the_same_run_anchors_its_window_in_utc() -> None:
    detail = parse_detail((MLPERF_H100 / "mlperf_log_detail.txt").read_bytes())
    assert detail.start == datetime(2024, 1, 20, 5, 21, 33, tzinfo=UTC)
    assert round((detail.end - detail.start).total_seconds(), 3) == 649.29  # the last event's time_ms
    assert (detail.validity, detail.samples_per_second, detail.scenario, detail.errors) == (
        "VALID",
        1728.33,
        "Offline",
        0,
    )
    assert "loaded_qsl_set" not in detail.events


def test_mlperf_system_description_names_the_accelerator() -> None:
    system = parse_system_description((MLPERF_H100 / "DGX-H100_H100-SXM-80GBx1_TRT.json").read_bytes())
    spec = by_name(system.accelerator_model_name)
    assert (system.accelerators_per_node, spec.model if spec else None) == (1, "H100-SXM5-80GB")


@pytest.mark.parametrize(
    ("parser", "data"),
    [
        (parse_summary, b"Samples per second: 1e9\n"),
        (parse_summary, b"MLPerf Results Summary\nResult is : MAYBE\n"),
        (parse_detail, b"no events here\n"),
        (parse_detail, b':::MLLOG {"key": "test_datetime", "value": "2024-01-20T05:21:33Z"}\n'),  # no time_ms
        (parse_detail, b':::MLLOG {"key": "x", "time_ms": 1.0\n'),
    ],
)
def test_malformed_loadgen_logs_are_refused(parser: object, data: bytes) -> None:
    with pytest.raises(EvidenceRefused):
        parser(data)  # type: ignore[operator]  # both parsers take bytes


# -- vLLM, DCGM, STREAM, host ---------------------------------------------------


def test_vllm_bench_serve_result_of_a_real_run() -> None:
    result = parse_serving_result((FIXTURES / "vllm/bench-serve-l40s-llama-3.2-3b-10qps.json").read_bytes())
    assert result.end == datetime(2025, 5, 30, 20, 38, 6)
    assert round(result.duration_s, 3) == 36.034 and result.completed == 300 and result.failed is None
    assert round(result.output_throughput or 0, 2) == 2249.25
    assert round(result.latency_ms["ttft.p99"], 2) == 89.77 and round(result.latency_ms["tpot.median"], 2) == 13.51


def test_vllm_server_log_model_load_lines_old_and_new() -> None:
    log = (
        b"INFO 05-30 20:30:01 [gpu_model_runner.py:1595] Model loading took 6.0160 GiB and 38.402145 seconds\n"
        b"(VllmWorker rank=1) INFO Model loading took 6.02 GiB memory and 41.5 seconds\n"
    )
    load = parse_server_log(log)
    assert (load.seconds, load.gib, load.loads) == (41.5, 6.02, 2)
    with pytest.raises(EvidenceRefused):
        parse_server_log(b"INFO starting\n")


def test_dcgm_diag_json_with_nulls_between_tests() -> None:
    diag = parse_diag((FIXTURES / "dcgm/dcgmi-diag-r1-dcgm-3.1.0.json").read_bytes())
    assert diag.version == "3.1.0" and len(diag.results) == 9 + 8
    assert {r.status for r in diag.results} == {"pass"}
    assert diag.results[0].test == "Denylist" and diag.results[0].gpus == "0,1,2,3,4,5,6,7"


def test_dcgm_diag_json_after_a_warning_line_and_dcgm4_shape() -> None:
    data = b'WARNING: something\n{"DCGM Diagnostic": {"version": "4.2.3", "tests": [{"name": "memory",'
    data += b' "results": [{"entity_id": 0, "status": "Fail", "warnings": [{"warning": "DBE"}]}]}]}}'
    [result] = parse_diag(data).results
    assert (result.test, result.gpus, result.status, result.warnings) == ("memory", "0", "fail", ["DBE"])


def test_babelstream_log_of_a_real_a100_run_in_gb_per_second() -> None:
    log = parse_bandwidth_log((FIXTURES / "stream/babelstream-5.0-cuda-a100-sxm4-80gb.txt").read_bytes())
    assert (log.tool, log.device) == ("babelstream", "NVIDIA A100-SXM4-80GB")
    assert round(log.rates_gb_s["triad"], 3) == 1724.827 and set(log.rates_gb_s) == {
        "copy",
        "mul",
        "add",
        "triad",
        "dot",
    }


def test_mccalpin_stream_table_is_read_too() -> None:
    # STREAM 5.10's documented output table (stream.c); no device line: it runs on the CPU.
    log = parse_bandwidth_log(
        b"Function    Best Rate MB/s  Avg time     Min time     Max time\n"
        b"Copy:           19872.3     0.008186     0.008051     0.008403\n"
        b"Triad:          13991.7     0.017174     0.017153     0.017192\n"
    )
    assert (log.tool, log.device, round(log.rates_gb_s["triad"], 4)) == ("stream", None, 13.9917)


def test_df_and_proc_uptime() -> None:
    usage = parse_df(
        b"Filesystem     1024-blocks      Used Available Capacity Mounted on\n"
        b"/dev/nvme0n1p1   487652372 123456789 339411012      27% /mnt/models x\n"
    )
    [fs] = usage.filesystems
    assert (fs.mount, fs.available_bytes) == ("/mnt/models x", 339411012 * 1024)
    assert parse_uptime(b"350735.47 234388.90\n").seconds == 350735.47
    with pytest.raises(EvidenceRefused):
        parse_uptime(b"up 3 days")


# -- the GPU table ----------------------------------------------------------------


def test_every_datacenter_gpu_of_the_issue_is_identified_by_device_id() -> None:
    wanted = {
        0x20B0: "A100-SXM4-40GB",
        0x20B2: "A100-SXM4-80GB",
        0x2330: "H100-SXM5-80GB",
        0x2331: "H100-PCIE-80GB",
        0x2335: "H200-SXM-141GB",
        0x27B8: "L4-24GB",
        0x26B9: "L40S-48GB",
        0x2236: "A10-24GB",
        0x1EB8: "T4-16GB",
        0x1DB5: "V100-SXM2-32GB",
    }
    found = {d: spec.model for d in wanted if (spec := by_device_id(d)) is not None}
    assert found == wanted
    assert len(MODELS) == len(set(MODELS)) == len(SPECS)


def test_reported_frame_buffers_fit_their_boards_and_not_their_neighbours() -> None:
    t4, a100, h100 = (by_device_id(d) for d in (0x1EB8, 0x20B2, 0x2330))
    assert t4 is not None and a100 is not None and h100 is not None
    assert t4.memory_fits(15360) and a100.memory_fits(81920) and h100.memory_fits(81559)
    assert not a100.memory_fits(40960) and not h100.memory_fits(15360)
