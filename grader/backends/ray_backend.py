"""``grader grade --backend ray``: each submission's execute+measure as one Ray task on a cluster's nodes.

The driver (the ``grader grade`` process) does what it does with the local pool, except where the
student's code runs::

    driver: intake, reuse stored evidence -> one Ray task per remaining student -> write what comes
            back into OUT atomically (weights, then evidence.json) -> score and render as today
    node:   check the grader version, the sandbox and the data profile (provisioned there when its
            checksum is missing) -> run and measure the submission in the sandbox, in node-local
            scratch -> return the evidence as JSON text and the kept weights as bytes

The driver never imports student code and never unpickles anything a student process wrote: a task
returns only what the grader's own code on the node produced (JSON text and safetensors bytes), and
the driver validates the evidence against its schema before writing it.

Failures: a student's failure is a result, never a retry (``max_retries=0``); a task whose worker or
node was lost is retried once and the evidence says so; a node that cannot grade (no bubblewrap, no
user namespaces, no data, another grader version) stops the batch with an error naming the node and
the fix, and the students already graded are kept. Ctrl-C cancels every task with
``ray.cancel(force=True)``: the task's worker process is killed, and every process it started dies
with it (bubblewrap's ``--die-with-parent``; the other sandboxes' parent-death signal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import platform
import re
import socket
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grader import __version__
from grader.backends import ClusterError, ClusterOptions, ray_missing
from grader.batch import BatchResult, Outcome, collect_one, failure_evidence, publish_weights, start_batch
from grader.collect import Settings
from grader.evidence import Evidence, write_evidence
from grader.execute.sandbox import remove_tree
from grader.execute.workdir import install_runtime
from grader.fsutil import atomic_write_bytes
from grader.intake import Submission
from grader.outdir import OutDir

# the errors of a task whose worker process or node went away (not the student's doing): retried once
LOST = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OwnerDiedError", "OutOfMemoryError",
        "ObjectLostError", "RaySystemError")
MODEL_NAME = re.compile(r"[\w][\w.-]{0,150}\.safetensors")
CONNECT_TIMEOUT_S = 5.0
USERNS_HINT = ("bubblewrap also needs unprivileged user namespaces on that node (Debian/Ubuntu: sysctl "
               "kernel.unprivileged_userns_clone=1 and kernel.apparmor_restrict_unprivileged_userns=0; RHEL: "
               "user.max_user_namespaces > 0)")


class NodeProblem(RuntimeError):
    """This node cannot grade; the message says why and what to do."""


# --------------------------------------------------------------------------- on the node


def node_name() -> str:
    """The node as an operator finds it: host name and the IP Ray knows it by."""
    host = platform.node() or "?"
    with contextlib.suppress(Exception):
        import ray

        return f"{host} ({ray.util.get_node_ip_address()})"
    return host


@contextlib.contextmanager
def _node_lock(cache_dir: Path | None) -> Iterator[None]:
    """One provisioning at a time on this node (tasks start together and would race to build the data)."""
    from grader.data import default_cache_dir

    root = (cache_dir or default_cache_dir()).resolve() / "mnist"
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".provision.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _node_dataset(job: dict[str, Any]) -> Any:
    """The job's data profile on this node, provisioned when missing; it must be the driver's, byte for byte."""
    from grader.data import DataError, provision

    settings: Settings = job["settings"]
    profile = settings.dataset.profile
    cache_dir = Path(job["cache_dir"]) if job["cache_dir"] else None
    mnist_dir = Path(job["mnist_dir"]) if job["mnist_dir"] else None
    try:
        with _node_lock(cache_dir):
            dataset = provision(profile, cache_dir, mnist_dir)
    except (DataError, OSError) as error:
        where = f" from {mnist_dir}" if mnist_dir else ""
        raise NodeProblem(f"data profile {profile!r} is missing and could not be provisioned{where}: {error}. "
                          f"Provision it there (grader data --profile {profile}"
                          f"{' --mnist-dir ' + str(mnist_dir) if mnist_dir else ''}), or give every node the "
                          "same --cache-dir on a shared filesystem") from None
    if dataset.manifest["sha256"] != settings.dataset.manifest["sha256"]:
        raise NodeProblem(f"its data profile {profile!r} ({dataset.root}) differs from the driver's: the checksums "
                          "do not match. Use the same grader version and MNIST files on every node, or a shared "
                          "--cache-dir")
    return dataset


def _node_sandbox(mode: str) -> Any:
    from grader.execute.select import SandboxUnavailable, choose_sandbox

    try:
        return choose_sandbox(mode)
    except SandboxUnavailable as error:
        hint = f" {USERNS_HINT}." if mode == "bubblewrap" else ""
        raise NodeProblem(f"{error}{hint}") from None


def _node_gpu(fraction: float) -> Any:
    """This task's share of the GPU Ray gave it (``CUDA_VISIBLE_DEVICES`` is set per task), or None."""
    if fraction <= 0:
        return None
    from grader.execute import gpu

    gpu.visible_gpus.cache_clear()  # a reused worker process: the GPU Ray gives it changes from task to task
    found = gpu.visible_gpus()
    if not found:
        raise NodeProblem("Ray gave this task a GPU but nvidia-smi sees none here: install the NVIDIA driver on "
                          "the node, or grade without --ray-gpus")
    return gpu.GpuSlot(found[0], round(0.95 * min(1.0, fraction), 4))


