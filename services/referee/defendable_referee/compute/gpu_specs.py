"""What each common datacenter GPU is, by the identity the hardware reports.

Identity is the PCI device id (the high half of nvidia-smi's `pci_device_id`), which the
board reports and a submitter cannot retype the way they can a product name, cross-checked
against the frame-buffer size. Marketing names are kept only as aliases, to read the
names other tools print (MLPerf system descriptions, BabelStream's "Using CUDA device").

Sources:
* device ids: the PCI ID Repository (pci-ids.ucw.cz, vendor 10de) and the NVIDIA Linux
  driver README, "Appendix A. Supported NVIDIA GPU Products";
* memory size and bandwidth: NVIDIA's product datasheets (V100, T4, A100, A10, H100,
  H200, L4, L40/L40S, RTX 4000 SFF Ada). Bandwidth is the datasheet's peak, in GB/s
  (10^9 bytes per second), the figure a measured STREAM rate is a fraction of.
* the frame-buffer band: nvidia-smi reports less than the nominal size (reserved
  memory; GDDR boards with ECC on lose ~6%): measured here 15360 MiB on a 16 GB T4,
  81559 MiB on an 80 GB H100, 81920 MiB on an 80 GB A100 (fixtures in tests/referee/compute).
"""

from __future__ import annotations

import re

import msgspec

NVIDIA_PCI_VENDOR = 0x10DE
MIN_MEMORY_RATIO = 0.90  # reported MiB / 1024 over nominal GB: ECC-on GDDR reads ~0.94
MAX_MEMORY_RATIO = 1.01


class GpuSpec(msgspec.Struct, frozen=True, kw_only=True):
    model: str  # the key a submission declares
    device_ids: tuple[int, ...]
    memory_gb: int  # nominal, as sold
    bandwidth_gb_s: float  # datasheet peak memory bandwidth
    aliases: tuple[str, ...] = ()

    def memory_fits(self, total_mib: float) -> bool:
        ratio = total_mib / 1024 / self.memory_gb
        return MIN_MEMORY_RATIO <= ratio <= MAX_MEMORY_RATIO


