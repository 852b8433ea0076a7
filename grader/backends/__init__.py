"""Where submissions are executed: the local worker pool (``grader.batch``) or a Ray cluster (``ray_backend``).

Either way each submission's execute+measure runs in the chosen sandbox, and the grading process
(the driver) scores and renders from the evidence it gets back. This module is light: it never
imports Ray, which is an optional extra (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from grader.execute.sandbox import Sandbox
from grader.shard import Shard

BACKENDS = ("local", "ray")
RAY_HINT = "pip install -e '.[ray]'"


class ClusterError(RuntimeError):
    """The cluster cannot grade: Ray missing or unreachable, a node without the sandbox or the data (exit 4)."""


@dataclass(frozen=True)
class ClusterOptions:
    """``grader grade --backend/--ray-address/--ray-gpus/--shard``."""

    backend: str = "local"
    ray_address: str = "auto"
    ray_gpus: float | None = None  # GPUs per Ray task (fractional: several students per GPU)
    shard: Shard | None = None

    @property
    def remote(self) -> bool:
        """Student code runs on other machines: the driver needs no sandbox of its own."""
        return self.backend != "local"


def ray_missing() -> str | None:
    """None when Ray can be imported here, else what to do."""
    if importlib.util.find_spec("ray") is None:
        return f"--backend ray needs Ray, an optional extra of the grader: {RAY_HINT} (in the grading venv)"
    return None


def unprobed_sandbox(mode: str) -> Sandbox:
    """The sandbox named ``mode``, not checked on this machine: it runs on the cluster's nodes (each checks there)."""
    from grader.execute.sandbox import Unsandboxed

    if mode == "none":
        return Unsandboxed()
    if mode == "uid":
        from grader.execute.uid import UidSandbox

        return UidSandbox()
    from grader.execute.bubblewrap import Bubblewrap

    return Bubblewrap()
