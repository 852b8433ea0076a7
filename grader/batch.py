"""Grade a class: evidence for each submission on a pool of workers, then score and render.

One failure never stops the batch: a submission whose run breaks the grader itself still gets an
evidence file saying so. Evidence is written atomically as each submission finishes, and reused
on the next run when the submission, data profile, training plan and grader version are
unchanged, so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from grader import __version__
from grader.collect import Settings, collect_evidence, environment, plan_sha256, refused_files, work_name
from grader.evidence import Evidence, read_evidence, write_evidence
from grader.execute.cgroups import Cgroup
from grader.intake import Submission
from grader.results import ResultError, result_path

Status = Literal["graded", "reused", "failed"]


@dataclass
class Outcome:
    student: str
    status: Status
    evidence: Evidence | None = None
    message: str = ""


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed" or (o.evidence and o.evidence.status != "ok")]


def student_dir(out_dir: Path, student: str) -> Path:
    return out_dir / student


def evidence_path(out_dir: Path, student: str) -> Path:
    return student_dir(out_dir, student) / "evidence.json"


def reusable(path: Path, submission: Submission, settings: Settings) -> Evidence | None:
    """Stored evidence for exactly this submission and set-up, or None."""
    try:
        evidence = read_evidence(path)
    except (OSError, ValueError):
        return None
    same = (
        evidence.submission_sha256 == submission.sha256
        and evidence.profile == settings.dataset.profile
        and evidence.data.get("sha256") == settings.dataset.manifest["sha256"]
        and evidence.plan_sha256 == plan_sha256(settings.plan)
        and evidence.grader_version == __version__
        and evidence.environment.sandbox == settings.sandbox.name
    )
    return evidence if same else None


def _keep_weights(evidence: Evidence, work: Path, target: Path) -> None:
    """Copy the harvested tensors out of the work dirs before they are removed (for audit)."""
    shutil.rmtree(target, ignore_errors=True)
    for file in {model.file for model in evidence.models}:
        work_root = work / evidence.student / work_name(file)
        try:
            models = result_path(work_root, "models")
            names = sorted(p.name for p in models.glob("*.safetensors")) if models.is_dir() else []
        except ResultError:
            continue
        for name in names:
            try:
                source = result_path(work_root, f"models/{name}")
            except ResultError:
                continue
            if source.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target / f"{file}__{Path(name).stem}.safetensors".replace("/", "__"))


def failure_evidence(submission: Submission, settings: Settings, message: str) -> Evidence:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Evidence(
        grader_version=__version__, student=submission.student, submission_sha256=submission.sha256,
        plan_sha256=plan_sha256(settings.plan), data=settings.dataset.summary(),
        environment=environment(settings.sandbox.name, settings.threads), status="error",
        problems=[*submission.problems, message], files=refused_files(submission), started_at=now,
        duration_s=0.0, seed=settings.seed,
    )


def _die_with_the_grader() -> None:
    """Worker initializer: a worker (and so its sandboxes, which die with their parent) ends with the grader."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    Cgroup.sweep()


def collect_one(submission: Submission, settings: Settings, out_dir: Path) -> Evidence:
    """Worker entry point: collect, write atomically, clean up. Never raises."""
    try:
        evidence = collect_evidence(submission, settings)
    except Exception as error:  # a grader bug must not stop the batch
        detail = traceback.format_exc(limit=6)
        evidence = failure_evidence(submission, settings, f"internal grader error: {error!r}\n{detail}")
    write_evidence(evidence, evidence_path(out_dir, submission.student))
    try:
        _keep_weights(evidence, settings.work_root, student_dir(out_dir, submission.student) / "models")
    finally:
        shutil.rmtree(settings.work_root / submission.student, ignore_errors=True)
    return evidence


def run_batch(submissions: list[Submission], settings: Settings, out_dir: Path, *, workers: int, force: bool,
              on_done: Callable[[Outcome], None]) -> BatchResult:
    result = BatchResult()
    todo: list[Submission] = []
    for submission in submissions:
        stored = None if force else reusable(evidence_path(out_dir, submission.student), submission, settings)
        if stored is not None:
            outcome = Outcome(submission.student, "reused", stored)
            result.outcomes.append(outcome)
            on_done(outcome)
        else:
            todo.append(submission)
    context = multiprocessing.get_context("spawn")
    attempts: dict[str, int] = {}
    while todo:
        # after a worker died, suspects are retried one at a time so only the culprit fails
        isolated = any(attempts.get(s.student, 0) for s in todo)
        batch, todo = (todo[:1], todo[1:]) if isolated else (todo, [])
        pool_size = 1 if isolated else max(1, min(workers, len(batch)))
        with ProcessPoolExecutor(max_workers=pool_size, mp_context=context, initializer=_die_with_the_grader) as pool:
            running: dict[Future[Evidence], Submission] = {
                pool.submit(collect_one, s, settings, out_dir): s for s in batch
            }
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    submission = running.pop(future)
                    attempts[submission.student] = attempts.get(submission.student, 0) + 1
                    try:
                        outcome = Outcome(submission.student, "graded", future.result())
                    except BrokenProcessPool:
                        if attempts[submission.student] < 2:
                            todo.append(submission)
                            continue
                        evidence = failure_evidence(submission, settings,
                                                    "the grading worker died while collecting this submission")
                        write_evidence(evidence, evidence_path(out_dir, submission.student))
                        outcome = Outcome(submission.student, "failed", evidence, "grading worker died")
                    result.outcomes.append(outcome)
                    on_done(outcome)
    return result


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)
