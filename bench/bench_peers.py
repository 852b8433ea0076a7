"""Benchmark the grader against its peers: the same notebooks, one run, side by side (issue 12, item 4).

    .venv/bin/python bench/bench_peers.py [--profiles embedded embedded-60k] [--notebooks NB ...]
        [--contenders script jupyter grader-stock grader-fast otter nbgrader] [--repeat N]
        [--only PROFILE=ITEM,ITEM ...] [--peer-venv DIR] [--keep DIR]

The notebooks (default): the seed student's two notebooks (submissions/aditya_singh, the student the
README's figures and the issue's "seed-like MLP notebook" use: his notebooks are the handout with
his answers filled in) and the instructor's (reference_solutions/). Each runs on each data profile
(default ``embedded``; ``embedded-60k`` is the same digits tiled to MNIST's full size, minutes per
run), and each contender runs it one after the other, never two at once:

  script        the notebook's code cells as a plain ``python`` script (the limit: no kernel, no grader).
                Each cell runs as ``exec(compile(cell))`` in one namespace inside ``try``/``except`` so that,
                like every other contender, a cell that raises (the seed's CNN notebook calls an undefined
                ``load_data()``) does not stop the rest; IPython magics and ``!`` lines are dropped.
  jupyter       ``jupyter execute --allow-errors`` (nbclient, the engine under nbgrader and otter), the
                grader's venv, kernel ``python3``.
  grader-stock  ``grader grade STUDENT --workers 1 --threads 1 --device cpu --no-pdf --data-path stock``
                (sandbox bubblewrap), STUDENT a folder holding only this notebook; a fresh ``--out`` each run.
  grader-fast   the same with ``--data-path fast``.
  otter         otter-grader 7.0.0, ``otter run -a autograder.zip NB`` (no Docker): the zip built once
                (not timed) by ``otter generate`` from one OK-format test (a model with gradients on its
                parameters exists, i.e. training ran) and the data as support files.
  nbgrader      nbgrader 0.9.6, ``nbgrader autograde hw4 --student s1 --force`` in a minimal course
                (source/release/submitted, one assignment, the notebook plus one autograded test cell with
                the same check, ``Execute.timeout = None``); ``generate_assignment`` is run once, not timed.

Every contender but the grader runs the same copy of the notebook (magics and ``!`` lines removed; the
grader neutralises those itself) in a copy of the notebook's folder with the data where the handout
looks for it (``./data/MNIST/raw``). Everyone gets one torch thread (``OMP_NUM_THREADS=1`` etc.) and
no GPU (``CUDA_VISIBLE_DEVICES=``).

The peers live in their own venvs, ``--peer-venv DIR`` (default /tmp/grader-bench-peers): DIR/otter and
DIR/nbgrader, created and pip-installed when missing, never in .venv. PyTorch is not installed twice: a
``.pth`` file appends .venv's site-packages to the end of the peers' ``sys.path``, so their kernels import
torch, torchvision, matplotlib and tqdm from .venv while everything of their own (nbconvert, nbclient,
ipykernel, ...) comes first from their venv. A peer whose venv cannot be made (no PyPI) is skipped with
the reason printed.

Printed: one row per notebook x profile x contender: median wall seconds and CPU seconds (user + system of
the command and of every descendant it waited for: much less sensitive than wall time to other load on a
shared machine), each with its ratio to the plain script, and a check (exit code, cell errors / score);
then the grader's overhead per notebook from its evidence.json: the
student's cells, kernel start + harvest (the file's duration minus its cells), clean room + measurement
(the evidence's duration minus its files'), the command around it (wall time minus the evidence's
duration: imports, intake, scoring, class files) and the total over the plain script.
Targets (issue 12): the grader's overhead over the plain script at most 1.0 s per notebook; grader-fast
at least 2x faster than the plain script at embedded-60k.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubric" / "hw4.yaml"
VENV_BIN = Path(sys.executable).parent
DEFAULT_NOTEBOOKS = [
    "submissions/aditya_singh/problem2_mlp.ipynb",
    "submissions/aditya_singh/problem3_cnn.ipynb",
    "reference_solutions/problem2_mlp.ipynb",
    "reference_solutions/problem3_cnn.ipynb",
]
CONTENDERS = ["script", "jupyter", "grader-stock", "grader-fast", "otter", "nbgrader"]
PEERS = {"otter": ["otter-grader==7.0.0", "ipykernel"], "nbgrader": ["nbgrader==0.9.6", "ipykernel"]}
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}

# One test for the peers: training ran (a module with gradients on its parameters exists).
TRAINED = ("any(isinstance(v, torch.nn.Module) and any(p.grad is not None for p in v.parameters()) "
           "for v in list(globals().values()))")
OTTER_TEST = f'''OK_FORMAT = True

test = {{
    "name": "trained",
    "points": 1,
    "suites": [
        {{
            "cases": [{{"code": ">>> import torch\\n>>> {TRAINED}\\nTrue", "hidden": False, "locked": False}}],
            "scored": True, "setup": "", "teardown": "", "type": "doctest",
        }}
    ],
}}
'''
NBGRADER_CONFIG = '''c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "bench"
c.Execute.timeout = None
'''

Outcome = tuple[float, float, str, dict[str, float] | None]  # wall s, CPU s, check, the grader's parts
_MAGIC_LINE = re.compile(r"^(?P<indent>\s*)[%!]")


def env(bin_dir: Path = VENV_BIN) -> dict[str, str]:
    """The environment of every contender: one thread, no GPU, its venv first on PATH."""
    return {**os.environ, **THREAD_ENV, "CUDA_VISIBLE_DEVICES": "",
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def strip_magics(source: str) -> str:
    """Cell source with IPython magics and shell escapes replaced by ``pass`` (a %% cell magic: the cell)."""
    if source.lstrip().startswith("%%"):
        return "pass"
    return "\n".join(f"{m.group('indent')}pass" if (m := _MAGIC_LINE.match(line)) else line
                     for line in source.splitlines())


def code_cells(notebook: dict[str, Any]) -> list[str]:
    return [strip_magics("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in notebook["cells"] if c["cell_type"] == "code"]


def as_script(notebook: dict[str, Any]) -> str:
    """The notebook's code as a plain script: each cell compiled and run in one namespace, errors printed."""
    lines = ["import traceback", ""]
    for index, source in enumerate(code_cells(notebook)):
        lines += [f"# cell {index}", "try:",
                  f"    exec(compile({source!r}, 'cell {index}', 'exec'))",
                  "except Exception:", "    traceback.print_exc()", ""]
    return "\n".join(lines)


