"""A real memory and process cap for one sandboxed process tree, where cgroups are writable.

RLIMIT_AS caps each process's address space; a cgroup caps the whole tree's resident memory and
its number of tasks, whatever uid they run as. Tried in order: cgroup v2, then v1 (memory and
pids hierarchies). Where neither can be created (no root, read-only /sys/fs/cgroup), the
sandbox falls back to rlimits alone and says so in the evidence.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from grader.execute.limits import Limits

ROOT = Path("/sys/fs/cgroup")
PREFIX = "grader-"


@dataclass
class Cgroup:
    version: int
    paths: list[Path]  # v2: one directory; v1: the memory and the pids directories

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"  # the creator's pid: sweep() leaves live ones alone
        for factory in (cls._v2, cls._v1):
            try:
                group = factory(name, limits)
            except OSError:
                continue
            if group is not None:
                return group
        return None

    @classmethod
    def _v2(cls, name: str, limits: Limits) -> Cgroup | None:
        controllers = ROOT / "cgroup.controllers"
        if not controllers.is_file() or not {"memory", "pids"} <= set(controllers.read_text().split()):
            return None
        path = ROOT / name
        path.mkdir()
        try:
            (path / "memory.max").write_text(str(limits.memory_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
            (path / "pids.max").write_text(str(limits.max_processes))
        except OSError:
            path.rmdir()
            raise
        return cls(2, [path])

    @classmethod
    def _v1(cls, name: str, limits: Limits) -> Cgroup | None:
        memory, pids = ROOT / "memory" / name, ROOT / "pids" / name
        if not (ROOT / "memory" / "cgroup.procs").exists() or not (ROOT / "pids" / "cgroup.procs").exists():
            return None
        memory.mkdir()
        try:
            pids.mkdir()
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            (pids / "pids.max").write_text(str(limits.max_processes))
        except OSError:
            for path in (pids, memory):
                with contextlib.suppress(OSError):
                    path.rmdir()
            raise
        return cls(1, [memory, pids])

    @classmethod
    def probe(cls) -> str:
        """How memory will be capped here: 'cgroup v2', 'cgroup v1' or 'address space (rlimit) only'."""
        group = cls.create(Limits())
        if group is None:
            return "address space (rlimit) only"
        group.remove()
        return f"cgroup v{group.version} (memory and processes) + address space (rlimit)"

    @staticmethod
    def sweep() -> None:
        """Remove empty groups left by a grader process that was killed.

        A group whose creator still runs is left alone even when empty: it may be between its
        creation and the start of the process it is for (another worker's, another batch's).
        A non-empty group is in use: rmdir fails.
        """
        for parent in (ROOT, ROOT / "memory", ROOT / "pids"):
            for path in parent.glob(PREFIX + "*") if parent.is_dir() else []:
                if _creator_alive(path.name):
                    continue
                with contextlib.suppress(OSError):
                    path.rmdir()

    def enter_command(self) -> list[str]:
        """A prefix that moves the process into the group, then execs the rest of the argv."""
        joins = " && ".join(f"echo $$ > {path / 'cgroup.procs'}" for path in self.paths)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "grader-cgroup"]

    def _read(self, name: str) -> str:
        for path in self.paths:
            with contextlib.suppress(OSError):
                return (path / name).read_text()
        return ""

    def oom_killed(self) -> bool:
        text = self._read("memory.events") if self.version == 2 else self._read("memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def pids_exhausted(self) -> bool:
        text = self._read("pids.events")
        return any(line.startswith("max ") and line.split()[1] != "0" for line in text.splitlines())

    def _pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.paths:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        return sorted(found)

    def remove(self) -> None:
        """Kill whatever is left in the group and delete it."""
        for _ in range(20):
            pids = self._pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for path in self.paths:
            with contextlib.suppress(OSError):
                path.rmdir()


def _creator_alive(name: str) -> bool:
    """Is the process that created group ``name`` (``grader-<pid>-<random>``) still running?"""
    pid = name.removeprefix(PREFIX).split("-")[0]
    if not pid.isdigit():
        return False  # an older grader's name: no creator recorded
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
