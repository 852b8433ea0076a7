"""Benchmark the grading pipeline: figures and ratios measured side by side in one run.

    .venv/bin/python bench/bench_grading.py [--students N] [--keep DIR]

Measures, on the embedded profile:
  * sandbox overhead: one notebook graded with bubblewrap vs without (ratio);
  * parallel speed-up: N students with 1 worker vs 2 workers (ratio);
  * evidence reuse: a second `grade` over the same class vs the first (ratio);
  * rescore: scoring + rendering from stored evidence vs the full run (ratio);
  * peak memory (RSS) of the grader and its children, from getrusage.
Targets (README "Measured"): `make grade` on the sample class within about 10 minutes on 2 cores;
the sandbox costs under 10% of a notebook's run; a reused run and a rescore (PDFs included) under
5% of the first run already with 4 students on the embedded digits (their cost is fixed: imports and
Chromium's start, none of it grows with training time).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubric" / "hw4.yaml"
SAMPLE = ROOT / "submissions"


def run(args: list[str], cache: Path) -> float:
    """Wall time of one grader command (every command but rescore reads the data cache)."""
    command = [sys.executable, "-m", "grader", *args]
    if args[0] != "rescore":
        command += ["--cache-dir", str(cache)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"grader {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=4, help="sample students in the class runs (default 4)")
    parser.add_argument("--keep", type=Path, help="keep the outputs here")
    options = parser.parse_args()
    base = Path(options.keep or tempfile.mkdtemp(prefix="grader-bench-"))
    cache = base / "cache"
    students = sorted(p for p in SAMPLE.iterdir() if p.is_dir())[: options.students]
    grade = ["grade", "--rubric", str(RUBRIC)]
    one = str(ROOT / "reference_solutions" / "problem2_mlp.ipynb")
    run(["data"], cache)  # provision outside the timings

    figures: dict[str, float] = {}
    figures["one notebook, no sandbox (s)"] = run([*grade, one, "--out", str(base / "none"), "--sandbox", "none",
                                                   "--workers", "1"], cache)
    figures["one notebook, bubblewrap (s)"] = run([*grade, one, "--out", str(base / "bwrap"), "--workers", "1"],
                                                  cache)
    paths = [str(p) for p in students]
    figures[f"{len(students)} students, 1 worker (s)"] = run([*grade, *paths, "--out", str(base / "w1"),
                                                              "--workers", "1", "--threads", "1"], cache)
    figures[f"{len(students)} students, 2 workers (s)"] = run([*grade, *paths, "--out", str(base / "w2"),
                                                               "--workers", "2", "--threads", "1"], cache)
    figures["same class again, evidence reused (s)"] = run([*grade, *paths, "--out", str(base / "w2"),
                                                            "--workers", "2"], cache)
    figures["rescore from evidence (s)"] = run(["rescore", "--rubric", str(RUBRIC), "--out", str(base / "w2")],
                                               cache)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    full = figures[f"{len(students)} students, 2 workers (s)"]
    ratios = {
        "sandbox overhead (bubblewrap / none)": figures["one notebook, bubblewrap (s)"]
        / figures["one notebook, no sandbox (s)"],
        "parallel speed-up (1 worker / 2 workers)": figures[f"{len(students)} students, 1 worker (s)"] / full,
        "reused run / first run": figures["same class again, evidence reused (s)"] / full,
        "rescore / full run": figures["rescore from evidence (s)"] / full,
    }
    width = max(map(len, [*figures, *ratios]))
    print(f"grader benchmark ({len(students)} students: {', '.join(p.name for p in students)})")
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:8.1f}")
    print(f"  {'peak RSS of any child process (MiB)':<{width}}  {children:8.0f}")
    for name, value in ratios.items():
        print(f"  {name:<{width}}  {value:8.3f}")
    if not options.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
