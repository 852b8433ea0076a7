"""Benchmark of `grader serve` with 500 generated students: how fast is the next answer's page?

    .venv/bin/python bench/bench_serve.py [--students 500] [--pages 200]

Builds a class of generated students from the stored evidence of the sample class (each answer
changed a little, every 7th copied from another student, every 6th without written answers),
marks item 1.2 for half of them, starts the app on uvicorn on 127.0.0.1 as `grader serve` does,
and times over HTTP: the grading page of the next student (what `n` loads), the next ungraded
one (`u`: a redirect, then the page) and saving a mark (what a key press sends). Not a test: it
prints the median, the 95th percentile and whether the next-answer page is under 100 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx

from grader.evidence import Evidence, read_evidence, write_evidence
from grader.marks import Mark
from grader.marksdb import Change, MarksDB
from grader.serve.app import Server, bind
from grader.serve.security import Keys
from grader.serve.state import Grading

ROOT = Path(__file__).resolve().parent.parent
CLASS = ROOT / "tests" / "data" / "class"
RUBRIC = ROOT / "rubric" / "hw4.yaml"
WORDS = (
    "gradient", "layer", "weight", "bias", "activation", "network", "training", "loss", "batch", "normal",
    "shift", "sigmoid", "relu", "kernel", "pooling", "feature", "output", "input", "hidden", "softmax",
    "entropy", "epoch",
)


def generate(out: Path, count: int, seed: int = 5220) -> None:
    rng = random.Random(seed)
    samples = [read_evidence(path) for path in sorted(CLASS.glob("*/evidence.json"))]
    for number in range(count):
        base = samples[number % len(samples)]
        name = f"student_{number:03d}"
        copied = number % 7 == 6
        files = []
        for file in base.files:
            cells = []
            for cell in file.cells:
                if cell.cell_type == "markdown" and not copied:
                    extra = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
                    cell = cell.model_copy(update={"source": f"{cell.source}\n\nAlso: {extra}."})
                cells.append(cell)
            files.append(file.model_copy(update={"cells": cells}))
        evidence: Evidence = base.model_copy(update={"student": name, "files": files})
        write_evidence(evidence, out / name / "evidence.json")


def timed(client: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[float, httpx.Response]:
    start = time.perf_counter()
    response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    return elapsed, response


def summary(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"  {label:<44} median {statistics.median(ordered):6.1f} ms   p95 {p95:6.1f} ms   "
            f"max {ordered[-1]:6.1f} ms   (n={len(ordered)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grader-bench-serve-") as folder:
        out = Path(folder)
        start = time.perf_counter()
        generate(out, args.students)
        print(f"generated {args.students} students in {time.perf_counter() - start:.1f} s")
        db = MarksDB.open(out / "marks.sqlite")
        students = sorted(path.parent.name for path in out.glob("*/evidence.json"))
        db.apply([Change(s, "1.2", Mark(("correct",))) for s in students[::2]], who="bench")
        start = time.perf_counter()
        grading = Grading(out, RUBRIC, db)
        print(f"loaded the class (evidence, answers) in {time.perf_counter() - start:.1f} s")
        keys = Keys()
        server = Server(grading, keys, bind("127.0.0.1", 0))
        runner = server.uvicorn()
        thread = threading.Thread(target=runner.run, kwargs={"sockets": [server.sock]}, daemon=True)
        thread.start()
        while not runner.started:
            time.sleep(0.05)
        host, port = server.address
        headers = {"Authorization": f"token {keys.token}"}
        pages, ungraded, saves, cold = [], [], [], []
        with httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=30) as client:
            for student in students[-30:]:  # before the automatic items are scored: the first minute of a session
                cold.append(timed(client, "GET", f"/grade/1.2/{student}")[0])
            start = time.perf_counter()
            grading.warm_up().join()  # `grader serve` starts this at start, in the background
            print(f"scored the automatic items of every student in {time.perf_counter() - start:.1f} s (in the "
                  "background after start)")
            for student in students[:5]:  # warm-up: templates compiled, caches filled
                timed(client, "GET", f"/grade/1.2/{student}")
            start = time.perf_counter()
            timed(client, "GET", "/groups/1.3")
            print(f"answer groups page of 1.3 for {args.students} students: {time.perf_counter() - start:.2f} s "
                  "(the groups are computed by the same background thread)")
            for student in students[1:args.pages + 1]:
                elapsed, response = timed(client, "GET", f"/grade/1.2/{student}")
                assert 'id="progress"' in response.text
                pages.append(elapsed)
            for student in students[1:args.pages + 1:4]:
                elapsed, _ = timed(client, "GET", f"/next/1.2?after={student}", follow_redirects=True)
                ungraded.append(elapsed)
            for student in students[1:args.pages + 1:4]:
                version = db.state(student, "1.1").version
                elapsed, response = timed(client, "POST", f"/grade/1.1/{student}",
                                          data={"version": str(version), "lines": ["correct"]},
                                          headers={"Accept": "application/json"})
                saves.append(elapsed)
        runner.should_exit = True
        thread.join(10)
        db.close()
    print(f"grader serve, {args.students} students, item 1.2, over HTTP on 127.0.0.1 (uvicorn, one process):")
    print(summary("next answer's page (n)", pages))
    print(summary("  the same, before the background scoring", cold))
    print(summary("next ungraded (u: redirect + page)", ungraded))
    print(summary("save a mark (a key press; JSON with scores)", saves))
    median = statistics.median(pages)
    print(f"  next-answer page under 100 ms: {'yes' if median < 100 else 'NO'} (median {median:.1f} ms)")


if __name__ == "__main__":
    main()
