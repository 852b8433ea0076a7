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
import signal
import sys
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Literal

from grader import __version__
from grader.collect import Settings, collect_evidence, environment, plan_sha256, refused_files
from grader.evidence import Evidence, read_evidence, write_evidence
from grader.execute.cgroups import Cgroup
from grader.execute.gpu import GpuSlot
from grader.execute.sandbox import remove_tree
from grader.intake import Submission
from grader.outdir import OutDir

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
    on_done: Callable[[Outcome], None] | None = None

    def finish(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if self.on_done is not None:
            self.on_done(outcome)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed" or (o.evidence and o.evidence.status != "ok")]


def reusable(path: Path, submission: Submission, settings: Settings) -> Evidence | None:
    """Stored evidence of a finished run of exactly this submission and set-up, or None.

    Evidence of a run that could not finish (status 'error': an internal error, a worker that
    died, nothing to grade) is never reused: the next ``grade`` tries again.
    """
    try:
        evidence = read_evidence(path)
    except (OSError, ValueError):
        return None
    same = (
        evidence.status == "ok"
        and evidence.submission_sha256 == submission.sha256
        and evidence.profile == settings.dataset.profile
        and evidence.data.get("sha256") == settings.dataset.manifest["sha256"]
        and evidence.plan_sha256 == plan_sha256(settings.plan)
        and evidence.grader_version == __version__
        and evidence.environment.sandbox == settings.sandbox.name
    )
    return evidence if same else None


def failure_evidence(submission: Submission, settings: Settings, message: str) -> Evidence:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Evidence(
        grader_version=__version__, student=submission.student, submission_sha256=submission.sha256,
        plan_sha256=plan_sha256(settings.plan), data=settings.dataset.summary(),
        environment=environment(settings.sandbox.name, settings.threads, settings.gpu), status="error",
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


def publish_weights(staged: Path, target: Path) -> None:
    """Replace the student's ``models/`` with the weights this run kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    remove_tree(old)
    if target.exists() or target.is_symlink():
        target.rename(old)
    if staged.is_dir():
        staged.rename(target)
    remove_tree(old)


def collect_one(submission: Submission, settings: Settings, out: OutDir) -> None:
    """Worker entry point: collect, write the evidence atomically, clean up. Never raises for the student.

    The evidence goes to the student's folder; the parent reads it from there.
    """
    folder = out.student(submission.student)
    try:
        evidence = collect_evidence(submission, settings)
    except Exception as error:  # a grader bug must not stop the batch
        detail = traceback.format_exc(limit=6)
        evidence = failure_evidence(submission, settings, f"internal grader error: {error!r}\n{detail}")
    try:
        publish_weights(settings.work_root / submission.student / "models", folder.models)
    except OSError as error:
        evidence.problems.append(f"the trained weights could not be kept: {error.strerror}")
    finally:
        write_evidence(evidence, folder.evidence)
        remove_tree(settings.work_root / submission.student)


def _read_outcome(submission: Submission, settings: Settings, out: OutDir, status: Status) -> Outcome:
    path = out.student(submission.student).evidence
    try:
        return Outcome(submission.student, status, read_evidence(path))
    except (OSError, ValueError) as error:
        evidence = failure_evidence(submission, settings, f"the grading worker's evidence could not be read: {error}")
        write_evidence(evidence, path)
        return Outcome(submission.student, "failed", evidence, "unreadable evidence")


def _run_pool(pending: list[Submission], free: list[GpuSlot | None], settings: Settings, out: OutDir,
              attempts: dict[str, int], context: BaseContext, finish: Callable[[Outcome], None]) -> list[Submission]:
    """One pool, one student per free slot at a time; returns the students to retry after a worker died.

    ``pending`` keeps the students never started when the pool broke.
    """
    suspects: list[Submission] = []
    broken = False
    with ProcessPoolExecutor(max_workers=len(free), mp_context=context, initializer=_die_with_the_grader) as pool:
        running: dict[Future[None], tuple[Submission, GpuSlot | None]] = {}
        while True:
            while pending and free and not broken:
                submission, slot = pending.pop(0), free.pop(0)
                own = settings if slot is None else replace(settings, gpu=slot)
                running[pool.submit(collect_one, submission, own, out)] = (submission, slot)
            if not running:
                return suspects
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                submission, slot = running.pop(future)
                free.append(slot)
                attempts[submission.student] = attempts.get(submission.student, 0) + 1
                try:
                    future.result()
                    outcome = _read_outcome(submission, settings, out, "graded")
                except BrokenProcessPool:
                    broken = True
                    if attempts[submission.student] < 2:
                        suspects.append(submission)
                        continue
                    evidence = failure_evidence(submission, settings,
                                                "the grading worker died while collecting this submission")
                    write_evidence(evidence, out.student(submission.student).evidence)
                    outcome = Outcome(submission.student, "failed", evidence, "grading worker died")
                except Exception as error:  # the worker's own error handling failed (disk full, ...)
                    evidence = failure_evidence(submission, settings, f"the grading worker failed: {error!r}")
                    with contextlib.suppress(OSError):
                        write_evidence(evidence, out.student(submission.student).evidence)
                    outcome = Outcome(submission.student, "failed", evidence, str(error))
                finish(outcome)


def start_batch(submissions: list[Submission], settings: Settings, out: OutDir, *, force: bool,
                on_done: Callable[[Outcome], None]) -> tuple[BatchResult, list[Submission]]:
    """The result every backend fills in (``result.finish`` records and reports an outcome), with the
    students whose stored evidence is current already finished as reused; returns the rest to grade."""
    result = BatchResult(on_done=on_done)
    todo: list[Submission] = []
    for submission in submissions:
        stored = None if force else reusable(out.student(submission.student).evidence, submission, settings)
        if stored is not None:
            result.finish(Outcome(submission.student, "reused", stored))
        else:
            todo.append(submission)
    return result, todo


def run_batch(submissions: list[Submission], settings: Settings, out: OutDir, *, workers: int, force: bool,
              on_done: Callable[[Outcome], None], slots: list[GpuSlot | None] | None = None) -> BatchResult:
    """Evidence for every submission not already graded, ``workers`` at a time.

    ``slots`` (from ``DevicePlan.gpu_slots``) are the GPU shares: each running student holds one, and
    gets it back when done, so no GPU ever has more than its ``--jobs-per-gpu`` students.
    """
    result, todo = start_batch(submissions, settings, out, force=force, on_done=on_done)
    all_slots: list[GpuSlot | None] = list(slots) if slots else [None] * workers
    context = multiprocessing.get_context("spawn")
    attempts: dict[str, int] = {}
    while todo:
        # after a worker died, suspects are retried one at a time so only the culprit fails
        isolated = any(attempts.get(s.student, 0) for s in todo)
        pending, todo = (todo[:1], todo[1:]) if isolated else (todo, [])
        free = all_slots[:1] if isolated else all_slots[:max(1, min(len(all_slots), len(pending)))]
        suspects = _run_pool(pending, free, settings, out, attempts, context, result.finish)
        todo = [*suspects, *pending, *todo]  # suspects first: isolation ends as soon as they are cleared
    return result


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def default_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)
