"""Grading beyond one machine, without running notebooks: shards, the Slurm script, the Ray driver's logic.

The Ray driver is tested against a stand-in for ``ray`` (the same calls: remote, options, wait, get,
cancel), so that losing a worker, a node that cannot grade and Ctrl-C are exercised in a second;
``test_cluster_e2e.py`` runs real notebooks on a real local Ray cluster and on Slurm's command lines.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT, RUBRIC
from tinyclass import write_class

from grader import __version__
from grader.backends import ClusterError, ClusterOptions
from grader.backends import ray_backend as rb
from grader.batch import Outcome, failure_evidence, reusable
from grader.cli import EXIT_ENVIRONMENT, EXIT_USAGE, cli
from grader.collect import Settings
from grader.data import DataSet
from grader.evidence import read_evidence
from grader.execute.limits import Limits
from grader.execute.sandbox import Unsandboxed, die_with_parent_prefix
from grader.execute.select import SandboxUnavailable
from grader.intake import Submission, discover
from grader.outdir import OutDir
from grader.pipeline import build_settings
from grader.rubric import Rubric
from grader.shard import Shard, ShardError, parse_shard, select_shard

HAS_RAY = importlib.util.find_spec("ray") is not None


# ----------------------------------------------------------------------------------------- shards


@dataclasses.dataclass
class Student:
    student: str


def test_shard_values() -> None:
    assert parse_shard("3/8") == Shard(3, 8) and str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad, why in [("3/2", "between 1 and N"), ("0/2", "between 1 and N"), ("a/b", "is not K/N"),
                     ("1/0", "at least 1"), ("2", "is not K/N"), ("-1/2", "is not K/N"), ("1/2/3", "is not K/N")]:
        with pytest.raises(ShardError, match=why):
            parse_shard(bad)


def test_shards_split_the_class_into_disjoint_shares_whatever_the_order() -> None:
    names = [f"s{n:03d}" for n in random.Random(1).sample(range(1000), 47)]
    for count in range(1, 7):
        shares = [select_shard([Student(n) for n in names], Shard(k, count)) for k in range(1, count + 1)]
        picked = [s.student for share in shares for s in share]
        assert sorted(picked) == sorted(names), "every student in exactly one shard"
        assert max(map(len, shares)) - min(map(len, shares)) <= 1, "balanced"
        shuffled = random.Random(count).sample(names, len(names))
        again = [select_shard([Student(n) for n in shuffled], Shard(k, count)) for k in range(1, count + 1)]
        assert [sorted(s.student for s in share) for share in again] == \
            [sorted(s.student for s in share) for share in shares], "the order the paths came in does not matter"
    assert [s.student for s in select_shard([Student("b"), Student("a"), Student("c")], Shard(1, 2))] == ["a", "c"]
    assert len(select_shard([Student("x")], None)) == 1


@pytest.mark.parametrize("value", ["3/2", "0/2", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(tmp_path: Path, value: str) -> None:
    result = CliRunner().invoke(cli, ["grade", str(tmp_path), "--rubric", str(RUBRIC), "--out", str(tmp_path / "o"),
                                      "--shard", value])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Invalid value for '--shard'" in result.output and "Traceback" not in result.output


def test_ray_options_need_the_ray_backend(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["grade", str(tmp_path), "--rubric", str(RUBRIC), "--out", str(tmp_path / "o"),
                                      "--ray-address", "ray://head:10001"])
    assert result.exit_code == EXIT_USAGE and "go with --backend ray" in result.output


def test_the_ray_backend_without_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec("ray") is None: as if it were not installed
    result = CliRunner().invoke(cli, ["grade", str(tmp_path), "--rubric", str(RUBRIC), "--out", str(tmp_path / "o"),
                                      "--backend", "ray"])
    assert result.exit_code == EXIT_ENVIRONMENT, result.output
    assert "pip install -e '.[ray]'" in result.output
    assert not (tmp_path / "o").exists(), "nothing is started"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install -e '.[ray]')")
def test_an_unreachable_ray_address_is_a_clear_error_and_keeps_the_graded(tmp_path: Path, cache_dir: Path,
                                                                          embedded: DataSet) -> None:
    write_class(tmp_path / "class")
    out = tmp_path / "out"
    (out / "ann").mkdir(parents=True)
    kept = '{"graded": "earlier"}\n'
    (out / "ann" / "evidence.json").write_text(kept)
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "grader", "grade", str(tmp_path / "class"), "--rubric", str(RUBRIC),
                           "--out", str(out), "--cache-dir", str(cache_dir), "--backend", "ray", "--ray-address",
                           address, "--sandbox", "none", "--no-pdf"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_ENVIRONMENT, done.stdout + done.stderr
    assert f"cannot reach the Ray cluster at {address}" in done.stderr and "ray start --head" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60, "no minute of retries"
    assert (out / "ann" / "evidence.json").read_text() == kept
    assert not (out / "cat").exists()


def test_a_half_written_evidence_file_is_never_taken_for_a_result(tmp_path: Path, rubric: Rubric,
                                                                  embedded: DataSet) -> None:
    submission, settings = _setup(tmp_path, rubric, embedded)
    good = failure_evidence(submission, settings, "x")
    good.status, good.problems = "ok", []
    path = tmp_path / "evidence.json"
    text = good.model_dump_json(indent=1)
    path.write_text(text)
    assert reusable(path, submission, settings) is not None
    for cut in (1, len(text) // 2, len(text) - 3):
        path.write_text(text[:cut])
        assert reusable(path, submission, settings) is None


# ------------------------------------------------------------------------------------ the sandbox


def test_unsandboxed_processes_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """SIGKILL of a grading worker (a killed batch, ray.cancel(force=True)) takes its student processes along."""
    if not die_with_parent_prefix():
        pytest.skip("setpriv --pdeathsig is not available here")
    launch = Unsandboxed().wrap(["sleep", "300"], cwd=tmp_path, mounts=[], env={"PATH": os.environ["PATH"]},
                                limits=Limits())
    assert "--pdeathsig" in launch.argv
    starter = ("import subprocess, sys, json\n"
               "p = subprocess.Popen(json.loads(sys.argv[1]), start_new_session=True, stdout=subprocess.DEVNULL,\n"
               "                     stderr=subprocess.DEVNULL)\n"
               "print(p.pid, flush=True)\n"
               "import os; os._exit(0)\n")  # a parent that dies without waiting, as under SIGKILL
    done = subprocess.run([sys.executable, "-c", starter, json.dumps(launch.argv)], env=launch.env,
                          capture_output=True, text=True, timeout=30, check=True)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    launch.finish()
    assert not _alive(pid), "the student process outlived the grader process that started it"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


# ----------------------------------------------------------------------------------------- slurm


def _slurm_script(tmp_path: Path, *extra: str) -> Path:
    script = tmp_path / "grade-slurm.sh"
    result = CliRunner().invoke(cli, ["slurm-template", str(tmp_path / "class"), "--rubric", str(RUBRIC),
                                      "--out", str(tmp_path / "out"), "--shards", "3", "-o", str(script),
                                      "--cache-dir", str(tmp_path / "cache"), *extra])
    assert result.exit_code == 0, result.output
    return script


def test_the_slurm_script_submits_an_array_then_the_class_files(tmp_path: Path) -> None:
    (tmp_path / "class").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name, reply in (("sbatch", "4242;cluster0"), ("grader", "")):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/bash\necho "{name} $*" >> {log}\necho "{reply}"\n')
        tool.chmod(0o755)
    script = _slurm_script(tmp_path, "--grader", str(bin_dir / "grader"), "--partition", "gpu", "--mem", "32G",
                           "--grade-args", "--timeout 3600 --data-path stock")
    text = script.read_text()
    assert os.access(script, os.X_OK)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for directive in ("--cpus-per-task=8", "--time=04:00:00", "--partition=gpu", "--mem=32G"):
        assert f"#SBATCH {directive}" in text
    assert "--array" not in "".join(line for line in text.splitlines() if line.startswith("#SBATCH"))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "GRADER_STEP", "SLURM_CPUS_PER_TASK"):
        env.pop(name, None)

    def run(**variables: str) -> subprocess.CompletedProcess[str]:
        log.write_text("")
        return subprocess.run(["bash", str(script)], env={**env, **variables}, capture_output=True, text=True,
                              timeout=60, check=False)

    submitted = run()
    assert submitted.returncode == 0, submitted.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "grader data --profile embedded"
    assert calls[1] == f"sbatch --parsable --array=1-3 {script}"
    assert calls[2] == (f"sbatch --parsable --dependency=afterany:4242 --job-name=grader-class-files "
                        f"--export=ALL,GRADER_STEP=class-files {script}")
    assert "submitted job array 4242 (3 shards)" in submitted.stdout

    shard = run(SLURM_ARRAY_TASK_ID="2", SLURM_CPUS_PER_TASK="4", SLURM_JOB_ID="4243")
    assert shard.returncode == 0, shard.stderr
    assert log.read_text().splitlines() == [
        f"grader grade {tmp_path / 'class'} --rubric {RUBRIC} --out {tmp_path / 'out'} --profile embedded --sandbox "
        "bubblewrap --timeout 3600 --data-path stock --shard 2/3 --workers 4 --threads 1 --no-pdf"]
    last = run(GRADER_STEP="class-files", SLURM_JOB_ID="4244")
    assert last.returncode == 0 and log.read_text().splitlines() == [
        f"grader rescore --rubric {RUBRIC} --out {tmp_path / 'out'} --no-pdf"]
    wrong = run(SLURM_JOB_ID="4245")
    assert wrong.returncode == 2 and "submit this script with: bash" in wrong.stderr


def test_the_slurm_template_refuses_what_it_sets_itself(tmp_path: Path) -> None:
    (tmp_path / "class").mkdir()
    for extra in ("--shard 1/2", "--workers 3", "--out x", "'unclosed"):
        result = CliRunner().invoke(cli, ["slurm-template", str(tmp_path / "class"), "--rubric", str(RUBRIC),
                                          "--out", str(tmp_path / "out"), "--shards", "2", "-o", "-",
                                          "--grade-args", extra])
        assert result.exit_code == EXIT_USAGE, (extra, result.output)
    printed = CliRunner().invoke(cli, ["slurm-template", str(tmp_path / "class"), "--rubric", str(RUBRIC),
                                       "--out", "relative/out", "--shards", "2", "-o", "-"])
    assert printed.exit_code == 0 and printed.output.startswith("#!/bin/bash")
    assert f"--out {Path('relative/out').resolve()}" in printed.output, "paths are absolute: jobs start anywhere"
    script = tmp_path / "s.sh"
    script.write_text("")
    refused = CliRunner().invoke(cli, ["slurm-template", str(tmp_path / "class"), "--rubric", str(RUBRIC),
                                       "--out", "o", "--shards", "2", "-o", str(script)])
    assert refused.exit_code == EXIT_USAGE and "--force" in refused.output


# ---------------------------------------------------------------------------- the Ray driver's logic


def _setup(tmp_path: Path, rubric: Rubric, dataset: DataSet, students: tuple[str, ...] = ("ann",)
           ) -> tuple[Submission, Settings]:
    write_class(tmp_path / "class")
    submissions = [s for s in discover([tmp_path / "class"]) if s.student in students]
    settings = build_settings(rubric, dataset=dataset, sandbox=Unsandboxed(), scratch=tmp_path / "runs",
                              runtime=tmp_path / "runtime", limits=Limits(), threads=1, seed=0,
                              cache_dir=tmp_path / "cache")
    return submissions[0], settings


class FakeRef:
    def __init__(self, job: dict[str, Any], options: dict[str, Any]) -> None:
        self.job, self.options = job, options


class FakeRay:
    """The calls ``run_batch_ray`` makes; ``behaviour(job, attempt)`` gives a reply or raises."""

    class exceptions:  # as ray.exceptions
        class RayTaskError(Exception):
            pass

        class WorkerCrashedError(Exception):
            pass

        class NodeDiedError(Exception):
            pass

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour
        self.submitted: list[FakeRef] = []
        self.cancelled: list[tuple[FakeRef, bool]] = []
        self.attempts: dict[str, int] = {}
        self.shut = False
        self.resources = {"CPU": 4.0, "GPU": 1.0}

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True}]

    def remote(self, function: Any) -> Any:
        assert function is rb.grade_on_node
        fake = self

        class Task:
            def options(self, **options: Any) -> Any:
                class Bound:
                    def remote(self, job: dict[str, Any]) -> FakeRef:
                        ref = FakeRef(job, options)
                        fake.submitted.append(ref)
                        return ref
                return Bound()
        return Task()

    def wait(self, refs: list[FakeRef], num_returns: int = 1) -> tuple[list[FakeRef], list[FakeRef]]:
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: FakeRef) -> dict[str, Any]:
        student = ref.job["submission"].student
        self.attempts[student] = self.attempts.get(student, 0) + 1
        return self.behaviour(ref.job, self.attempts[student])  # type: ignore[no-any-return]

    def cancel(self, ref: FakeRef, force: bool = False) -> None:
        self.cancelled.append((ref, force))

    def shutdown(self) -> None:
        self.shut = True


def _reply(job: dict[str, Any], models: dict[str, Any] | None = None) -> dict[str, Any]:
    submission: Submission = job["submission"]
    evidence = failure_evidence(submission, job["settings"], "placeholder")
    evidence.status, evidence.problems = "ok", []
    return {"node": "node-1 (10.0.0.1)", "evidence": evidence.model_dump_json(),
            "models": models if models is not None else {"00-hw4-model.safetensors": b"tensors"}}


def _run(tmp_path: Path, rubric: Rubric, dataset: DataSet, monkeypatch: pytest.MonkeyPatch, fake: FakeRay,
         students: tuple[str, ...] = ("ann", "cat", "dev"), **kwargs: Any) -> tuple[list[Outcome], OutDir]:
    write_class(tmp_path / "class")
    submissions = [s for s in discover([tmp_path / "class"]) if s.student in students]
    _, settings = _setup(tmp_path, rubric, dataset)
    monkeypatch.setattr(rb, "connect", lambda address: fake)
    out = OutDir(tmp_path / "out")
    outcomes: list[Outcome] = []
    rb.run_batch_ray(submissions, settings, out, cluster=ClusterOptions(backend="ray", **kwargs),
                     sandbox_mode="none", cache_dir=None, mnist_dir=None, force=False, on_done=outcomes.append)
    return outcomes, out


def test_each_student_is_one_task_and_its_results_are_written_into_out(
        tmp_path: Path, rubric: Rubric, embedded: DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(lambda job, attempt: _reply(job, {"00-hw4-model.safetensors": b"w", "../escape.safetensors": b"x",
                                                     ".hidden.safetensors": b"x", "notes.txt": b"x"}))
    outcomes, out = _run(tmp_path, rubric, embedded, monkeypatch, fake, ray_gpus=0.25)
    assert sorted(o.student for o in outcomes) == ["ann", "cat", "dev"] and {o.status for o in outcomes} == {"graded"}
    for ref in fake.submitted:
        assert ref.options == {"name": f"grade {ref.job['submission'].student}", "num_cpus": 1, "num_gpus": 0.25,
                               "max_retries": 0, "retry_exceptions": False}
        assert ref.job["files"] == {"hw4.ipynb": (tmp_path / "class" / ref.job["submission"].student /
                                                  "hw4.ipynb").read_bytes()}, "the submission travels as bytes"
        assert ref.job["version"] == __version__ and ref.job["sandbox"] == "none"
    for student in ("ann", "cat", "dev"):
        assert read_evidence(out.student(student).evidence).status == "ok"
        assert sorted(p.name for p in out.student(student).models.iterdir()) == ["00-hw4-model.safetensors"]
        assert not list(out.root.glob(".*.models.new"))
    assert fake.shut and not fake.cancelled
    # a second run reuses the evidence and does not even connect
    again = FakeRay(lambda job, attempt: pytest.fail("nothing to run"))
    outcomes, _ = _run(tmp_path, rubric, embedded, monkeypatch, again)
    assert {o.status for o in outcomes} == {"reused"} and not again.submitted


def test_a_lost_worker_is_retried_once_and_recorded(tmp_path: Path, rubric: Rubric, embedded: DataSet,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def behaviour(job: dict[str, Any], attempt: int) -> dict[str, Any]:
        student = job["submission"].student
        if student == "ann" and attempt == 1:
            raise FakeRay.exceptions.WorkerCrashedError("The worker died unexpectedly")
        if student == "cat":
            raise FakeRay.exceptions.NodeDiedError("node 10.0.0.2 died")
        if student == "dev":
            raise FakeRay.exceptions.RayTaskError("TypeError in grade_on_node")
        return _reply(job)

    fake = FakeRay(behaviour)
    outcomes, out = _run(tmp_path, rubric, embedded, monkeypatch, fake)
    by_student = {o.student: o for o in outcomes}
    ann = read_evidence(out.student("ann").evidence)
    assert by_student["ann"].status == "graded" and ann.status == "ok"
    assert ann.problems == ["graded on a second attempt: the first attempt's Ray worker or node was lost "
                            "(WorkerCrashedError: The worker died unexpectedly)"]
    cat = read_evidence(out.student("cat").evidence)
    assert fake.attempts["cat"] == 2 and by_student["cat"].status == "failed" and cat.status == "error"
    assert "lost twice (NodeDiedError: node 10.0.0.2 died)" in cat.problems[-1]
    dev = read_evidence(out.student("dev").evidence)
    assert fake.attempts["dev"] == 1, "a failure of the task itself is not retried"
    assert dev.status == "error" and "internal grader error on a Ray node" in dev.problems[-1]
    assert reusable(out.student("cat").evidence, discover([tmp_path / "class"])[1], _setup(
        tmp_path, rubric, embedded)[1]) is None, "the next run tries again"


def test_a_node_that_cannot_grade_stops_the_batch_and_keeps_the_graded(
        tmp_path: Path, rubric: Rubric, embedded: DataSet, monkeypatch: pytest.MonkeyPatch) -> None:
    def behaviour(job: dict[str, Any], attempt: int) -> dict[str, Any]:
        if job["submission"].student == "cat":
            return {"node": "n2", "node_error": "node n2 (10.0.0.2): bubblewrap cannot run here: ..."}
        return _reply(job)

    fake = FakeRay(behaviour)
    with pytest.raises(ClusterError, match=r"node n2 \(10.0.0.2\): bubblewrap cannot run here.*are kept in"):
        _run(tmp_path, rubric, embedded, monkeypatch, fake)
    out = OutDir(tmp_path / "out")
    assert read_evidence(out.student("ann").evidence).status == "ok", "graded before the error: kept"
    assert not out.student("cat").evidence.exists()
    assert [(ref.job["submission"].student, force) for ref, force in fake.cancelled] == [("dev", True)]
    assert fake.shut


def test_ctrl_c_cancels_every_task_with_force(tmp_path: Path, rubric: Rubric, embedded: DataSet,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def behaviour(job: dict[str, Any], attempt: int) -> dict[str, Any]:
        raise KeyboardInterrupt

    fake = FakeRay(behaviour)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, rubric, embedded, monkeypatch, fake)
    assert sorted((ref.job["submission"].student, force) for ref, force in fake.cancelled) == [
        ("cat", True), ("dev", True)]
    assert fake.shut


def test_evidence_of_another_submission_is_refused(tmp_path: Path, rubric: Rubric, embedded: DataSet) -> None:
    submission, settings = _setup(tmp_path, rubric, embedded)
    other = dataclasses.replace(submission, student="zed")
    reply = _reply({"submission": other, "settings": settings})
    outcome = rb.store_reply(reply, submission, settings, OutDir(tmp_path / "out"), [])
    assert outcome.status == "failed" and outcome.evidence is not None
    assert "could not be read" in outcome.evidence.problems[-1]
    broken = rb.store_reply({"node": "n", "evidence": "{not json"}, submission, settings, OutDir(tmp_path / "o2"), [])
    assert broken.status == "failed"


def test_tasks_in_flight_are_bounded(tmp_path: Path, rubric: Rubric, embedded: DataSet,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """At most twice the cluster's CPUs (per --threads) are submitted at once; --workers sets another bound."""
    in_flight: list[int] = []

    class Counting(FakeRay):
        def wait(self, refs: list[FakeRef], num_returns: int = 1) -> tuple[list[FakeRef], list[FakeRef]]:
            in_flight.append(len(refs))
            return super().wait(refs, num_returns)

    fake = Counting(lambda job, attempt: _reply(job))
    fake.resources = {"CPU": 1.0}
    _run(tmp_path, rubric, embedded, monkeypatch, fake)
    assert in_flight == [2, 2, 1]