def _unpack(submission: Submission, files: dict[str, bytes], root: Path) -> Submission:
    """The submission's files written under ``root`` on this node, and the submission pointing there."""
    for relative, data in files.items():
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise ValueError(f"{relative!r} is not a path inside the submission")
        atomic_write_bytes(root / relative, data)

    def moved(path: Path) -> Path:
        return root / path.relative_to(submission.root)

    return dataclasses.replace(
        submission, root=root, files=[dataclasses.replace(f, path=moved(f.path)) for f in submission.files],
        support=[moved(path) for path in submission.support])


def _scratch_prefix() -> str:
    host = re.sub(r"[^\w.-]", "_", platform.node())[:40]
    return f"grader-ray-{host}-"


def sweep_scratch(base: Path) -> None:
    """Remove the scratch of this node's tasks whose worker is gone (``ray.cancel(force=True)`` kills it mid-task).

    A folder is named ``grader-ray-<host>-<pid>-*``: only this host's, and only where that process has ended.
    """
    for folder in base.glob(f"{_scratch_prefix()}*"):
        pid = folder.name.removeprefix(_scratch_prefix()).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(folder)


def grade_on_node(job: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: run and measure one submission here; return the evidence (JSON text) and the kept weights.

    Returns ``{"node", "node_error"}`` when this node cannot grade at all. Never raises for the student.
    """
    node = node_name()
    if job["version"] != __version__:
        return {"node": node, "node_error": f"node {node} has grader {__version__} ({Path(__file__).parents[1]}) "
                                           f"and the driver grader {job['version']}: install the same version in "
                                           "the same venv path on every node"}
    try:
        sandbox = _node_sandbox(job["sandbox"])
        dataset = _node_dataset(job)
        gpu = _node_gpu(job["gpus"])
    except NodeProblem as problem:
        return {"node": node, "node_error": f"node {node}: {problem}"}
    base = Path(os.environ.get("GRADER_SCRATCH_DIR") or tempfile.gettempdir())
    sweep_scratch(base)
    wanted = Path(tempfile.mkdtemp(prefix=f"{_scratch_prefix()}{os.getpid()}-", dir=base))
    scratch = sandbox.scratch(wanted)  # the uid sandbox may need a place every uid can reach
    try:
        submission = _unpack(job["submission"], job["files"], scratch / "submission")
        settings = dataclasses.replace(job["settings"], dataset=dataset, sandbox=sandbox, work_root=scratch / "runs",
                                       runtime=install_runtime(scratch / "runtime"), gpu=gpu)
        out = OutDir(scratch / "out")
        collect_one(submission, settings, out)
        folder = out.student(submission.student)
        models = {path.name: path.read_bytes() for path in sorted(folder.models.glob("*.safetensors"))
                  if path.is_file() and not path.is_symlink()} if folder.models.is_dir() else {}
        return {"node": node, "evidence": folder.evidence.read_text(encoding="utf-8"), "models": models}
    finally:
        remove_tree(scratch)
        remove_tree(wanted)


# --------------------------------------------------------------------------- on the driver


def _reachable(address: str) -> None:
    """A quick TCP check of HOST:PORT (Ray's own connect retries for a minute before it gives up)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray-address {address!r} is not auto, local, ray://HOST:PORT or HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}. Start it "
                           "(`ray start --head` on the head node, `ray start --address HEAD:6379` on the others) "
                           "or check the address (ray://HEAD:10001 for Ray Client, HEAD:6379 from a node of "
                           "the cluster)") from None


def connect(address: str) -> Any:
    """``ray`` connected to the cluster at ``address`` (auto, local, ray://HOST:PORT or HOST:PORT)."""
    missing = ray_missing()
    if missing:
        raise ClusterError(missing)
    import ray

    if address == "auto" and os.environ.get("RAY_ADDRESS"):
        address = os.environ["RAY_ADDRESS"]
    if address not in ("auto", "local"):
        _reachable(address)
    try:
        if address == "local":  # a private one-machine cluster, for trying the backend out
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)  # address="local": a new one even where a cluster runs
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as error:  # ConnectionError for auto without a cluster; others from a half-reachable one
        first = (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {first}. Start one with "
                           "`ray start --head` (then --ray-address auto on that machine), pass "
                           "--ray-address ray://HEAD:10001, or --ray-address local for a one-machine Ray. A cluster "
                           "with token authentication (the default of `ray start` in recent Ray) also needs "
                           "RAY_AUTH_MODE=token and its token here (~/.ray/auth_token or $RAY_AUTH_TOKEN): "
                           "see docs/cluster.md") from None
    return ray


