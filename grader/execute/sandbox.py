"""Where student code runs: the isolation around each untrusted process.

Every process that runs student code (the notebook kernel, the module runner, the clean room)
is started through ``Sandbox.wrap``. Three sandboxes, from strongest to weakest:

* ``grader.execute.bubblewrap.Bubblewrap``: namespaces (no network, own PIDs), a minimal read-only
  filesystem, a fresh unprivileged uid, limits;
* ``grader.execute.uid.UidSandbox``: for containers where namespaces are refused (Gradescope's):
  a fresh unprivileged uid that cannot read the labels, the outputs or other students' work, and
  limits; it shares the machine's network and its world-readable files;
* ``Unsandboxed``: the limits it can set (address space, file size) and nothing else; the student's
  code runs as the grader's own user and can read and write what the grader can.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grader.execute.limits import Limits, Mount

if TYPE_CHECKING:
    from grader.execute.cgroups import Cgroup


@dataclass
class Launch:
    """What to start: the argv and environment after wrapping, the cgroup it runs in, what to remove after."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cgroup: Cgroup | None = None
    cleanup: list[Path] = field(default_factory=list)

    def finish(self) -> str | None:
        """Call once the process has ended: which cgroup limit it hit, if any; removes the group."""
        for path in self.cleanup:
            remove_tree(path)
        if self.cgroup is None:
            return None
        hit = "memory" if self.cgroup.oom_killed() else ("processes" if self.cgroup.pids_exhausted() else None)
        self.cgroup.remove()
        return hit


class Sandbox(ABC):
    name: str
    trusts_student: bool = False  # True: the student's code can read and write what the grader can

    def scratch(self, wanted: Path) -> Path:
        """Where this sandbox's runs live: ``wanted``, unless the sandbox needs another place."""
        return wanted

    @abstractmethod
    def prepare(self, mounts: list[Mount]) -> None:
        """Make the mount targets exist before the process starts."""

    @abstractmethod
    def wrap(self, argv: list[str], *, cwd: Path, mounts: list[Mount], env: dict[str, str], limits: Limits,
             network: bool = False) -> Launch:
        """The command that runs ``argv`` inside this sandbox."""


@functools.cache
def die_with_parent_prefix() -> list[str]:
    """A prefix that SIGKILLs the process when the grader process that started it dies (a parent-death signal).

    Bubblewrap has ``--die-with-parent``; the other sandboxes use this, so that no student process
    (started in its own session) outlives a grader killed with SIGKILL: a kill of the batch's process
    group, or ``ray.cancel(force=True)`` of a Ray task. Empty where setpriv lacks ``--pdeathsig``
    (util-linux before 2.33).
    """
    tool = shutil.which("setpriv")
    if tool is None:
        return []
    try:
        usage = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [tool, "--pdeathsig", "KILL", "--"] if "--pdeathsig" in usage else []


def prlimit_prefix(limits: Limits, processes: bool) -> list[str]:
    tool = shutil.which("prlimit")
    if tool is None:
        return []
    prefix = [tool, f"--as={limits.memory_bytes}", f"--fsize={limits.max_file_bytes}", "--core=0"]
    if processes:
        prefix.append(f"--nproc={limits.max_processes}")
    return [*prefix, "--"]


def short_temp_dir(owner: int | None = None) -> Path:
    """A private temporary directory with a short path, for TMPDIR.

    Short, because multiprocessing puts Unix sockets there (DataLoader workers pass tensors through
    one) and a socket path is limited to 107 bytes: under a deep work dir the workers' batches
    were lost and the notebook hung.
    """
    path = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def remove_tree(path: Path) -> None:
    """Remove a directory a student process may have filled with read-only folders; never follows links."""
    with contextlib.suppress(OSError):
        if path.is_symlink() or path.is_file():
            path.unlink()
            return
        for root, dirs, _ in os.walk(path):
            for name in dirs:
                with contextlib.suppress(OSError):
                    if not os.path.islink(os.path.join(root, name)):
                        os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(path, ignore_errors=True)


class Unsandboxed(Sandbox):
    """Runs student code as the grader's own user, limited only by rlimits and timeouts.

    For a student checking their own notebook, or where no sandbox can run: read-only mounts
    become symlinks, so nothing stops the code from reading the rest of the filesystem (the
    held-out labels included) or writing into the output folder. Reports say ``sandbox: none``.
    """

    name = "none"
    trusts_student = True

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
        # count the grader and its other workers, so it is only applied under another uid.
        from grader.execute.cgroups import Cgroup

        cgroup = Cgroup.create(limits)
        prefix = cgroup.enter_command() if cgroup else []
        tmp = short_temp_dir()
        return Launch(argv=[*prefix, *prlimit_prefix(limits, processes=False), *die_with_parent_prefix(), *argv],
                      env={**env, "TMPDIR": str(tmp)}, cgroup=cgroup, cleanup=[tmp])


def base_env(home: Path, threads: int) -> dict[str, str]:
    """A clean environment for a student process: nothing of the grader's own is inherited.

    TMPDIR is set by each sandbox (a short private directory).
    """
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
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
    for directory in ("mpl", "cache", "torch"):
        (home / ".grader" / directory).mkdir(parents=True, exist_ok=True)
    return env