def test_a_task_the_cluster_can_never_run_is_an_error(tmp_path: Path, rubric: Rubric, embedded: DataSet,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRay(lambda job, attempt: pytest.fail("nothing can run"))
    fake.resources = {"CPU": 2.0}
    with pytest.raises(ClusterError, match=r"has 0 GPUs; each task asks for 0\.5"):
        _run(tmp_path, rubric, embedded, monkeypatch, fake, ray_gpus=0.5)
    assert not fake.submitted and fake.shut


def test_gpus_per_task() -> None:
    assert rb.default_gpus(ClusterOptions(backend="ray", ray_gpus=0.5), 4) == 0.5
    assert rb.default_gpus(ClusterOptions(backend="ray"), 4) == 0.25
    assert rb.default_gpus(ClusterOptions(backend="ray"), None) == 0.0


# ------------------------------------------------------------------------------ the node's own checks


def _job(tmp_path: Path, rubric: Rubric, dataset: DataSet, **changes: Any) -> dict[str, Any]:
    submission, settings = _setup(tmp_path, rubric, dataset)
    job = {"settings": settings, "sandbox": "none", "version": __version__, "gpus": 0.0, "cache_dir": None,
           "mnist_dir": None, "submission": submission, "files": {}}
    return {**job, **changes}


def test_a_node_without_the_sandbox_names_itself_and_the_fix(tmp_path: Path, rubric: Rubric, embedded: DataSet,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(mode: str) -> None:
        raise SandboxUnavailable("bubblewrap cannot run here: the 'bwrap' program is not installed. Install it")

    monkeypatch.setattr("grader.execute.select.choose_sandbox", refuse)
    reply = rb.grade_on_node(_job(tmp_path, rubric, embedded, sandbox="bubblewrap"))
    assert reply["node_error"].startswith(f"node {rb.node_name()}: bubblewrap cannot run here")
    assert "user namespaces" in reply["node_error"] and "evidence" not in reply


def test_a_node_with_another_grader_version_is_refused(tmp_path: Path, rubric: Rubric, embedded: DataSet) -> None:
    reply = rb.grade_on_node(_job(tmp_path, rubric, embedded, version="0.0.1"))
    assert "the driver grader 0.0.1" in reply["node_error"] and "same venv path on every node" in reply["node_error"]


def test_a_node_provisions_missing_data_and_refuses_different_data(tmp_path: Path, rubric: Rubric,
                                                                   embedded: DataSet) -> None:
    fresh = tmp_path / "node-cache"
    job = _job(tmp_path, rubric, embedded, cache_dir=str(fresh))
    dataset = rb._node_dataset(job)
    assert dataset.manifest["sha256"] == embedded.manifest["sha256"] and (fresh / "mnist" / "embedded").is_dir()
    altered = dataclasses.replace(embedded, manifest={**embedded.manifest, "sha256": {"x": "0"}})
    job["settings"] = dataclasses.replace(job["settings"], dataset=altered)
    reply = rb.grade_on_node(job)
    assert "differs from the driver's" in reply["node_error"]
    missing = _job(tmp_path, rubric, embedded, cache_dir=str(fresh), mnist_dir=str(tmp_path / "no-mnist"))
    missing["settings"] = dataclasses.replace(missing["settings"], dataset=dataclasses.replace(embedded,
                                                                                                profile="full"))
    reply = rb.grade_on_node(missing)
    assert "data profile 'full' is missing and could not be provisioned" in reply["node_error"]
    assert "grader data --profile full --mnist-dir" in reply["node_error"]


def test_stale_scratch_of_a_killed_task_is_swept(tmp_path: Path) -> None:
    gone = tmp_path / f"{rb._scratch_prefix()}999999999-abc"
    mine = tmp_path / f"{rb._scratch_prefix()}{os.getpid()}-def"
    other_host = tmp_path / "grader-ray-elsewhere-999999999-ghi"
    for folder in (gone, mine, other_host):
        folder.mkdir()
    rb.sweep_scratch(tmp_path)
    assert not gone.exists() and mine.exists() and other_host.exists()


def test_the_ray_address_is_checked_quickly() -> None:
    with pytest.raises(ClusterError, match="is not auto, local"):
        rb._reachable("just-a-host")
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"cannot reach the Ray cluster at ray://127\.0\.0\.1"):
        rb._reachable(f"ray://127.0.0.1:{_closed_port()}")
    assert time.monotonic() - started < 10


def test_ray_is_in_the_extras() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    import tomllib

    extras = tomllib.loads(text)["project"]["optional-dependencies"]
    assert extras["ray"] == ["ray>=2.9"]
    assert "ray>=2.9" in extras["dev"], "CI (pip install -e '.[dev]') tests the Ray backend"