def _check_capacity(ray: Any, cpus: int, gpus: float) -> None:
    """A task the cluster can never schedule would wait forever: say so instead."""
    resources = ray.cluster_resources()
    if resources.get("CPU", 0) < cpus:
        raise ClusterError(f"the Ray cluster has {resources.get('CPU', 0):g} CPUs; each task asks for {cpus} "
                           "(--threads): lower --threads or add nodes")
    if gpus > 0 and resources.get("GPU", 0) < gpus:
        raise ClusterError(f"the Ray cluster has {resources.get('GPU', 0):g} GPUs; each task asks for {gpus:g} "
                           "(--ray-gpus): add GPU nodes or grade without --ray-gpus")


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    return tuple(getattr(ray.exceptions, name) for name in LOST if hasattr(ray.exceptions, name))


def _files_of(submission: Submission) -> dict[str, bytes]:
    return {path.relative_to(submission.root).as_posix(): path.read_bytes() for path in submission.copied}


def store_reply(reply: dict[str, Any], submission: Submission, settings: Settings, out: OutDir,
                notes: list[str]) -> Outcome:
    """Write a task's weights, then its evidence (last: it marks the student done), atomically, into OUT."""
    folder = out.student(submission.student)
    try:
        evidence = Evidence.model_validate_json(reply["evidence"])
        if evidence.student != submission.student or evidence.submission_sha256 != submission.sha256:
            raise ValueError(f"the evidence is of {evidence.student!r}, not of this submission")
    except (KeyError, TypeError, ValueError) as error:
        evidence = failure_evidence(submission, settings, f"the evidence from node {reply.get('node')} could not be "
                                                          f"read: {str(error).splitlines()[0][:300]}")
        write_evidence(evidence, folder.evidence)
        return Outcome(submission.student, "failed", evidence, "unreadable evidence")
    evidence.problems += notes
    staged = folder.root.parent / f".{folder.root.name}.models.new"
    remove_tree(staged)
    try:
        for name, data in dict(reply.get("models") or {}).items():
            if MODEL_NAME.fullmatch(name) and isinstance(data, bytes):
                atomic_write_bytes(staged / name, data)
        publish_weights(staged, folder.models)
    except OSError as error:
        evidence.problems.append(f"the trained weights could not be kept: {error.strerror}")
    finally:
        remove_tree(staged)
    write_evidence(evidence, folder.evidence)
    return Outcome(submission.student, "graded", evidence)


