"""GPUs: which ones this machine has, how students are packed onto them, what a student process sees.

The trusted side never imports torch for this: ``nvidia-smi`` names the GPUs, and the driver's
``/proc/driver/nvidia/gpus/*/information`` maps each to its device node. A student process gets
one slot: ``CUDA_VISIBLE_DEVICES`` set to its GPU's UUID, only that GPU's ``/dev/nvidiaN`` (and the
control nodes) bound into the sandbox, and a memory cap that ``inside/gpucap.py`` applies with
``torch.cuda.set_per_process_memory_fraction``. A process without a slot sees no GPU at all
(``CUDA_VISIBLE_DEVICES=""``, no device nodes): the clean room always measures on the CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEVICE_CHOICES = ("auto", "cpu", "cuda")
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
GiB = 1 << 30
MEMORY_PER_JOB_FLOOR = 4 * GiB  # a default packing never gives a student less than this
CUDA_OOM = ("CUDA out of memory", "CUDA error: out of memory", "HIP out of memory")


class DeviceUnavailable(RuntimeError):
    """``--device cuda`` on a machine where no GPU is visible."""


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_bytes: int
    driver: str
    minor: int  # /dev/nvidia<minor>

    @property
    def node(self) -> str:
        return f"/dev/nvidia{self.minor}"


@dataclass(frozen=True)
class GpuSlot:
    """One student process's share of one GPU."""

    gpu: Gpu
    memory_fraction: float

    @property
    def memory_cap_bytes(self) -> int:
        return int(self.gpu.memory_bytes * self.memory_fraction)

    def describe(self) -> str:
        return (f"GPU {self.gpu.index} ({self.gpu.name}, driver {self.gpu.driver}), "
                f"capped at {self.memory_cap_bytes / GiB:.1f} GiB")


@dataclass(frozen=True)
class DevicePlan:
    """Where students run: ``slots`` holds one entry per concurrent student (None: the CPU)."""

    device: str  # "cpu" or "cuda"
    gpus: tuple[Gpu, ...] = ()
    jobs_per_gpu: int = 0
    note: str = ""  # said once to the user, e.g. why auto chose the CPU

    def gpu_slots(self) -> list[GpuSlot]:
        """``jobs_per_gpu`` shares of every GPU, interleaved (GPU 0, 1, 0, 1, ...): a prefix spreads over them."""
        if self.device == "cpu":
            return []
        fraction = round(0.95 / self.jobs_per_gpu, 4)  # a margin for the CUDA contexts themselves
        return [GpuSlot(gpu, fraction) for _ in range(self.jobs_per_gpu) for gpu in self.gpus]

    def describe(self) -> str:
        if self.device == "cpu":
            return "cpu"
        names = ", ".join(f"{g.index}: {g.name}" for g in self.gpus)
        return f"cuda ({len(self.gpus)} GPU(s): {names}; {self.jobs_per_gpu} student(s) per GPU)"


def _minor_numbers() -> dict[str, int]:
    """PCI bus id (lower case, as nvidia-smi prints it) -> device minor number, from the driver's /proc files."""
    minors = {}
    for info in Path("/proc/driver/nvidia/gpus").glob("*/information"):
        try:
            found = re.search(r"Device Minor:\s*(\d+)", info.read_text())
        except OSError:
            continue
        if found:
            minors[info.parent.name.lower()] = int(found.group(1))
    return minors


def parse_smi(text: str, minors: dict[str, int]) -> list[Gpu]:
    """Rows of ``nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version,pci.bus_id
    --format=csv,noheader,nounits``; ``minors`` maps PCI bus ids to device minor numbers."""
    gpus = []
    for row in text.strip().splitlines():
        fields = [f.strip() for f in row.split(",")]
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        index, uuid, name, memory_mib, driver, bus = fields
        bus_id = bus.lower()
        minor = minors.get(bus_id, minors.get(bus_id.removeprefix("0000"), int(index)))
        memory = int(float(memory_mib)) << 20 if re.fullmatch(r"[\d.]+", memory_mib) else 0
        gpus.append(Gpu(int(index), uuid, name, memory, driver, minor))
    return gpus


@cache
def visible_gpus() -> tuple[Gpu, ...]:
    """The GPUs this process may hand out (honours an outer ``CUDA_VISIBLE_DEVICES``); () without a driver."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    try:
        done = subprocess.run([tool, "--query-gpu=index,uuid,name,memory.total,driver_version,pci.bus_id",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    gpus = parse_smi(done.stdout, _minor_numbers()) if done.returncode == 0 else []
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:  # a scheduler (Slurm, Ray) gave this process some GPUs: use only those
        allowed = {part.strip() for part in outer.split(",") if part.strip()}
        gpus = [g for g in gpus if str(g.index) in allowed or g.uuid in allowed]
    return tuple(gpus)


def default_jobs_per_gpu(gpu: Gpu, cpu_cores: int, gpu_count: int) -> int:
    """Students sharing one GPU: as many as its memory allows at 4 GiB each, and no more than its CPU cores."""
    by_memory = max(1, gpu.memory_bytes // MEMORY_PER_JOB_FLOOR)
    by_cores = max(1, cpu_cores // max(1, gpu_count))
    return int(min(by_memory, by_cores))


def plan_devices(device: str, jobs_per_gpu: int | None = None, *, gpus: tuple[Gpu, ...] | None = None,
                 cpu_cores: int | None = None) -> DevicePlan:
    """``--device`` and ``--jobs-per-gpu`` resolved against this machine."""
    if device not in DEVICE_CHOICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICE_CHOICES)}, not {device!r}")
    found = visible_gpus() if gpus is None else gpus
    if device == "cpu":
        return DevicePlan("cpu")
    if not found:
        if device == "cuda":
            raise DeviceUnavailable("--device cuda: no GPU is visible here (nvidia-smi found none); "
                                    "use --device cpu or auto, or run on a machine with an NVIDIA GPU and driver")
        return DevicePlan("cpu", note="device: no GPU visible, students run on the CPU")
    cores = cpu_cores or os.cpu_count() or 1
    per_gpu = jobs_per_gpu or min(default_jobs_per_gpu(g, cores, len(found)) for g in found)
    return DevicePlan("cuda", tuple(found), per_gpu)


def gpu_env(slot: GpuSlot | None) -> dict[str, str]:
    """What a student (or clean-room) process is told about GPUs: exactly its slot's GPU, or none."""
    if slot is None:
        return {"CUDA_VISIBLE_DEVICES": ""}
    return {"CUDA_VISIBLE_DEVICES": slot.gpu.uuid, "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "GRADER_GPU_MEMORY_FRACTION": f"{slot.memory_fraction:.4f}",
            "GRADER_GPU_MEMORY_BYTES": str(slot.memory_cap_bytes)}


def device_nodes(env: dict[str, str]) -> list[str]:
    """The /dev/nvidia* nodes to bind for a process with this environment: its one GPU, or none."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:  # not planned (a caller outside the pipeline): what the machine has
        return [*CONTROL_NODES, *(g.node for g in visible_gpus())]
    if not visible:
        return []
    return [*CONTROL_NODES, *(g.node for g in visible_gpus() if g.uuid == visible or str(g.index) == visible)]


def is_gpu_memory_error(text: str) -> bool:
    return any(marker in text for marker in CUDA_OOM)
