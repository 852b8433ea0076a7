"""Benchmark the Ray backend against the local pool: the same small class, side by side, on this machine.

    .venv/bin/python bench/bench_ray.py [--students N] [--repeat R] [--sandbox bubblewrap|none] [--keep DIR]

The class: N notebooks that train the handout's MLP for 30 steps (tests/tinyclass.py), so that the
fixed costs (kernel start, clean room, and for Ray: connecting, shipping the submission, the task's
node checks, sending the evidence and weights back) are a large share, as a worst case. Measured:

  * local pool: ``grader grade --workers 2 --threads 1`` (s);
  * Ray on a running cluster (``ray start --head --num-cpus 2`` on 127.0.0.1, started outside the
    timing): ``grader grade --backend ray`` (s), and the cluster's start itself (s);
  * Ray with ``--ray-address local`` (the driver starts a private Ray: what a first try costs);
  * per submission: wall time / N, the evidence's own ``duration_s`` (execute + measure on the
    node), and the overhead of Ray over the local pool ((ray - local) / N) and their ratio.

Needs ray (pip install -e '.[ray]'). Figures: docs/cluster.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubric" / "hw4.yaml"
sys.path.insert(0, str(ROOT / "tests"))
from tinyclass import MLP, SETUP, TRAIN, write_class  # noqa: E402 - the tests' tiny class, one definition

RAY = Path(sys.executable).parent / "ray"


def grade(paths: list[str], out: Path, cache: Path, sandbox: str, *extra: str,
          env: dict[str, str] | None = None) -> float:
    command = [sys.executable, "-m", "grader", "grade", *paths, "--rubric", str(RUBRIC), "--out", str(out),
               "--cache-dir", str(cache), "--sandbox", sandbox, "--no-pdf", "--force", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed


def node_seconds(out: Path) -> float:
    """Mean execute+measure time per student, as the evidence records it (on the node, for Ray)."""
    return statistics.mean(json.loads(path.read_text())["duration_s"] for path in out.glob("*/evidence.json"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def ray_head(env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs: (address, seconds it took to start)."""
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths live under it
    port = _free_port()
    address = f"127.0.0.1:{port}"
    started = time.perf_counter()
    head = subprocess.Popen([str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", str(temp), "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while subprocess.run([str(RAY), "status", "--address", address], env=env, capture_output=True,
                             check=False).returncode != 0:
            if head.poll() is not None:
                raise SystemExit("ray start failed")
            time.sleep(0.5)
        yield address, time.perf_counter() - started
    finally:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(timeout=grace)
        shutil.rmtree(temp, ignore_errors=True)


def connect_seconds(address: str, env: dict[str, str]) -> float:
    """How long the driver's ray.init takes to join the running cluster (Ray imported outside the timing)."""
    probe = ("import time, ray\nstarted = time.perf_counter()\n"
             f"ray.init(address={address!r}, log_to_driver=False, configure_logging=False)\n"
             "print(time.perf_counter() - started)\nray.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    options = parse()
    base = Path(options.keep or tempfile.mkdtemp(prefix="grader-bench-ray-"))
    try:
        measure(options, base)
    finally:
        if not options.keep:
            shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=4, help="notebooks in the class (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each backend; the fastest counts (default 1)")
    parser.add_argument("--sandbox", default="bubblewrap", choices=["bubblewrap", "none"])
    parser.add_argument("--keep", type=Path, help="keep the outputs here")
    return parser.parse_args()


def measure(options: argparse.Namespace, base: Path) -> None:
    cache = base / "cache"
    subprocess.run([sys.executable, "-m", "grader", "data", "--cache-dir", str(cache)], cwd=ROOT, check=True,
                   capture_output=True)  # outside the timings
    students = {f"s{n:02d}": [SETUP, MLP, TRAIN] for n in range(1, options.students + 1)}
    paths = [str(write_class(base / "class", students))]
    count = options.students
    # a throwaway cluster on the loopback interface: no token authentication
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}

    local, ray, private = [], [], []
    local_node, ray_node = [], []
    with ray_head(env) as (address, start_s):
        connect_s = min(connect_seconds(address, env) for _ in range(options.repeat))
        for _ in range(options.repeat):  # interleaved: a busy spell of the machine hits both
            local.append(grade(paths, base / "local", cache, options.sandbox, "--workers", "2", "--threads", "1"))
            local_node.append(node_seconds(base / "local"))
            ray.append(grade(paths, base / "ray", cache, options.sandbox, "--backend", "ray", "--ray-address",
                             address, "--threads", "1", env=env))
            ray_node.append(node_seconds(base / "ray"))
    for _ in range(options.repeat):
        private.append(grade(paths, base / "private", cache, options.sandbox, "--backend", "ray", "--ray-address",
                             "local", "--threads", "1", env=env))

    best_local, best_ray, best_private = min(local), min(ray), min(private)
    local_node_s = local_node[local.index(best_local)]
    ray_node_s = ray_node[ray.index(best_ray)]
    rows = [
        ("local pool, 2 workers x 1 thread (s)", best_local),
        ("Ray, running 1-node cluster, 2 CPUs (s)", best_ray),
        ("Ray, --ray-address local (starts its own Ray) (s)", best_private),
        ("starting the Ray cluster, until `ray status` answers (s)", start_s),
        ("the driver joining the running cluster, ray.init (s)", connect_s),
        ("per submission, local: wall / N (s)", best_local / count),
        ("per submission, Ray: wall / N (s)", best_ray / count),
        ("per submission, execute+measure, local (evidence duration_s)", local_node_s),
        ("per submission, execute+measure, Ray node (evidence duration_s)", ray_node_s),
        ("Ray overhead per submission: (ray - local) / N (s)", (best_ray - best_local) / count),
    ]
    ratios = [
        ("Ray / local pool (wall)", best_ray / best_local),
        ("Ray --ray-address local / local pool (wall)", best_private / best_local),
        ("execute+measure on a Ray node / in the local pool", ray_node_s / local_node_s),
    ]
    print(f"{count} tiny notebooks (30 training steps each), sandbox {options.sandbox}, {os.cpu_count()} cores, "
          f"best of {options.repeat}")
    for label, value in rows:
        print(f"  {label:<66} {value:8.2f}")
    for label, value in ratios:
        print(f"  {label:<66} {value:8.2f}x")


if __name__ == "__main__":
    main()
