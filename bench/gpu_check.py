"""The prepared GPU check (issue 12): grade the sample class on a GPU machine, several students per GPU.

    .venv/bin/python bench/gpu_check.py [--profile embedded-60k] [--jobs 1 4 8] [--budget-s 450]

For each jobs-per-GPU figure and each data path (fast, then stock) it runs
``grader grade submissions/ --device cuda --jobs-per-gpu J --data-path P --no-pdf --force`` into a
fresh folder, samples ``nvidia-smi --query-compute-apps`` every half second (the GPU memory of
every student process, measured outside it), and prints: seconds per student, students per hour,
the peak and median GPU memory per student process, whether every student ran on the GPU (the
evidence's ``environment.device``) and how many notebooks ended other than "completed".

It stops starting new configurations when ``--budget-s`` is nearly spent (one device session has a
few minutes), and says which it skipped. Without a GPU it exits 4 at once, before grading anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubric" / "hw4.yaml"
SAMPLE = ROOT / "submissions"


def smi(*query: str) -> list[list[str]]:
    done = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                          timeout=30, check=False)
    return [[f.strip() for f in line.split(",")] for line in done.stdout.strip().splitlines() if line.strip()]


class GpuMemorySampler(threading.Thread):
    """Peak used GPU memory (MiB) of each compute process, from nvidia-smi, while a run lasts."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for row in smi("--query-compute-apps=pid,used_memory"):
                if len(row) == 2 and row[1].replace(".", "").isdigit():
                    self.peaks[row[0]] = max(self.peaks.get(row[0], 0.0), float(row[1]))
            self.stop.wait(0.5)


def grade(students: Path, out: Path, profile: str, jobs: int, data_path: str) -> tuple[float, GpuMemorySampler, str]:
    sampler = GpuMemorySampler()
    sampler.start()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(students), "--rubric", str(RUBRIC),
                           "--out", str(out), "--profile", profile, "--device", "cuda", "--jobs-per-gpu", str(jobs),
                           "--data-path", data_path, "--no-pdf", "--force"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    tail = "" if done.returncode in (0, 1) else (done.stdout + done.stderr)[-2000:]
    return elapsed, sampler, tail


def summarise(out: Path) -> tuple[int, int, int]:
    """(students, on a GPU, notebooks not completed) from the evidence written."""
    students = on_gpu = not_completed = 0
    for path in out.glob("*/evidence.json"):
        evidence = json.loads(path.read_text())
        students += 1
        on_gpu += evidence["environment"]["device"].startswith("cuda")
        not_completed += sum(f["status"] != "completed" for f in evidence["files"])
    return students, on_gpu, not_completed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="embedded-60k")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--data-paths", nargs="+", default=["fast", "stock"], choices=["fast", "stock"])
    parser.add_argument("--students", type=Path, default=SAMPLE, help="a class folder [default: the sample class]")
    parser.add_argument("--budget-s", type=float, default=450, help="start no configuration after this")
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None or not smi("--query-gpu=index"):
        print("no GPU here (nvidia-smi found none): this check needs a GPU machine", file=sys.stderr)
        return 4
    gpus = smi("--query-gpu=index,name,memory.total,driver_version")
    print("GPUs:", "; ".join(f"{g[0]}: {g[1]}, {g[2]} MiB, driver {g[3]}" for g in gpus))
    subprocess.run([sys.executable, "-m", "grader", "data", "--profile", args.profile], cwd=ROOT, check=True,
                   capture_output=True)
    started = time.perf_counter()
    rows, skipped = [], []
    configurations = [(jobs, path) for path in args.data_paths for jobs in sorted(args.jobs, reverse=True)]
    for jobs, data_path in configurations:
        spent = time.perf_counter() - started
        if rows and spent + rows[-1]["seconds"] * 1.2 > args.budget_s:
            skipped.append(f"{jobs} jobs/GPU, {data_path}")
            continue
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
            out = Path(folder) / "out"
            seconds, sampler, tail = grade(args.students, out, args.profile, jobs, data_path)
            students, on_gpu, not_completed = summarise(out)
        peaks = list(sampler.peaks.values())
        rows.append({"jobs": jobs, "data_path": data_path, "seconds": seconds, "students": students,
                     "on_gpu": on_gpu, "not_completed": not_completed,
                     "peak_mib": max(peaks, default=0.0), "median_mib": statistics.median(peaks) if peaks else 0.0})
        row = rows[-1]
        print(f"{jobs} jobs/GPU, {data_path:5}: {seconds:7.1f} s for {students} students "
              f"({seconds / max(students, 1):.1f} s each, {3600 * students / seconds:.0f} students/hour); "
              f"GPU memory per process: peak {row['peak_mib']:.0f} MiB, median {row['median_mib']:.0f} MiB; "
              f"on the GPU: {on_gpu}/{students}; notebooks not completed: {not_completed}", flush=True)
        if tail:
            print(f"  the run failed:\n{tail}")
    if skipped:
        print("skipped (budget):", "; ".join(skipped))
    by_key = {(r["jobs"], r["data_path"]): r["seconds"] for r in rows}
    for jobs in args.jobs:
        if (jobs, "fast") in by_key and (jobs, "stock") in by_key:
            print(f"fast data path at {jobs} jobs/GPU: {by_key[(jobs, 'stock')] / by_key[(jobs, 'fast')]:.2f}x "
                  "faster than stock")
    if len(args.jobs) > 1:
        few, many = min(args.jobs), max(args.jobs)
        if (few, "fast") in by_key and (many, "fast") in by_key:
            print(f"{many} vs {few} jobs/GPU (fast): {by_key[(few, 'fast')] / by_key[(many, 'fast')]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