def default_gpus(cluster: ClusterOptions, jobs_per_gpu: int | None) -> float:
    """GPUs per task: --ray-gpus, else one GPU shared by --jobs-per-gpu students, else none."""
    if cluster.ray_gpus is not None:
        return cluster.ray_gpus
    return round(1 / jobs_per_gpu, 4) if jobs_per_gpu else 0.0


def run_batch_ray(submissions: list[Submission], settings: Settings, out: OutDir, *, cluster: ClusterOptions,
                  sandbox_mode: str, cache_dir: Path | None, mnist_dir: Path | None, force: bool,
                  on_done: Callable[[Outcome], None], max_in_flight: int | None = None,
                  jobs_per_gpu: int | None = None) -> BatchResult:
    """``grader.batch.run_batch`` on a Ray cluster: the same reuse, the same evidence, the same callbacks."""
    result, todo = start_batch(submissions, settings, out, force=force, on_done=on_done)
    finish = result.finish
    if not todo:
        return result
    gpus = default_gpus(cluster, jobs_per_gpu)
    ray = connect(cluster.ray_address)
    running: dict[Any, tuple[Submission, list[str]]] = {}
    try:
        _check_capacity(ray, settings.threads, gpus)
        # enough tasks to keep every CPU busy, without every submission's files in the object store at once
        limit = max_in_flight or max(1, int(2 * ray.cluster_resources().get("CPU", 1) // settings.threads))
        task = ray.remote(grade_on_node)
        per_task = {"num_cpus": settings.threads, "num_gpus": gpus, "max_retries": 0, "retry_exceptions": False}
        lost = _lost_errors(ray)
        common = {"settings": settings, "sandbox": sandbox_mode, "version": __version__, "gpus": gpus,
                  "cache_dir": str(cache_dir) if cache_dir else None,
                  "mnist_dir": str(mnist_dir) if mnist_dir else None}
        waiting: deque[tuple[Submission, list[str]]] = deque((s, []) for s in todo)
        while waiting or running:
            while waiting and len(running) < limit:
                submission, notes = waiting.popleft()
                job = {**common, "submission": submission, "files": _files_of(submission)}
                ref = task.options(name=f"grade {submission.student}", **per_task).remote(job)
                running[ref] = (submission, notes)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                submission, notes = running.pop(ref)
                try:
                    reply = ray.get(ref)
                except lost as error:
                    first = (str(error).splitlines() or [""])[0][:200]
                    if not notes:  # the first loss: once more, elsewhere if the node is gone
                        waiting.appendleft((submission, [f"graded on a second attempt: the first attempt's Ray "
                                                         f"worker or node was lost ({type(error).__name__}: {first})"]))
                        continue
                    evidence = failure_evidence(submission, settings, f"the Ray worker or node grading this "
                                                f"submission was lost twice ({type(error).__name__}: {first})")
                    write_evidence(evidence, out.student(submission.student).evidence)
                    finish(Outcome(submission.student, "failed", evidence, "Ray worker lost"))
                    continue
                except ray.exceptions.RayTaskError as error:  # the grader's own code failed on the node
                    detail = str(error)[-2000:]
                    evidence = failure_evidence(submission, settings, f"internal grader error on a Ray node: {detail}")
                    write_evidence(evidence, out.student(submission.student).evidence)
                    finish(Outcome(submission.student, "failed", evidence, "internal error"))
                    continue
                if reply.get("node_error"):
                    raise ClusterError(f"{reply['node_error']}. Students graded so far are kept in {out.root}; "
                                       "fix the node and run the same command again")
                finish(store_reply(reply, submission, settings, out, notes))
    except BaseException:
        for ref in running:  # Ctrl-C, a node that cannot grade, a driver error: stop every task and its processes
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
    return result

