"""A Jupyter kernel of the grading environment, started through the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from grader.execute.gpu import GpuSlot, gpu_env
from grader.execute.limits import Limits, Mount
from grader.execute.sandbox import Launch, Sandbox, base_env
from grader.execute.workdir import WorkDir

KERNEL_NAME = "grader-python"


def kernel_launch(work: WorkDir, runtime: Path, sandbox: Sandbox, mounts: list[Mount], limits: Limits,
                  threads: int, data_path: str = "fast", gpu: GpuSlot | None = None) -> Launch:
    """Argv and env for the kernel; the IPython startup file neutralises google.colab."""
    ipython = work.state / "ipython"  # the kernel's own profile: the student's state, not the grader's
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(runtime / "startup.py", startup / "00-grader.py")
    env = base_env(work.root, threads)
    env["IPYTHONDIR"] = str(ipython)
    env["GRADER_DATA_PATH"] = data_path  # fast: MNIST served from decoded tensors, bit-identical (fastdata.py)
    env["GRADER_RUNTIME_DIR"] = str(runtime)
    env.update(gpu_env(gpu))  # exactly one GPU share, or none
    argv = [
        sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
        "--HistoryManager.enabled=False", "--IPKernelApp.matplotlib=inline",
    ]
    return sandbox.wrap(argv, cwd=work.root, mounts=mounts, env=env, limits=limits)


class SandboxKernelManager(AsyncKernelManager):  # type: ignore[misc]
    """The connection file is made readable: the sandboxed kernel runs as another uid."""

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        os.chmod(self.connection_file, 0o644)


def kernel_manager(work: WorkDir, launch: Launch, *, ipc_dir: Path | None) -> AsyncKernelManager:
    """A kernel manager whose kernelspec is the sandboxed launch.

    With ``ipc_dir`` the kernel talks over Unix sockets there: they cross network namespaces,
    where TCP on loopback does not. (A short path: socket names are limited to 107 bytes.)
    """
    spec_root = work.kernelspecs
    spec_dir = spec_root / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": launch.argv,
        "display_name": "grader (sandboxed)",
        "language": "python",
        "interrupt_mode": "message",  # SIGINT does not reach through a new session / PID namespace
        "env": {},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    manager = SandboxKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)])
    )
    if ipc_dir is not None:
        manager.connection_file = str(ipc_dir / "connection.json")
        manager.transport = "ipc"
        manager.ip = str(ipc_dir / "k")
    else:
        manager.connection_file = str(work.private / "connection.json")
    return manager
