"""Memory-bandwidth logs: BabelStream (GPU STREAM) and McCalpin's STREAM.

BabelStream prints "Using CUDA device <name>" and a table
`Function    MBytes/sec  Min (sec)   Max   Average` (MiBytes/sec with `--mibibytes`);
STREAM prints `Function    Best Rate MB/s  Avg time ...` with rows "Triad:  13991.7 ...".
Both MB are 10^6 bytes. Rates are returned in GB/s (10^9 bytes per second), the unit of
a datasheet's bandwidth. nvidia-smi reports no bandwidth at all: it must be measured.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized

MAX_LOG_BYTES = 4 * 1024 * 1024
Tool = Literal["babelstream", "stream"]
_DEVICE = re.compile(r"^Using (?:CUDA|HIP|OpenCL|SYCL|OpenMP|Kokkos|RAJA|\w+) device (.+)$")
_BABEL_HEADER = re.compile(r"^Function\s+(MBytes|MiBytes|GBytes|GiBytes)/sec\s+Min")
_STREAM_HEADER = re.compile(r"^Function\s+Best Rate (MB|MiB|GB)/s\s+Avg time")
_ROW = re.compile(r"^([A-Za-z]+):?\s+([0-9]+(?:\.[0-9]+)?)(?:\s+[0-9.eE+-]+){2,3}\s*$")
_TO_GB = {
    "MBytes": 1e-3,
    "MiBytes": 1.048576e-3,
    "GBytes": 1.0,
    "GiBytes": 1.073741824,
    "MB": 1e-3,
    "MiB": 1.048576e-3,
    "GB": 1.0,
}


class BandwidthLog(msgspec.Struct, frozen=True, kw_only=True):
    tool: Tool
    device: str | None  # the device the run names, if the tool prints one
    rates_gb_s: dict[str, float]  # lower-case kernel name -> best rate


def parse_bandwidth_log(data: bytes) -> BandwidthLog:
    refuse_oversized("bandwidth log", len(data), MAX_LOG_BYTES)
    text = data.decode("utf-8", errors="replace")
    device: str | None = None
    tool: Tool | None = None
    scale = 0.0
    rates: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if match := _DEVICE.match(line):
            device = match.group(1).strip()
        elif match := _BABEL_HEADER.match(line):
            tool, scale = "babelstream", _TO_GB[match.group(1)]
        elif match := _STREAM_HEADER.match(line):
            tool, scale = "stream", _TO_GB[match.group(1)]
        elif tool is not None and (match := _ROW.match(line)):
            rates.setdefault(match.group(1).lower(), float(match.group(2)) * scale)
    if tool is None or not rates:
        raise EvidenceRefused("not a BabelStream or STREAM log: no 'Function ... MBytes/sec' table with rates")
    return BandwidthLog(tool=tool, device=device, rates_gb_s=rates)
