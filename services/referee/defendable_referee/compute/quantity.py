"""Numbers as instrumentation prints them: a value, usually a unit, sometimes "N/A".

nvidia-smi writes "81559 MiB", "350.00 W", "1980 MHz", "45 C", "37 %" in its XML, the
same with `--format=csv`, bare numbers with `--format=csv,nounits`, and one of several
spellings for "no reading" ("N/A", "[N/A]", "[Not Supported]", or on new drivers
"Requested functionality has been deprecated"). A value in a different unit than the
field's is refused rather than converted: it means the file is not what it claims.
"""

from __future__ import annotations

import math
import re

from defendable_referee.compute.errors import EvidenceRefused

NO_READING = frozenset(
    {
        "",
        "n/a",
        "[n/a]",
        "not supported",
        "[not supported]",
        "unknown error",
        "[unknown error]",
        "insufficient permissions",
        "[insufficient permissions]",
        "gpu requires reset",
        "[gpu requires reset]",
        "requested functionality has been deprecated",
    }
)
_QUANTITY = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z%/]*)$")


def is_no_reading(text: str | None) -> bool:
    return text is None or text.strip().lower() in NO_READING


def quantity(text: str | None, unit: str, *, field: str) -> float | None:
    """`text` as a number in `unit` (case-insensitive), None for "no reading".

    A bare number is read as already in `unit` (nvidia-smi's `nounits` format)."""
    if is_no_reading(text):
        return None
    assert text is not None
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise EvidenceRefused(f"{field}: {text.strip()[:60]!r} is not a number")
    written = match.group(2)
    if written and written.lower() != unit.lower():
        raise EvidenceRefused(f"{field}: {text.strip()[:60]!r} is not in {unit}")
    value = float(match.group(1))
    if not math.isfinite(value):  # digits only, so unreachable; kept as the invariant
        raise EvidenceRefused(f"{field}: {text!r} is not finite")
    return value


def count(text: str | None, *, field: str) -> int | None:
    """A non-negative integer count ("0", "12"), None for "no reading"."""
    if is_no_reading(text):
        return None
    assert text is not None
    stripped = text.strip()
    if not stripped.isdigit() or len(stripped) > 18:
        raise EvidenceRefused(f"{field}: {stripped[:60]!r} is not a count")
    return int(stripped)


def version_tuple(text: str) -> tuple[int, ...] | None:
    """ "535.54.03" -> (535, 54, 3); None if it is not dotted digits."""
    parts = text.strip().split(".")
    if not parts or len(parts) > 4 or not all(p.isdigit() and len(p) <= 6 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def pci_ids(text: str | None) -> tuple[int, int] | None:
    """nvidia-smi's `pci_device_id` / `pci.device_id` ("20B210DE", "0x233010DE") as
    (device id, vendor id): the high 16 bits are the device, the low 16 the vendor."""
    if is_no_reading(text):
        return None
    assert text is not None
    hexa = text.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{8}", hexa):
        raise EvidenceRefused(f"pci device id {text.strip()[:40]!r} is not 8 hex digits")
    value = int(hexa, 16)
    return value >> 16, value & 0xFFFF