def stripped_notebook(notebook: dict[str, Any]) -> dict[str, Any]:
    """The same notebook, magics and shell escapes removed, outputs cleared, kernel ``python3``."""
    copy = json.loads(json.dumps(notebook))
    for cell in copy["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = strip_magics(source)
            cell["outputs"], cell["execution_count"] = [], None
    copy["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return copy


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def copy_data(public_dir: Path, target: Path, link: bool) -> None:
    """MNIST at ``target/data/MNIST/raw`` (a symlink to the provisioned files, or a copy for the peers that
    pack or copy the submission's files themselves)."""
    if link:
        target.mkdir(parents=True, exist_ok=True)
        (target / "data").symlink_to(public_dir, target_is_directory=True)
    else:
        shutil.copytree(public_dir, target / "data")


TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(root: int, seen: dict[tuple[int, int], float]) -> None:
    """Record the CPU seconds (user + system, its own) of ``root`` and every process descending from it now,
    from /proc: a sandboxed kernel is reaped by nobody who counts it in getrusage (its sandbox is killed)."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
        pid = int(entry.name)
        parents[pid], stats[pid] = int(fields[1]), fields
    for pid, fields in stats.items():
        ancestor, hops = pid, 0
        while ancestor not in (root, 0, 1) and hops < 64:
            ancestor, hops = parents.get(ancestor, 0), hops + 1
        if ancestor == root:
            key = (pid, int(fields[19]))  # pid and start time: a reused pid is another process
            seen[key] = max(seen.get(key, 0.0), (int(fields[11]) + int(fields[12])) / TICK)


def timed(command: list[str], cwd: Path, log: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and exit code of ``command``.

    CPU: user + system of the command and all its descendants, the larger of two counts: getrusage of the
    waited-for children (exact, but blind to processes whose parent is killed before it reaps them, such as
    a sandboxed kernel) and a sum over every descendant sampled from /proc every 0.2 s (sees those, but misses
    a process's last 0.2 s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen: dict[tuple[int, int], float] = {}
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env(Path(command[0]).parent), stdout=out,
                                   stderr=subprocess.STDOUT)
        while process.poll() is None:
            _tree_cpu(process.pid, seen)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, max(waited, sum(seen.values())), process.returncode


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Case:
    """One notebook on one profile, prepared for every contender."""

    notebook: Path
    profile: str
    public_dir: Path
    base: Path
    stripped: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.notebook.parent.name}/{self.notebook.stem}"

    @property
    def student(self) -> str:
        return self.notebook.parent.name

    def fresh(self, name: str) -> Path:
        path = self.base / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def folder_copy(self, name: str) -> Path:
        """A copy of the notebook's folder (its other files too) with the data, the notebook stripped."""
        work = self.fresh(name)
        for item in self.notebook.parent.iterdir():
            if item.is_file():
                shutil.copyfile(item, work / item.name)
        write_json(work / self.notebook.name, self.stripped)
        copy_data(self.public_dir, work, link=True)
        return work


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    evidence: list[dict[str, float]] = field(default_factory=list)
    skipped: str = ""


class Runner:
    def __init__(self, options: argparse.Namespace, cache: Path) -> None:
        self.options = options
        self.cache = cache
        self.peer_bins: dict[str, Path] = {}
        self.peer_skipped: dict[str, str] = {}

    # --- the peers' venvs -------------------------------------------------------------------------
    def peer_venv(self, name: str) -> Path | None:
        """DIR/<name>/bin, created and installed when missing; None (and the reason kept) if that fails."""
        if name in self.peer_bins:
            return self.peer_bins[name]
        if name in self.peer_skipped:
            return None
        venv = self.options.peer_venv / name
        exe = venv / "bin" / ("otter" if name == "otter" else "nbgrader")
        if not exe.exists() or not (venv / "bin" / "jupyter-kernelspec").exists():
            print(f"  installing {' '.join(PEERS[name])} into {venv} (pip) ...", flush=True)
            base = getattr(sys, "_base_executable", sys.executable)
            steps = [[base, "-m", "venv", str(venv)],
                     [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *PEERS[name]]]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    errors = [line for line in (done.stdout + done.stderr).splitlines() if "is ignored" not in line]
                    self.peer_skipped[name] = f"`{' '.join(step[-3:])}` failed: " + " | ".join(errors[-3:])
                    return None
        # torch & co from .venv, after the peer's own packages
        purelib = sysconfig.get_paths()["purelib"]
        site = next((venv / "lib").glob("python*/site-packages"))
        (site / "zz_grader_bench_borrow.pth").write_text(purelib + "\n", encoding="utf-8")
        check = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch, torchvision, ipykernel"],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            self.peer_skipped[name] = f"its kernel cannot import torch: {check.stderr.strip()[-300:]}"
            return None
        self.peer_bins[name] = venv / "bin"
        return self.peer_bins[name]

    # --- the contenders -----------------------------------------------------------------------------
    def script(self, case: Case, run: int) -> Outcome:
        work = case.folder_copy(f"script-{run}")
        (work / "notebook_as_script.py").write_text(as_script(case.stripped), encoding="utf-8")
        seconds, cpu, rc = timed([sys.executable, "notebook_as_script.py"], work, work / "run.log")
        log = (work / "run.log").read_text(errors="replace")
        return seconds, cpu, f"rc {rc}, {log.count('Traceback (most recent call last)')} cell error(s)", None

    def jupyter(self, case: Case, run: int) -> Outcome:
        work = case.folder_copy(f"jupyter-{run}")
        command = [str(VENV_BIN / "jupyter"), "execute", "--allow-errors", "--kernel_name=python3", "--timeout=-1",
                   "--output=executed", case.notebook.name]
        seconds, cpu, rc = timed(command, work, work / "run.log")
        errors = "?"
        if (work / "executed.ipynb").exists():
            executed = json.loads((work / "executed.ipynb").read_text())
            errors = str(sum(1 for c in executed["cells"] for o in c.get("outputs", [])
                             if o.get("output_type") == "error"))
        return seconds, cpu, f"rc {rc}, {errors} cell error(s)", None

    def grader(self, case: Case, run: int, data_path: str) -> Outcome:
        work = self.fresh_grader(case, f"grader-{data_path}-{run}")
        out = work / "out"
        command = [str(VENV_BIN / "grader"), "grade", str(work / "class" / case.student), "--rubric", str(RUBRIC),
                   "--out", str(out), "--no-pdf", "--data-path", data_path, "--workers", "1", "--threads", "1",
                   "--device", "cpu", "--profile", case.profile, "--cache-dir", str(self.cache)]
        seconds, cpu, rc = timed(command, work, work / "run.log")
        evidence_path = out / case.student / "evidence.json"
        if rc not in (0, 1) or not evidence_path.exists():
            raise RuntimeError(f"grader failed ({rc}):\n{tail(work / 'run.log')}")
        evidence = json.loads(evidence_path.read_text())
        files = evidence["files"]
        cells = sum(c.get("duration_s") or 0.0 for f in files for c in f["cells"])
        file_s = sum(f["duration_s"] for f in files)
        parts = {"cells": cells, "kernel": file_s - cells, "cleanroom": evidence["duration_s"] - file_s,
                 "command": seconds - evidence["duration_s"]}
        used = {(f.get("data_path") or {}).get("mode", "?") for f in files}
        errors = sum(1 for f in files for c in f["cells"] if c.get("status") == "error")
        return seconds, cpu, f"rc {rc}, {'/'.join(sorted(used))} path, {errors} cell error(s)", parts

    def fresh_grader(self, case: Case, name: str) -> Path:
        work = case.fresh(name)
        student = work / "class" / case.student
        student.mkdir(parents=True)
        shutil.copyfile(case.notebook, student / case.notebook.name)  # the original: the grader strips magics
        return work

    def otter(self, case: Case, run: int) -> Outcome:
        bin_dir = self.peer_venv("otter")
        if bin_dir is None:
            raise LookupError(self.peer_skipped["otter"])
        build = case.base / "otter-build"
        if not (build / "autograder.zip").exists():  # once per case, not timed
            build.mkdir(parents=True, exist_ok=True)
            (build / "tests").mkdir(exist_ok=True)
            (build / "tests" / "trained.py").write_text(OTTER_TEST, encoding="utf-8")
            copy_data(case.public_dir, build, link=False)
            done = subprocess.run([str(bin_dir / "otter"), "generate", "data"], cwd=build, env=env(bin_dir),
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"otter generate failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
        work = case.fresh(f"otter-{run}")
        write_json(work / case.notebook.name, case.stripped)
        command = [str(bin_dir / "otter"), "run", "-a", str(build / "autograder.zip"), "--no-logo", "-o", str(work),
                   case.notebook.name]
        seconds, cpu, rc = timed(command, work, work / "run.log")
        score = "?"
        if (work / "results.json").exists():
            tests = json.loads((work / "results.json").read_text())["tests"]
            score = "/".join(str(t.get("score")) for t in tests if "score" in t)
        return seconds, cpu, f"rc {rc}, score {score}/1", None

    def nbgrader(self, case: Case, run: int) -> Outcome:
        bin_dir = self.peer_venv("nbgrader")
        if bin_dir is None:
            raise LookupError(self.peer_skipped["nbgrader"])
        course = case.base / "nbgrader-course"
        released = course / "release" / "hw4" / case.notebook.name
        if not released.exists():  # once per case, not timed
            course.mkdir(parents=True, exist_ok=True)
            (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(course)), encoding="utf-8")
            source = json.loads(json.dumps(case.stripped))
            source["cells"].append({
                "cell_type": "code", "execution_count": None, "outputs": [], "id": "grader-bench-check",
                "source": f"import torch\nassert {TRAINED}",
                "metadata": {"nbgrader": {"grade": True, "solution": False, "locked": True,
                                          "grade_id": "trained", "points": 1, "schema_version": 3}}})
            source.setdefault("nbformat_minor", 5)
            source["nbformat_minor"] = max(5, source["nbformat_minor"])
            for index, cell in enumerate(source["cells"]):
                cell.setdefault("id", f"cell-{index}")
            write_json(course / "source" / "hw4" / case.notebook.name, source)
            done = subprocess.run([str(bin_dir / "nbgrader"), "generate_assignment", "hw4", "--force"], cwd=course,
                                  env=env(bin_dir), capture_output=True, text=True, check=False)
            if done.returncode != 0 or not released.exists():
                raise RuntimeError(f"nbgrader generate_assignment failed:\n{done.stderr[-2000:]}")
            submitted = course / "submitted" / "s1" / "hw4"
            submitted.mkdir(parents=True)
            shutil.copyfile(released, submitted / case.notebook.name)
            copy_data(case.public_dir, submitted, link=False)
        command = [str(bin_dir / "nbgrader"), "autograde", "hw4", "--student", "s1", "--force"]
        seconds, cpu, rc = timed(command, course, case.base / f"nbgrader-{run}.log")
        score = "?"
        try:
            with sqlite3.connect(course / "gradebook.db") as db:
                rows = db.execute("select auto_score from grade").fetchall()
            score = "/".join(str(r[0]) for r in rows)
        except sqlite3.Error as error:
            score = f"? ({error})"
        return seconds, cpu, f"rc {rc}, score {score}/1", None

    def run(self, contender: str, case: Case, run: int) -> Outcome:
        if contender.startswith("grader-"):
            return self.grader(case, run, contender.removeprefix("grader-"))
        method = getattr(self, contender)
        result: Outcome = method(case, run)
        return result


def parse_only(items: list[str], labels: list[str]) -> dict[str, tuple[set[str], set[str]]]:
    """``PROFILE=ITEM,ITEM``: on that profile only these contenders / notebooks (substring of the label)."""
    only: dict[str, tuple[set[str], set[str]]] = {}
    for item in items:
        profile, _, names = item.partition("=")
        contenders, notebooks = only.setdefault(profile, (set(), set()))
        for name in filter(None, names.split(",")):
            if name in CONTENDERS:
                contenders.add(name)
            elif any(name in label for label in labels):
                notebooks.add(name)
            else:
                raise SystemExit(f"--only {item}: {name!r} is neither a contender nor part of a notebook's name")
    return only


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["embedded"],
                        choices=["embedded", "embedded-60k", "full", "embedded-fast"])
    parser.add_argument("--notebooks", nargs="+", default=DEFAULT_NOTEBOOKS, help="notebook paths (from the "
                        "repository root); default: the seed student's two and the reference solutions' two")
    parser.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    parser.add_argument("--only", action="append", default=[], metavar="PROFILE=ITEM,ITEM",
                        help="restrict one profile to these contenders and/or notebooks (a part of the notebook's "
                             "label), e.g. --only embedded-60k=script,grader-stock,grader-fast,aditya_singh/problem2")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, the median is printed (default 1)")
    parser.add_argument("--peer-venv", type=Path, default=Path(tempfile.gettempdir()) / "grader-bench-peers",
                        help="where the peers' venvs are made (DIR/otter, DIR/nbgrader)")
    parser.add_argument("--keep", type=Path, help="keep the work folders here (default: a temporary folder, removed)")
    options = parser.parse_args()
    notebooks = [(ROOT / n).resolve() if not Path(n).is_absolute() else Path(n) for n in options.notebooks]
    for notebook in notebooks:
        if not notebook.is_file():
            raise SystemExit(f"{notebook}: no such notebook")
    labels = [f"{n.parent.name}/{n.stem}" for n in notebooks]
    only = parse_only(options.only, labels)
    sys.path.insert(0, str(ROOT))
    from grader.data import default_cache_dir, provision

    cache = default_cache_dir()
    base = Path(options.keep or tempfile.mkdtemp(prefix="grader-bench-peers-")).resolve()
    runner = Runner(options, cache)
    started = time.perf_counter()
    print(f"{os.cpu_count()} cores, load {load()} (1/5/15 min), one torch thread each, contenders one at a time, "
          f"median of {options.repeat}; work in {base}", flush=True)
    results: dict[tuple[str, str, str], Result] = {}
    cases: list[Case] = []
    for profile in options.profiles:
        dataset = provision(profile, cache)
        wanted_contenders, wanted_notebooks = only.get(profile, (set(), set()))
        for notebook, label in zip(notebooks, labels, strict=True):
            if wanted_notebooks and not any(name in label for name in wanted_notebooks):
                continue
            case = Case(notebook=notebook, profile=profile, public_dir=dataset.public_dir,
                        base=base / profile / label.replace("/", "__"),
                        stripped=stripped_notebook(json.loads(notebook.read_text(encoding="utf-8"))))
            cases.append(case)
            contenders = [c for c in options.contenders if not wanted_contenders or c in wanted_contenders]
            for run in range(options.repeat):
                for contender in contenders:
                    result = results.setdefault((profile, label, contender), Result())
                    if result.skipped:
                        continue
                    print(f"  {profile:12} {label:32} {contender:12} run {run + 1}: ", end="", flush=True)
                    try:
                        seconds, cpu, check, parts = runner.run(contender, case, run)
                    except (LookupError, RuntimeError) as error:
                        result.skipped = str(error)
                        print(f"skipped: {error}", flush=True)
                        continue
                    result.seconds.append(seconds)
                    result.cpu.append(cpu)
                    result.checks.append(check)
                    if parts:
                        result.evidence.append(parts)
                    print(f"{seconds:7.1f} s, CPU {cpu:6.1f} s  ({check}; load {load()})", flush=True)

    print(f"\nwall and CPU seconds (medians of {options.repeat}; CPU: user + system of the command and its "
          f"descendants) and ratios to the plain script; one torch thread, {os.cpu_count()} cores, "
          f"load at the end {load()}")
    print(f"{'profile':12} {'notebook':32} {'contender':13} {'wall s':>7} {'x script':>9} {'CPU s':>7} "
          f"{'x script':>9}  check")
    for case in cases:
        script = results.get((case.profile, case.label, "script"))
        limit = statistics.median(script.seconds) if script and script.seconds else None
        limit_cpu = statistics.median(script.cpu) if script and script.cpu else None
        for contender in options.contenders:
            result = results.get((case.profile, case.label, contender))
            if result is None:
                continue
            if not result.seconds:
                print(f"{case.profile:12} {case.label:32} {contender:13} {'-':>7} {'-':>9} {'-':>7} {'-':>9}  "
                      f"skipped: {result.skipped.splitlines()[0] if result.skipped else ''}")
                continue
            wall, cpu = statistics.median(result.seconds), statistics.median(result.cpu)
            ratio = f"{wall / limit:8.2f}x" if limit else f"{'-':>9}"
            ratio_cpu = f"{cpu / limit_cpu:8.2f}x" if limit_cpu else f"{'-':>9}"
            print(f"{case.profile:12} {case.label:32} {contender:13} {wall:7.1f} {ratio} {cpu:7.1f} {ratio_cpu}  "
                  f"{result.checks[-1]}")

    print("\nthe grader's time per notebook, from evidence.json (medians, seconds): cells = the student's cells; "
          "kernel = kernel start, sandbox and harvest (file minus cells); clean room = measurement after the "
          "notebook (evidence minus files); command = wall minus evidence (imports, intake, scoring, class files); "
          "overhead = wall minus the plain script")
    print(f"{'profile':12} {'notebook':32} {'contender':13} {'wall':>6} {'cells':>6} {'kernel':>7} "
          f"{'clean room':>10} {'command':>8} {'script':>7} {'overhead':>9}")
    for case in cases:
        script = results.get((case.profile, case.label, "script"))
        limit = statistics.median(script.seconds) if script and script.seconds else None
        for contender in ("grader-stock", "grader-fast"):
            result = results.get((case.profile, case.label, contender))
            if result is None or not result.evidence:
                continue
            wall = statistics.median(result.seconds)
            part = {key: statistics.median(p[key] for p in result.evidence) for key in result.evidence[0]}
            overhead = f"{wall - limit:9.1f}" if limit else f"{'-':>9}"
            print(f"{case.profile:12} {case.label:32} {contender:13} {wall:6.1f} {part['cells']:6.1f} "
                  f"{part['kernel']:7.1f} {part['cleanroom']:10.1f} {part['command']:8.1f} "
                  f"{limit if limit else float('nan'):7.1f} {overhead}")
    for name, reason in runner.peer_skipped.items():
        print(f"\n{name} skipped: {reason}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if not options.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
