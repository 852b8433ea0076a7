"""The uid sandbox: a fresh unprivileged user for each student process, where namespaces are refused.

Docker's default profile (Gradescope's autograder container among them) refuses the mount and
user namespaces bubblewrap needs, but a root process there can still change its uid. Each
student process then runs as a uid of its own, with no capabilities and ``no_new_privs``, under
the same limits (address space, file size, processes, a cgroup where one can be made).

What it keeps from the student: the held-out labels (the grader's cache keeps them in a
root-only directory), the output folder, the grader's private files of each run, other
students' work dirs (each 0700 and owned by that run's uid), and signals to the grader. What it
does not: the network, and files on the machine that are world-readable (put the rubric and the
reference solutions in a root-only folder, e.g. ``chmod 700 /autograder/source``).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from grader.execute.limits import Limits, Mount
from grader.execute.sandbox import (
    Launch,
    Sandbox,
    Unsandboxed,
    die_with_parent_prefix,
    prlimit_prefix,
    remove_tree,
    short_temp_dir,
)

UID_RANGE = (200_000, 900_000)  # a fresh uid per process: RLIMIT_NPROC counts per uid


def fresh_uid() -> int:
    return secrets.randbelow(UID_RANGE[1] - UID_RANGE[0]) + UID_RANGE[0]


def hand_over(work: Path, uid: int, mode: int | None = None) -> None:
    """Give ``uid`` a directory tree the grader created (the grader, as root, can still read everything).

    Links are never followed; ``mode`` (e.g. 0o700) is set on the top directory.
    """
    for root, dirs, files in os.walk(work):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chown(path, uid, uid)
    os.chown(work, uid, uid)
    if mode is not None:
        os.chmod(work, mode)


def drop_privileges(uid: int) -> list[str]:
    """A prefix that runs the rest of the argv as ``uid``, with no capabilities and no way to regain any."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--"]


def probe(python: Path | None = None) -> str | None:
    """None when the uid sandbox can run ``python`` [default: the grading environment's] here, else why not."""
    if os.geteuid() != 0:
        return "the uid sandbox changes to other users, which needs root (run the grader as root, as in a container)"
    from shutil import which

    if which("setpriv") is None:
        return "the 'setpriv' program (util-linux) is not installed"
    if python is None:  # the grading environment: its interpreter, its standard library and its packages
        return unreachable_python(Path(sys.executable), Path(sys.base_prefix), Path(sys.prefix))
    return unreachable_python(python)


def unreachable_python(python: Path, *prefixes: Path) -> str | None:
    """Why another user could not run ``python`` and read ``prefixes`` (e.g. a pyenv under a 0700 /root), or None."""
    for needed in (python.resolve(), *prefixes):
        if not reachable(needed):
            blocked = next((str(f) for f in reversed(needed.resolve().parents)
                            if not os.stat(f).st_mode & stat.S_IXOTH), str(needed))
            return (f"the grading environment's Python ({needed}) cannot be reached by other users ({blocked} is "
                    "not searchable by them); the uid sandbox runs students as other users: put the Python "
                    "and the venv where any user can read them (e.g. /opt or /usr/local), or 'chmod o+x' the "
                    "folders above them")
    return None


def reachable(path: Path) -> bool:
    """Can any user reach ``path`` (every folder above it searchable by others, and it readable)?"""
    path = path.resolve()
    for folder in [*reversed(path.parents)]:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & stat.S_IROTH and (not stat.S_ISDIR(mode) or mode & stat.S_IXOTH))


class UidSandbox(Sandbox):
    name = "uid"

    def __init__(self) -> None:
        self._shared: dict[Path, Path] = {}

    def scratch(self, wanted: Path) -> Path:
        """Where runs live: ``wanted`` if any user can reach it, else a fresh folder under /tmp that can be."""
        wanted.mkdir(parents=True, exist_ok=True)
        if reachable(wanted):
            return wanted
        fresh = Path(tempfile.mkdtemp(prefix="grader-uid-", dir="/tmp"))
        os.chmod(fresh, 0o711)  # searchable, not listable: each run's folder is 0700 and its own uid's
        return fresh

    def _shared_copy(self, source: Path) -> Path:
        """A read-only copy of ``source`` that the student's uid can read (e.g. data under root's 0700 home)."""
        if source not in self._shared:
            target = Path(tempfile.mkdtemp(prefix="grader-uid-data-", dir="/tmp"))
            os.chmod(target, 0o755)
            copy = target / source.name
            (shutil.copytree if source.is_dir() else shutil.copyfile)(source, copy)
            for root, dirs, files in os.walk(copy):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o555)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o444)
            self._shared[source] = copy
            atexit.register(remove_tree, target)
        return self._shared[source]

    def prepare(self, mounts: list[Mount]) -> None:
        # no mount namespace: read-only mounts become links, to copies where the student's uid cannot reach them
        linked = [mount if mount.writable or mount.target == mount.source or reachable(mount.source)
                  else Mount(self._shared_copy(mount.source), mount.target) for mount in mounts]
        Unsandboxed().prepare(linked)

    def wrap(self, argv: list[str], *, cwd: Path, mounts: list[Mount], env: dict[str, str], limits: Limits,
             network: bool = False) -> Launch:
        from grader.execute.cgroups import Cgroup

        uid = fresh_uid()
        for mount in [*mounts, Mount(cwd, cwd, writable=True)]:
            if mount.writable:
                hand_over(mount.source, uid, mode=0o700)
        tmp = short_temp_dir(owner=uid)
        os.chmod(tmp, 0o700)
        cgroup = Cgroup.create(limits)
        prefix = cgroup.enter_command() if cgroup else []
        return Launch(argv=[*prefix, *prlimit_prefix(limits, processes=True), *drop_privileges(uid),
                            *die_with_parent_prefix(), *argv],  # after the uid change, which would clear it
                      env={**env, "TMPDIR": str(tmp)}, cgroup=cgroup, cleanup=[tmp])
