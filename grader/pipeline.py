"""The grading pipeline as library calls: what ``grader grade``, ``calibrate`` and ``check`` run.

Reads like the flow::

    intake -> provision data -> choose the sandbox -> evidence per submission (pool of workers,
    reused when current) -> score and render each student as it finishes -> class files

One submission never stops the batch, and the class files (gradebook, summary) are written
whatever happened to the students before them.
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader.backends import ClusterOptions, unprobed_sandbox
from grader.batch import Outcome, default_threads, default_workers, failure_evidence, run_batch
from grader.collect import Settings, collect_evidence, training_plan
from grader.data import DataSet, grader_secret, provision
from grader.evidence import Evidence
from grader.execute.gpu import DevicePlan, GpuSlot, plan_devices
from grader.execute.limits import Limits
from grader.execute.sandbox import Sandbox, remove_tree
from grader.execute.select import choose_sandbox
from grader.execute.workdir import install_runtime
from grader.intake import Submission, discover
from grader.marks import Marks
from grader.outdir import OutDir
from grader.outputs import Published, publish_class, publish_student
from grader.render.pdf import Printer
from grader.rubric import Rubric
from grader.shard import select_shard


class PipelineError(ValueError):
    """The run cannot start (e.g. the rubric has no thresholds for the data profile)."""


@dataclass(frozen=True)
class RunOptions:
    """How to run student code; every default in one place."""

    profile: str = "embedded"
    mnist_dir: Path | None = None
    cache_dir: Path | None = None
    sandbox: str = "bubblewrap"
    workers: int | None = None
    threads: int | None = None
    limits: Limits = field(default_factory=Limits)
    force: bool = False
    seed: int = 0
    data_path: str = "fast"
    device: str = "auto"  # auto | cpu | cuda (grader.execute.gpu)
    jobs_per_gpu: int | None = None  # students sharing one GPU [default: from its memory and the CPU cores]
    cluster: ClusterOptions = field(default_factory=ClusterOptions)  # --backend, --ray-address, --shard (backends)


@dataclass
class ClassResult:
    published: list[Published] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # students whose report could not be written, and why


def build_settings(rubric: Rubric, *, dataset: DataSet, sandbox: Sandbox, scratch: Path, runtime: Path,
                   limits: Limits, threads: int, seed: int, cache_dir: Path | None,
                   data_path: str = "fast") -> Settings:
    """The one place a run's settings are made (grade, calibrate and check share it)."""
    return Settings(dataset=dataset, work_root=scratch, runtime=install_runtime(runtime), sandbox=sandbox,
                    limits=limits, plan=training_plan(rubric), threads=threads, seed=seed,
                    secret=grader_secret(cache_dir), data_path=data_path)


def check_profile(rubric: Rubric, profile: str, rubric_name: str) -> None:
    if profile not in rubric.data_profiles:
        raise PipelineError(f"{rubric_name}: the rubric has no thresholds for data profile {profile!r} "
                            f"(it covers {', '.join(rubric.data_profiles)})")


def grade_class(paths: list[Path], rubric: Rubric, *, rubric_name: str, marks: Marks | None, out_dir: Path,
                options: RunOptions, printer: Printer | None = None,
                on_start: Callable[[int, Settings, int, DevicePlan], None] | None = None,
                on_student: Callable[[Outcome, Published | None, str], None] | None = None) -> ClassResult:
    """Collect (or reuse) evidence for every submission, publish each report as it completes, then the class files.

    ``on_start(count, settings, workers, devices)`` is called once the run is set up; ``on_student(outcome,
    published, error)`` after each student (``published`` None when the report failed, ``error`` says why).
    """
    check_profile(rubric, options.profile, rubric_name)
    devices = plan_devices(options.device, options.jobs_per_gpu)  # before anything slow: a clear error
    submissions = select_shard(discover(paths), options.cluster.shard)  # all of them without --shard
    dataset = provision(options.profile, options.cache_dir, options.mnist_dir)
    # with a cluster backend student code runs on the nodes, which check their sandbox themselves
    sandbox = unprobed_sandbox(options.sandbox) if options.cluster.remote else choose_sandbox(options.sandbox)
    out = OutDir(out_dir.resolve())  # sandboxes bind these paths: they must not depend on the cwd
    gpu_slots: list[GpuSlot | None] | None = list(devices.gpu_slots()) or None
    workers = options.workers or (len(gpu_slots) if gpu_slots else default_workers())
    if gpu_slots and len(gpu_slots) > workers:  # --workers caps the GPU shares in use, spread over the GPUs
        gpu_slots = gpu_slots[:workers]
    # shards sharing OUT each install the runtime scripts: in their own scratch, never over another's in use
    shard = options.cluster.shard
    scratch = sandbox.scratch(out.scratch if shard is None else out.scratch / f"shard-{shard.index}-of-{shard.count}")
    settings = build_settings(rubric, dataset=dataset, sandbox=sandbox, scratch=scratch / "runs",
                              runtime=scratch / "runtime", limits=options.limits,
                              threads=options.threads or default_threads(workers), seed=options.seed,
                              cache_dir=options.cache_dir, data_path=options.data_path)
    if on_start is not None:
        on_start(len(submissions), settings, workers, devices)
    result = ClassResult()

    def done(outcome: Outcome) -> None:
        assert outcome.evidence is not None
        published, error = None, ""
        try:
            published = publish_student(out, rubric, rubric_name, outcome.evidence, marks, printer=printer)
            result.published.append(published)
        except Exception as problem:  # a rendering bug must not stop the batch: the evidence is kept
            error = f"{outcome.student}: the report could not be written: {problem!r}"
            result.errors.append(error + "\n" + traceback.format_exc(limit=4))
        result.outcomes[outcome.student] = outcome
        if on_student is not None:
            on_student(outcome, published, error)

    try:
        if options.cluster.backend == "ray":
            from grader.backends.ray_backend import run_batch_ray

            run_batch_ray(submissions, settings, out, cluster=options.cluster, sandbox_mode=options.sandbox,
                          cache_dir=options.cache_dir, mnist_dir=options.mnist_dir, force=options.force, on_done=done,
                          max_in_flight=options.workers, jobs_per_gpu=options.jobs_per_gpu)
        else:
            run_batch(submissions, settings, out, workers=workers, force=options.force, on_done=done, slots=gpu_slots)
    finally:
        if options.cluster.shard is None:  # a shard leaves the class files to `grader rescore` (grader.shard)
            publish_class(out, rubric, marks, rubric_name=rubric_name, published=result.published)
        if scratch != out.scratch:  # a sandbox's own scratch space (the uid sandbox's, under /tmp), a shard's
            remove_tree(scratch)
    return result


def check_one(submission: Submission, rubric: Rubric, *, dataset: DataSet, sandbox: Sandbox, limits: Limits,
              threads: int, seed: int = 0, cache_dir: Path | None = None, data_path: str = "fast") -> Evidence:
    """Run and measure one submission in a temporary directory; never raises for the student's code."""
    scratch = sandbox.scratch(Path(tempfile.mkdtemp(prefix="grader-check-")))
    try:
        settings = build_settings(rubric, dataset=dataset, sandbox=sandbox, scratch=scratch / "runs",
                                  runtime=scratch / "runtime", limits=limits, threads=threads, seed=seed,
                                  cache_dir=cache_dir, data_path=data_path)
        try:
            return collect_evidence(submission, settings)
        except Exception as error:  # a grader bug: say so in the result rather than a traceback
            detail = traceback.format_exc(limit=6)
            return failure_evidence(submission, settings, f"internal grader error: {error!r}\n{detail}")
    finally:
        remove_tree(scratch)
