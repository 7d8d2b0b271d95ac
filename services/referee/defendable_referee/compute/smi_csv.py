"""`nvidia-smi --query-gpu=... --format=csv[,nounits] [-l N | -lms N]`: a telemetry series.

The header names each column the way nvidia-smi canonicalises it ("clocks.sm" is printed
"clocks.current.sm [MHz]"), with the unit in brackets; values carry the unit too unless
`nounits` was given ("1980 MHz" or "1980"). Drivers 535+ renamed `clocks_throttle_reasons.*`
to `clocks_event_reasons.*`; both spellings read the same. "N/A", "[N/A]" and
"[Not Supported]" are no reading.

Timestamps ("2024/03/15 13:57:59.791") are host-local with no zone; they are kept naive
here, and the submission's declared host offset places them in UTC (window.py). A loop
restarted by `-l` repeats the header line; repeats are skipped. The clock is not trusted:
per GPU, a timestamp earlier than the one before it is recorded as a backward jump, for
the checks to flag (telemetry.py).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized
from defendable_referee.compute.quantity import is_no_reading, pci_ids, quantity

MAX_CSV_BYTES = 64 * 1024 * 1024
MAX_ROWS = 2_000_000
MAX_COLUMNS = 200
THERMAL_BITS = 0x20 | 0x40  # NVML: SwThermalSlowdown 0x20, HwThermalSlowdown 0x40
_UNIT = re.compile(r"^(.*?)\s*\[([^\]]*)\]$")
_ALIASES = {
    "clocks.sm": "clocks.current.sm",
    "clocks.gr": "clocks.current.graphics",
    "clocks.mem": "clocks.current.memory",
    "clocks.max.sm": "clocks.max.sm",
    "clocks.max.gr": "clocks.max.graphics",
}
POWER_COLUMNS = ("power.draw.instant", "power.draw", "power.draw.average")  # preferred first


class ClockJump(msgspec.Struct, frozen=True, kw_only=True):
    row: int  # 1-based line in the file
    gpu: str
    previous: datetime
    current: datetime


class Sample(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    row: int  # 1-based line in the file
    time: datetime  # host-local
    gpu: str  # identity: uuid, else PCI bus id, else index
    name: str | None = None
    device_id: int | None = None
    vendor_id: int | None = None
    sm_clock_mhz: float | None = None
    max_sm_clock_mhz: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None  # power.limit: the software limit requested
    enforced_power_limit_w: float | None = None  # the limit in force
    temperature_c: float | None = None
    utilization_pct: float | None = None
    thermal_slowdown: bool | None = None


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    columns: list[str]  # canonical names, in file order
    samples: list[Sample]
    backward_jumps: list[ClockJump]

    def has(self, column: str) -> bool:
        return column in self.columns

    @property
    def has_power(self) -> bool:
        return any(c in self.columns for c in POWER_COLUMNS)

    @property
    def has_thermal_reason(self) -> bool:
        return any(
            c in self.columns
            for c in (
                "clocks_throttle_reasons.active",
                "clocks_throttle_reasons.hw_thermal_slowdown",
                "clocks_throttle_reasons.sw_thermal_slowdown",
            )
        )


def canonical_column(header: str) -> str:
    """ "clocks_event_reasons.active" and "clocks.sm [MHz]" as one spelling each."""
    name = header.strip()
    match = _UNIT.match(name)
    if match:
        name = match.group(1)
    name = name.strip().lower()
    if name.startswith("clocks_event_reasons."):
        name = "clocks_throttle_reasons." + name.removeprefix("clocks_event_reasons.")
    return _ALIASES.get(name, name)


def parse_smi_csv(data: bytes) -> Telemetry:
    """Plan: 1. bound and decode; 2. read the header; 3. read each row into a Sample;
    4. note per-GPU backward clock jumps."""
    # 1.
    refuse_oversized("nvidia-smi CSV", len(data), MAX_CSV_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvidenceRefused(f"nvidia-smi CSV is not UTF-8: {exc.reason} at byte {exc.start}") from None
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    # 2.
    header: list[str] | None = None
    samples: list[Sample] = []
    jumps: list[ClockJump] = []
    last: dict[str, datetime] = {}
    try:
        for line, cells in enumerate(reader, start=1):
            if not cells or all(not c.strip() for c in cells):
                continue
            if header is None:
                header = [canonical_column(c) for c in cells]
                if "timestamp" not in header:
                    raise EvidenceRefused("nvidia-smi CSV header has no timestamp column (query timestamp first)")
                if len(header) > MAX_COLUMNS:
                    raise EvidenceRefused(f"nvidia-smi CSV has {len(header)} columns; the limit is {MAX_COLUMNS}")
                continue
            if [canonical_column(c) for c in cells] == header:
                continue  # the header again, after a restarted loop
            if len(cells) != len(header):
                raise EvidenceRefused(
                    f"nvidia-smi CSV line {line} has {len(cells)} fields; the header has {len(header)}"
                )
            if len(samples) >= MAX_ROWS:
                raise EvidenceRefused(f"nvidia-smi CSV has more than {MAX_ROWS} rows")
            # 3.
            sample = _sample(line, dict(zip(header, (c.strip() for c in cells), strict=True)))
            samples.append(sample)
            # 4.
            previous = last.get(sample.gpu)
            if previous is not None and sample.time < previous:
                jumps.append(ClockJump(row=line, gpu=sample.gpu, previous=previous, current=sample.time))
            last[sample.gpu] = sample.time
    except csv.Error as exc:
        raise EvidenceRefused(f"nvidia-smi CSV is malformed: {exc}") from None
    if header is None:
        raise EvidenceRefused("nvidia-smi CSV is empty")
    return Telemetry(columns=header, samples=samples, backward_jumps=jumps)


def _sample(line: int, row: dict[str, str]) -> Sample:
    def number(column: str, unit: str) -> float | None:
        return quantity(row.get(column), unit, field=f"line {line} {column}")

    ids = pci_ids(row.get("pci.device_id"))
    gpu = next((row[c] for c in ("uuid", "pci.bus_id", "index") if not is_no_reading(row.get(c))), None)
    if gpu is None:
        raise EvidenceRefused(f"nvidia-smi CSV line {line} names no GPU (query uuid, pci.bus_id or index)")
    power = next((v for c in POWER_COLUMNS if (v := number(c, "W")) is not None), None)
    return Sample(
        row=line,
        time=_timestamp(row["timestamp"], line),
        gpu=gpu,
        name=None if is_no_reading(row.get("name")) else row.get("name"),
        device_id=ids[0] if ids else None,
        vendor_id=ids[1] if ids else None,
        sm_clock_mhz=number("clocks.current.sm", "MHz"),
        max_sm_clock_mhz=number("clocks.max.sm", "MHz"),
        power_w=power,
        power_limit_w=number("power.limit", "W"),
        enforced_power_limit_w=number("enforced.power.limit", "W"),
        temperature_c=number("temperature.gpu", "C"),
        utilization_pct=number("utilization.gpu", "%"),
        thermal_slowdown=_thermal(row, line),
    )


def _thermal(row: dict[str, str], line: int) -> bool | None:
    states: list[bool] = []
    for column in ("clocks_throttle_reasons.hw_thermal_slowdown", "clocks_throttle_reasons.sw_thermal_slowdown"):
        value = row.get(column)
        if value is None or is_no_reading(value):
            continue
        if value not in ("Active", "Not Active"):
            raise EvidenceRefused(f"nvidia-smi CSV line {line} {column}: {value[:40]!r} is not Active / Not Active")
        states.append(value == "Active")
    mask = row.get("clocks_throttle_reasons.active")
    if mask is not None and not is_no_reading(mask):
        if not re.fullmatch(r"0x[0-9a-fA-F]{1,16}", mask):
            raise EvidenceRefused(f"nvidia-smi CSV line {line} clocks_throttle_reasons.active: {mask[:40]!r}")
        states.append(bool(int(mask, 16) & THERMAL_BITS))
    return any(states) if states else None


def _timestamp(text: str, line: int) -> datetime:
    for pattern in ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise EvidenceRefused(f"nvidia-smi CSV line {line}: timestamp {text[:40]!r} is not YYYY/MM/DD HH:MM:SS.mmm")
