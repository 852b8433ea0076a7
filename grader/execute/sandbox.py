"""Where student code runs: the resource limits and the isolation around each untrusted process.

Every process that runs student code (the notebook kernel, the module runner, the clean room)
is started through ``Sandbox.wrap``. ``Unsandboxed`` applies the limits it can (address space,
file size, processes through ``prlimit``) and nothing else; ``grader.execute.bubblewrap`` adds
namespaces and a minimal filesystem view.
"""

from __future__ import annotations

import os
import shutil
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.execute.cgroups import Cgroup

GiB = 1 << 30
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Per-process limits; the defaults fit DS5220 PS4 on full MNIST on a CPU."""

    cell_timeout_s: float = 900.0
    total_timeout_s: float = 2400.0  # per notebook or module run
    measure_timeout_s: float = 600.0  # the clean-room process
    memory_bytes: int = 12 * GiB  # address space; the CUDA build of torch maps about 4.4 GiB
    max_processes: int = 512  # threads count too (RLIMIT_NPROC counts the uid's tasks)
    max_file_bytes: int = 1 * GiB  # largest single file a student process may write
    max_output_bytes: int = 2 * MiB  # text + images kept from one notebook's outputs
    max_tmp_bytes: int = 2 * GiB  # size of the sandbox's private /tmp (RAM-backed)

    @property
    def harvest_timeout_s(self) -> float:
        """Time for the grader's own harvest cell after the notebook (saving tensors)."""
        return min(180.0, max(30.0, self.total_timeout_s / 8))


def resolve_limits(**given: float | None) -> Limits:
    """Defaults, overridden by the rubric's ``limits``, overridden by the command line (None: not given).

    Keys: cell_timeout_s, total_timeout_s, memory_gb, max_processes, max_file_mb, max_output_mb.
    """
    base = Limits()
    value = {key: v for key, v in given.items() if v is not None}
    return Limits(
        cell_timeout_s=float(value.get("cell_timeout_s", base.cell_timeout_s)),
        total_timeout_s=float(value.get("total_timeout_s", base.total_timeout_s)),
        measure_timeout_s=min(base.measure_timeout_s, max(60.0, float(value.get("total_timeout_s",
                                                                                base.total_timeout_s)) / 4)),
        memory_bytes=int(value["memory_gb"] * GiB) if "memory_gb" in value else base.memory_bytes,
        max_processes=int(value.get("max_processes", base.max_processes)),
        max_file_bytes=int(value["max_file_mb"] * MiB) if "max_file_mb" in value else base.max_file_bytes,
        max_output_bytes=int(value["max_output_mb"] * MiB) if "max_output_mb" in value else base.max_output_bytes,
    )


def describe_limits(limits: Limits, memory_cap: str) -> dict[str, float | int | str]:
    """The limits as recorded in evidence and reports."""
    return {
        "cell_timeout_s": limits.cell_timeout_s, "total_timeout_s": limits.total_timeout_s,
        "memory_gb": round(limits.memory_bytes / GiB, 2), "memory_cap": memory_cap,
        "max_processes": limits.max_processes, "max_file_mb": round(limits.max_file_bytes / MiB, 1),
        "max_output_mb": round(limits.max_output_bytes / MiB, 2), "tmp_mb": round(limits.max_tmp_bytes / MiB),
    }


@dataclass(frozen=True)
class Mount:
    """A host path made visible to the sandboxed process at ``target``."""

    source: Path
    target: Path
    writable: bool = False


@dataclass
class Launch:
    """What to start: the argv and environment after wrapping, and the cgroup it runs in."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cgroup: Cgroup | None = None

    def finish(self) -> str | None:
        """Call once the process has ended: which cgroup limit it hit, if any; removes the group."""
        if self.cgroup is None:
            return None
        hit = "memory" if self.cgroup.oom_killed() else ("processes" if self.cgroup.pids_exhausted() else None)
        self.cgroup.remove()
        return hit


class Sandbox(ABC):
    name: str

    @abstractmethod
    def prepare(self, mounts: list[Mount]) -> None:
        """Make the mount targets exist before the process starts."""

    @abstractmethod
    def wrap(self, argv: list[str], *, cwd: Path, mounts: list[Mount], env: dict[str, str], limits: Limits,
             network: bool = False) -> Launch:
        """The command that runs ``argv`` inside this sandbox."""


def prlimit_prefix(limits: Limits, processes: bool) -> list[str]:
    tool = shutil.which("prlimit")
    if tool is None:
        return []
    prefix = [tool, f"--as={limits.memory_bytes}", f"--fsize={limits.max_file_bytes}", "--core=0"]
    if processes:
        prefix.append(f"--nproc={limits.max_processes}")
    return [*prefix, "--"]


class Unsandboxed(Sandbox):
    """Runs student code as the grader's own user, limited only by rlimits and timeouts.

    For a student checking their own notebook, or where bubblewrap cannot run (macOS, some
    containers): read-only mounts become symlinks, so nothing stops the code from reading the
    rest of the filesystem. Reports say ``sandbox: none``.
    """

    name = "none"

    def prepare(self, mounts: list[Mount]) -> None:
        for mount in mounts:
            if mount.target == mount.source:
                continue
            if mount.target.is_symlink() or mount.target.exists():
                if mount.target.is_symlink() or (mount.target.is_dir() and not any(mount.target.iterdir())):
                    mount.target.unlink() if mount.target.is_symlink() else mount.target.rmdir()
                else:
                    raise FileExistsError(f"{mount.target} exists in the work dir; cannot place {mount.source} there")
            mount.target.parent.mkdir(parents=True, exist_ok=True)
            mount.target.symlink_to(mount.source, target_is_directory=mount.source.is_dir())

    def wrap(self, argv: list[str], *, cwd: Path, mounts: list[Mount], env: dict[str, str], limits: Limits,
             network: bool = False) -> Launch:
        # RLIMIT_NPROC counts every task of the uid: as the grader's own user it would also
        # count the grader and its other workers, so it is only applied inside bubblewrap.
        from grader.execute.cgroups import Cgroup

        cgroup = Cgroup.create(limits)
        prefix = cgroup.enter_command() if cgroup else []
        return Launch(argv=[*prefix, *prlimit_prefix(limits, processes=False), *argv], env=dict(env), cgroup=cgroup)


def base_env(home: Path, threads: int) -> dict[str, str]:
    """A clean environment for a student process: nothing of the grader's own is inherited."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home / ".grader" / "tmp"),
        "MPLCONFIGDIR": str(home / ".grader" / "mpl"),
        "XDG_CACHE_HOME": str(home / ".grader" / "cache"),
        "TORCH_HOME": str(home / ".grader" / "torch"),
        "OMP_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": "PASSIVE",  # spinning OpenMP threads slow a shared CPU down tenfold
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PIP_NO_INDEX": "1",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    for directory in ("tmp", "mpl", "cache", "torch"):
        (home / ".grader" / directory).mkdir(parents=True, exist_ok=True)
    return env
