"""Host state the readiness sheet reads: `df -P -k PATH` and `/proc/uptime`.

Both formats are fixed by their specifications: POSIX `df -P` prints the header
"Filesystem 1024-blocks Used Available Capacity Mounted on" (512-blocks without -k) and
one line per file system; /proc/uptime (proc(5)) is two decimals, seconds since boot and
idle seconds.
"""

from __future__ import annotations

import re

import msgspec

from defendable_referee.compute.errors import EvidenceRefused, refuse_oversized

MAX_BYTES = 1024 * 1024
_DF_HEADER = re.compile(r"^Filesystem\s+(\d+)-blocks\s+Used\s+Avail(?:able)?\s+Capacity\s+Mounted on$")


class FileSystem(msgspec.Struct, frozen=True, kw_only=True):
    device: str
    mount: str
    size_bytes: int
    available_bytes: int


class DiskUsage(msgspec.Struct, frozen=True, kw_only=True):
    filesystems: list[FileSystem]


class Uptime(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float  # since boot


def parse_df(data: bytes) -> DiskUsage:
    refuse_oversized("df output", len(data), MAX_BYTES)
    lines = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    header = _DF_HEADER.match(lines[0].strip()) if lines else None
    if header is None:
        raise EvidenceRefused("not POSIX `df -P` output: the first line is not its header")
    block = int(header.group(1))
    found: list[FileSystem] = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        if len(fields) < 6 or not all(f.isdigit() for f in fields[1:4]):
            raise EvidenceRefused(f"df output line {number} is not 'device blocks used available capacity mount'")
        found.append(
            FileSystem(
                device=fields[0],
                mount=" ".join(fields[5:]),
                size_bytes=int(fields[1]) * block,
                available_bytes=int(fields[3]) * block,
            )
        )
    if not found:
        raise EvidenceRefused("df output lists no file system")
    return DiskUsage(filesystems=found)


def parse_uptime(data: bytes) -> Uptime:
    """Seconds since boot, from /proc/uptime."""
    refuse_oversized("/proc/uptime", len(data), 256)
    match = re.fullmatch(rb"\s*(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s*", data)
    if match is None:
        raise EvidenceRefused("not /proc/uptime: expected two decimals, uptime and idle seconds")
    return Uptime(seconds=float(match.group(1)))