SPECS: tuple[GpuSpec, ...] = (
    GpuSpec(
        model="H100-SXM5-80GB",
        device_ids=(0x2330,),
        memory_gb=80,
        bandwidth_gb_s=3350,
        aliases=("NVIDIA H100 80GB HBM3", "H100-SXM-80GB", "NVIDIA H100-SXM-80GB", "H100 SXM5 80GB"),
    ),
    GpuSpec(
        model="H100-PCIE-80GB",
        device_ids=(0x2331,),
        memory_gb=80,
        bandwidth_gb_s=2000,
        aliases=("NVIDIA H100 PCIe", "H100-PCIe-80GB", "NVIDIA H100-PCIe-80GB"),
    ),
    GpuSpec(
        model="H100-NVL-94GB",
        device_ids=(0x2321,),
        memory_gb=94,
        bandwidth_gb_s=3900,
        aliases=("NVIDIA H100 NVL", "H100-NVL-94GB"),
    ),
    GpuSpec(
        model="H200-SXM-141GB",
        device_ids=(0x2335,),
        memory_gb=141,
        bandwidth_gb_s=4800,
        aliases=("NVIDIA H200", "H200-SXM-141GB", "NVIDIA H200-SXM-141GB"),
    ),
    GpuSpec(
        model="A100-SXM4-80GB",
        device_ids=(0x20B2,),
        memory_gb=80,
        bandwidth_gb_s=2039,
        aliases=("NVIDIA A100-SXM4-80GB", "A100-SXM-80GB", "NVIDIA A100-SXM-80GB"),
    ),
    GpuSpec(
        model="A100-SXM4-40GB",
        device_ids=(0x20B0,),
        memory_gb=40,
        bandwidth_gb_s=1555,
        aliases=("NVIDIA A100-SXM4-40GB", "A100-SXM-40GB", "NVIDIA A100-SXM-40GB"),
    ),
    GpuSpec(
        model="A100-PCIE-80GB",
        device_ids=(0x20B5,),
        memory_gb=80,
        bandwidth_gb_s=1935,
        aliases=("NVIDIA A100 80GB PCIe", "A100-PCIe-80GB", "NVIDIA A100-PCIe-80GB"),
    ),
    GpuSpec(
        model="A100-PCIE-40GB",
        device_ids=(0x20F1,),
        memory_gb=40,
        bandwidth_gb_s=1555,
        aliases=("NVIDIA A100-PCIE-40GB", "A100-PCIe-40GB", "NVIDIA A100-PCIe-40GB"),
    ),
    GpuSpec(model="L40S-48GB", device_ids=(0x26B9,), memory_gb=48, bandwidth_gb_s=864, aliases=("NVIDIA L40S", "L40S")),
    GpuSpec(model="L40-48GB", device_ids=(0x26B5,), memory_gb=48, bandwidth_gb_s=864, aliases=("NVIDIA L40", "L40")),
    GpuSpec(model="L4-24GB", device_ids=(0x27B8,), memory_gb=24, bandwidth_gb_s=300, aliases=("NVIDIA L4", "L4")),
    GpuSpec(model="A10-24GB", device_ids=(0x2236,), memory_gb=24, bandwidth_gb_s=600, aliases=("NVIDIA A10", "A10")),
    GpuSpec(model="A10G-24GB", device_ids=(0x2237,), memory_gb=24, bandwidth_gb_s=600, aliases=("NVIDIA A10G", "A10G")),
    GpuSpec(
        model="T4-16GB", device_ids=(0x1EB8,), memory_gb=16, bandwidth_gb_s=320, aliases=("Tesla T4", "NVIDIA T4", "T4")
    ),
    GpuSpec(
        model="V100-SXM2-32GB",
        device_ids=(0x1DB5,),
        memory_gb=32,
        bandwidth_gb_s=900,
        aliases=("Tesla V100-SXM2-32GB", "V100-SXM2-32GB"),
    ),
    GpuSpec(
        model="V100-SXM2-16GB",
        device_ids=(0x1DB1,),
        memory_gb=16,
        bandwidth_gb_s=900,
        aliases=("Tesla V100-SXM2-16GB", "V100-SXM2-16GB"),
    ),
    GpuSpec(
        model="V100-PCIE-32GB",
        device_ids=(0x1DB6,),
        memory_gb=32,
        bandwidth_gb_s=900,
        aliases=("Tesla V100-PCIE-32GB", "V100-PCIE-32GB"),
    ),
    GpuSpec(
        model="V100-PCIE-16GB",
        device_ids=(0x1DB4,),
        memory_gb=16,
        bandwidth_gb_s=900,
        aliases=("Tesla V100-PCIE-16GB", "V100-PCIE-16GB"),
    ),
    # A workstation board, here because a real driver-595 nvidia-smi capture of it is a fixture.
    GpuSpec(
        model="RTX-4000-SFF-ADA-20GB",
        device_ids=(0x27B0,),
        memory_gb=20,
        bandwidth_gb_s=280,
        aliases=("NVIDIA RTX 4000 SFF Ada Generation",),
    ),
)
MODELS: tuple[str, ...] = tuple(spec.model for spec in SPECS)
_BY_MODEL = {spec.model: spec for spec in SPECS}
_BY_DEVICE = {device: spec for spec in SPECS for device in spec.device_ids}


def _normalised(name: str) -> str:
    # "NVIDIA A100-SXM4-80GB" and "a100 sxm4 80gb" are one name; "NVIDIA"/"Tesla" are brand noise.
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("nvidia", "").replace("tesla", ""))


_BY_ALIAS: dict[str, GpuSpec] = {}
for _spec in SPECS:
    for _alias in (_spec.model, *_spec.aliases):
        assert _BY_ALIAS.setdefault(_normalised(_alias), _spec) is _spec, f"two GPUs share the name {_alias!r}"
assert len(_BY_DEVICE) == sum(len(spec.device_ids) for spec in SPECS), "two GPUs share a device id"


def by_model(model: object) -> GpuSpec | None:
    return _BY_MODEL.get(model) if isinstance(model, str) else None


def by_device_id(device_id: int) -> GpuSpec | None:
    return _BY_DEVICE.get(device_id)


def by_name(name: str) -> GpuSpec | None:
    """The GPU a tool's printed name denotes, or None if it is not one we know exactly."""
    return _BY_ALIAS.get(_normalised(name))
