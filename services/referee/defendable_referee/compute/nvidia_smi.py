"""`nvidia-smi -q -x` output, across driver generations: bytes in, typed snapshot out.

The XML changed under drivers 535+ and again later; this reads all three shapes:

| reading         | before 535                | 535 ... ~550            | newer                                 |
| --------------- | ------------------------- | ----------------------- | ------------------------------------- |
| power element   | `power_readings`          | `gpu_power_readings`    | `gpu_power_readings`                  |
| draw            | `power_draw`              | `power_draw`            | `instant_power_draw` (and `average_`) |
| requested limit | `power_limit`             | `requested_power_limit` | `requested_power_limit`               |
| effective limit | `enforced_power_limit`    | `current_power_limit`   | `current_power_limit`                 |
| clock reasons   | `clocks_throttle_reasons` | `clocks_event_reasons`  | `clocks_event_reasons`                |

Values carry units ("81559 MiB", "350.00 W") or read "N/A"; both are handled by
quantity.py. Fields this lane does not use are ignored.

The parser is hardened (defusedxml over the standard library's expat) because the file
comes from the submitter: any entity declaration — the billion-laughs bomb, the
quadratic blow-up, an external entity pointing at /etc/passwd or a URL — is refused
before it expands. A DOCTYPE itself is allowed, and must be: every real nvidia-smi file
starts `<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">`, and expat never
fetches that external DTD. lxml was the alternative; it is a compiled dependency this
project does not otherwise need, and with `resolve_entities=False` it still parses an
internal subset, where defusedxml refuses one. Size is bounded before parsing, and the
element count after.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only for the Element type and ParseError; parsing is defusedxml's
from datetime import datetime

import msgspec
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized
from defendable_referee.compute.quantity import count, is_no_reading, pci_ids, quantity

MAX_XML_BYTES = 16 * 1024 * 1024  # a 16-GPU node with every supported-clock list is ~2 MiB
MAX_ELEMENTS = 500_000
MAX_GPUS = 1024
THERMAL_REASONS = ("hw_thermal_slowdown", "sw_thermal_slowdown")


class GpuSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One `<gpu>` element, read. None means the file reports no reading ("N/A")."""

    bus_id: str
    product_name: str
    uuid: str
    device_id: int | None  # PCI device id, e.g. 0x2330
    vendor_id: int | None  # PCI vendor id; NVIDIA is 0x10DE
    memory_total_mib: float | None
    persistence_mode: str | None  # "Enabled" / "Disabled"
    ecc_mode: str | None  # current ECC mode
    dram_uncorrectable_volatile: int | None
    dram_uncorrectable_aggregate: int | None
    retired_pages_single_bit: int | None
    retired_pages_double_bit: int | None
    retirement_pending: str | None
    remapped_rows_failure: str | None
    remapped_rows_pending: str | None
    temperature_c: float | None
    power_draw_w: float | None
    power_limit_requested_w: float | None
    power_limit_effective_w: float | None
    sm_clock_mhz: float | None
    max_sm_clock_mhz: float | None
    clock_reasons: dict[str, bool] = {}  # "hw_thermal_slowdown" -> active

    @property
    def thermal_slowdown(self) -> bool | None:
        seen = [self.clock_reasons[r] for r in THERMAL_REASONS if r in self.clock_reasons]
        return any(seen) if seen else None


class SmiLog(msgspec.Struct, frozen=True, kw_only=True):
    timestamp: datetime | None  # host-local, as nvidia-smi prints it (no zone)
    driver_version: str | None
    cuda_version: str | None
    attached_gpus: int | None
    power_schema: str  # "power_readings" (before 535) or "gpu_power_readings"
    gpus: list[GpuSnapshot]


def parse_smi_xml(data: bytes) -> SmiLog:
    """Plan: 1. bound the size; 2. parse with entities refused; 3. bound the tree;
    4. read the log header; 5. read each GPU."""
    # 1.
    refuse_oversized("nvidia-smi XML", len(data), MAX_XML_BYTES)
    # 2.
    try:
        root = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise EvidenceRefused(f"nvidia-smi XML refused: {type(exc).__name__} ({exc})") from None
    except ET.ParseError as exc:
        raise EvidenceRefused(f"nvidia-smi XML is malformed: {exc}") from None
    # 3.
    if root.tag != "nvidia_smi_log":
        raise EvidenceRefused(f"not nvidia-smi -q -x output: the root element is <{root.tag[:40]}>")
    elements = sum(1 for _ in root.iter())
    if elements > MAX_ELEMENTS:
        raise EvidenceRefused(f"nvidia-smi XML has {elements} elements; the limit is {MAX_ELEMENTS}")
    gpus = root.findall("gpu")
    if len(gpus) > MAX_GPUS:
        raise EvidenceRefused(f"nvidia-smi XML lists {len(gpus)} GPUs; the limit is {MAX_GPUS}")
    # 4.
    schema = "gpu_power_readings" if root.find("gpu/gpu_power_readings") is not None else "power_readings"
    return SmiLog(
        timestamp=_timestamp(_text(root, "timestamp")),
        driver_version=_reading(root, "driver_version"),
        cuda_version=_reading(root, "cuda_version"),
        attached_gpus=count(_text(root, "attached_gpus"), field="attached_gpus"),
        power_schema=schema,
        # 5.
        gpus=[_gpu(gpu) for gpu in gpus],
    )


