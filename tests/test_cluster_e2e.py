"""Beyond one machine, for real: a batch killed with SIGKILL resumes; local pool, Ray and Slurm shards agree.

On the tiny class of ``tinyclass.py`` (notebooks that train for 30 steps, about 15 s each):

* a ``grader grade`` started in its own process group is SIGKILLed (the whole group) once one student
  is done and another is running: no process of it survives, and a second run grades only the
  student without finished evidence;
* the class graded with the local pool, with Ray (a local cluster this module starts with
  ``ray start --head`` on 127.0.0.1) and with two concurrent shard processes of the Slurm script
  plus its class-files step gives the same evidence (timings aside), weights and gradebook;
* Ctrl-C of a Ray batch leaves no student process on the node.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, RUBRIC
from tinyclass import MLP, SETUP, STUDENTS, TRAIN, write_class

from grader.data import DataSet
from grader.evidence import read_evidence
from grader.execute.bubblewrap import probe

pytestmark = pytest.mark.slow

SANDBOX = "bubblewrap" if probe() is None else "none"
SLOW = [SETUP, "import time\ntime.sleep(40)", MLP, TRAIN]  # still running when the fast one is done
VOLATILE = {"duration_s", "started_at"}  # differ from run to run (and node to node)


def grade_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "grader", "grade", *args, "--rubric", str(RUBRIC), "--sandbox", SANDBOX, "--no-pdf"]


# ------------------------------------------------------------------------------ processes of a batch


def _mentions(pid: int, needle: str) -> bool:
    """Whether a live process's command line, environment or working directory points at ``needle``."""
    try:
        if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
            return False  # dead, waiting for its parent to collect it
        if needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        if needle.encode() in Path(f"/proc/{pid}/environ").read_bytes():
            return True
        return os.readlink(f"/proc/{pid}/cwd").startswith(needle)
    except OSError:
        return False