def _gpu(gpu: ET.Element) -> GpuSnapshot:
    ids = pci_ids(_text(gpu, "pci/pci_device_id"))
    power = gpu.find("gpu_power_readings")
    if power is None:
        power = gpu.find("power_readings")
    return GpuSnapshot(
        bus_id=gpu.get("id", "") or (_text(gpu, "pci/pci_bus_id") or ""),
        product_name=_text(gpu, "product_name") or "",
        uuid=_text(gpu, "uuid") or "",
        device_id=ids[0] if ids else None,
        vendor_id=ids[1] if ids else None,
        memory_total_mib=quantity(_text(gpu, "fb_memory_usage/total"), "MiB", field="fb_memory_usage/total"),
        persistence_mode=_reading(gpu, "persistence_mode"),
        ecc_mode=_reading(gpu, "ecc_mode/current_ecc"),
        dram_uncorrectable_volatile=_count(gpu, "ecc_errors/volatile/dram_uncorrectable"),
        dram_uncorrectable_aggregate=_count(gpu, "ecc_errors/aggregate/dram_uncorrectable"),
        retired_pages_single_bit=_count(gpu, "retired_pages/multiple_single_bit_retirement/retired_count"),
        retired_pages_double_bit=_count(gpu, "retired_pages/double_bit_retirement/retired_count"),
        retirement_pending=_reading(gpu, "retired_pages/pending_retirement"),
        remapped_rows_failure=_reading(gpu, "remapped_rows/remapped_row_failure"),
        remapped_rows_pending=_reading(gpu, "remapped_rows/remapped_row_pending"),
        temperature_c=quantity(_text(gpu, "temperature/gpu_temp"), "C", field="temperature/gpu_temp"),
        power_draw_w=_watts(power, "instant_power_draw", "power_draw", "average_power_draw"),  # newest first
        power_limit_requested_w=_watts(power, "requested_power_limit", "power_limit"),
        power_limit_effective_w=_watts(power, "current_power_limit", "enforced_power_limit"),
        sm_clock_mhz=quantity(_text(gpu, "clocks/sm_clock"), "MHz", field="clocks/sm_clock"),
        max_sm_clock_mhz=quantity(_text(gpu, "max_clocks/sm_clock"), "MHz", field="max_clocks/sm_clock"),
        clock_reasons=_clock_reasons(gpu),
    )


def _clock_reasons(gpu: ET.Element) -> dict[str, bool]:
    reasons: dict[str, bool] = {}
    for group, prefix in (
        ("clocks_event_reasons", "clocks_event_reason_"),
        ("clocks_throttle_reasons", "clocks_throttle_reason_"),
    ):
        element = gpu.find(group)
        if element is None:
            continue
        for child in element:
            state = (child.text or "").strip()
            if child.tag.startswith(prefix) and state in ("Active", "Not Active"):
                reasons[child.tag.removeprefix(prefix)] = state == "Active"
    return reasons


def _text(element: ET.Element | None, path: str) -> str | None:
    found = None if element is None else element.find(path)
    return None if found is None or found.text is None else found.text.strip()


def _reading(element: ET.Element, path: str) -> str | None:
    text = _text(element, path)
    return None if is_no_reading(text) else text


def _count(element: ET.Element, path: str) -> int | None:
    return count(_text(element, path), field=path)


def _watts(power: ET.Element | None, *names: str) -> float | None:
    """The first of `names` that carries a reading, in watts."""
    for name in names:
        value = quantity(_text(power, name), "W", field=name)
        if value is not None:
            return value
    return None


def _timestamp(text: str | None) -> datetime | None:
    """nvidia-smi's ctime form, "Fri Aug  4 11:44:30 2023" (host-local, no zone)."""
    if text is None or is_no_reading(text):
        return None
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        raise EvidenceRefused(f"nvidia-smi timestamp {text[:40]!r} is not in ctime form") from None