def processes_of(needle: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and _mentions(int(entry), needle):
            with contextlib.suppress(OSError):
                found.append(f"{entry}: " + Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                             .decode(errors="replace")[:200])
    return found


def wait_for_no_processes(needle: str, seconds: float = 15) -> list[str]:
    deadline = time.monotonic() + seconds
    left = processes_of(needle)
    while left and time.monotonic() < deadline:
        time.sleep(0.3)
        left = processes_of(needle)
    return left


def test_a_batch_killed_with_sigkill_resumes_with_only_the_unfinished(tmp_path: Path, cache_dir: Path,
                                                                       embedded: DataSet) -> None:
    classes = write_class(tmp_path / "class", {"ann": STUDENTS["ann"], "slow": SLOW})
    out = tmp_path / "out"
    command = grade_command(str(classes), "--out", str(out), "--cache-dir", str(cache_dir), "--workers", "2")
    log = (tmp_path / "first.log").open("w")
    batch = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "ann" / "evidence.json").exists():
            assert batch.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the fast student did not finish in 4 minutes"
            time.sleep(0.2)
        running = processes_of(str(out / ".work" / "runs" / "slow"))
        assert running and not (out / "slow" / "evidence.json").exists(), "the slow student should be running"
    finally:
        os.killpg(batch.pid, signal.SIGKILL)  # the whole process group, as `kill -9 -PGID` or a lost node does
        batch.wait()
        log.close()
    left = wait_for_no_processes(str(tmp_path))
    assert not left, "processes of the killed batch survived:\n" + "\n".join(left)
    for path in out.glob("*/evidence.json"):
        read_evidence(path)  # every evidence file is whole: written atomically
    first = (out / "ann" / "evidence.json").read_bytes()
    started = read_evidence(out / "ann" / "evidence.json").started_at
    assert not (out / "slow" / "evidence.json").exists()

    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    assert re.search(r"ann: .*\(reused\)", output) and re.search(r"slow: .*\(graded\)", output), output[-3000:]
    assert (out / "ann" / "evidence.json").read_bytes() == first
    assert read_evidence(out / "ann" / "evidence.json").started_at == started, "the finished student was not rerun"
    assert read_evidence(out / "slow" / "evidence.json").status == "ok"
    rows = (out / "gradebook.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["ann", "slow"]
    assert not list((out / ".work" / "runs").iterdir()), "the killed run's scratch is gone"
    assert not wait_for_no_processes(str(tmp_path), 5)


# ------------------------------------------------------------------------------- equal results


@dataclass(frozen=True)
class RayCluster:
    address: str
    scratch: Path  # GRADER_SCRATCH_DIR of its workers


def _free_port() -> int:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return int(probe_socket.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A one-node Ray cluster on 127.0.0.1 (2 CPUs), stopped (its whole process group) at the end."""
    pytest.importorskip("ray", reason="the Ray backend needs ray (pip install -e '.[ray]')")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's Unix sockets live under it
    scratch = tmp_path_factory.mktemp("ray-scratch")
    port = _free_port()
    log = tmp_path_factory.mktemp("ray-log") / "ray.log"
    # no token authentication (Ray's default for `ray start`): a throwaway cluster on the loopback interface
    env = {**os.environ, "GRADER_SCRATCH_DIR": str(scratch), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}
    with log.open("w") as handle:
        head = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port",
             str(port), "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats",
             "--temp-dir", str(temp), "--block"],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, log.read_text()[-3000:]
            done = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", address],
                                  env=env, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode == 0 and "CPU" in done.stdout:
                break
            assert time.monotonic() < deadline, f"ray did not start:\n{done.stdout}{done.stderr}{log.read_text()}"
            time.sleep(1)
        yield RayCluster(address, scratch)
    finally:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=grace)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_class(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_class(tmp_path_factory.mktemp("tiny") / "class")


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _normalized(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def results(out: Path) -> dict[str, Any]:
    """What must agree between backends: each student's evidence (timings aside) and weights, the gradebook."""
    found: dict[str, Any] = {"gradebook": (out / "gradebook.csv").read_text()}
    for path in sorted(out.glob("*/evidence.json")):
        found[path.parent.name] = _normalized(json.loads(path.read_text()))
        found[f"{path.parent.name}/models"] = {model.name: hashlib.sha256(model.read_bytes()).hexdigest()
                                               for model in sorted((path.parent / "models").glob("*"))}
    return found


@pytest.fixture(scope="module")
def local_results(tiny_class: Path, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path,
                  embedded: DataSet) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("local") / "out"
    done = subprocess.run(grade_command(str(tiny_class), "--out", str(out), "--cache-dir", str(cache_dir),
                                        "--workers", "2"),
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    found = results(out)
    assert sorted(key for key in found if "/" not in key and key != "gradebook") == sorted(STUDENTS)
    assert all(found[student]["status"] == "ok" for student in STUDENTS)
    return found


def assert_same(local: dict[str, Any], other: dict[str, Any], what: str) -> None:
    assert sorted(other) == sorted(local), what
    for key in local:
        assert other[key] == local[key], f"{what}: {key} differs from the local pool's"


def test_ray_gives_the_same_results_as_the_local_pool(ray_cluster: RayCluster, tiny_class: Path,
                                                      local_results: dict[str, Any], tmp_path: Path,
                                                      cache_dir: Path) -> None:
    out = tmp_path / "out"
    before = set(ray_cluster.scratch.iterdir())
    done = subprocess.run(grade_command(str(tiny_class), "--out", str(out), "--cache-dir", str(cache_dir),
                                        "--backend", "ray", "--ray-address", ray_cluster.address),
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert_same(local_results, results(out), "ray")
    assert set(ray_cluster.scratch.iterdir()) <= before, "each task removes its node-local scratch"


def test_two_slurm_shards_and_the_class_files_step_give_the_same_results(
        tiny_class: Path, local_results: dict[str, Any], tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "grade-slurm.sh"
    made = subprocess.run([sys.executable, "-m", "grader", "slurm-template", str(tiny_class), "--rubric", str(RUBRIC),
                           "--out", str(out), "--shards", "2", "--cache-dir", str(cache_dir), "--sandbox", SANDBOX,
                           "-o", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "GRADER_STEP"))}
    logs = [(tmp_path / f"shard{k}.log").open("w") for k in (1, 2)]
    shards = [subprocess.Popen(["bash", str(script)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                               env={**env, "SLURM_ARRAY_TASK_ID": str(k), "SLURM_CPUS_PER_TASK": "1",
                                    "SLURM_JOB_ID": str(100 + k)})
              for k, log in zip((1, 2), logs, strict=True)]  # at once, into the same OUT
    for shard, log in zip(shards, logs, strict=True):
        shard.wait(timeout=900)
        log.close()
    for k, shard in zip((1, 2), shards, strict=True):
        assert shard.returncode == 0, (tmp_path / f"shard{k}.log").read_text()[-3000:]
    shard_logs = [(tmp_path / f"shard{k}.log").read_text() for k in (1, 2)]
    assert "ann: " in shard_logs[0] and "dev: " in shard_logs[0] and "cat: " in shard_logs[1]
    assert not (out / "gradebook.csv").exists(), "shards leave the class files to the last step"
    last = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**env, "GRADER_STEP": "class-files", "SLURM_JOB_ID": "103"}, check=False)
    assert last.returncode == 0, last.stdout + last.stderr
    assert (out / "summary.html").is_file()
    assert_same(local_results, results(out), "two shards + rescore")


def test_ctrl_c_of_a_ray_batch_leaves_no_student_process(ray_cluster: RayCluster, tmp_path: Path,
                                                         cache_dir: Path) -> None:
    classes = write_class(tmp_path / "class", {"slow": SLOW})
    out = tmp_path / "out"
    log = (tmp_path / "ray.log").open("w")
    batch = subprocess.Popen(grade_command(str(classes), "--out", str(out), "--cache-dir", str(cache_dir),
                                           "--backend", "ray", "--ray-address", ray_cluster.address),
                             cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    needle = str(ray_cluster.scratch / "grader-ray-")  # the tasks' scratch (the cluster's own daemons name its parent)
    try:
        deadline = time.monotonic() + 240
        while not any("ipykernel" in line for line in processes_of(needle)):
            assert batch.poll() is None, (tmp_path / "ray.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the student's kernel did not start on the node"
            time.sleep(0.3)
        batch.send_signal(signal.SIGINT)  # Ctrl-C
        batch.wait(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(batch.pid, signal.SIGKILL)
        log.close()
    left = wait_for_no_processes(needle)
    assert not left, "student processes survived the cancelled batch:\n" + "\n".join(left)
    assert batch.returncode != 0 and not (out / "slow" / "evidence.json").exists()
