"""Collect the evidence for one submission: execute each file, harvest, measure, parse claims.

Reads like the flow it runs::

    intake (done) -> run each notebook/module in the sandbox -> take definitions with ast
    -> measure the harvested tensors in a clean room -> parse printed accuracies -> evidence
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib.metadata
import json
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from grader import __version__
from grader.channel import MAX_WEIGHTS_BYTES, Harvest, ResultError, read_json, read_untrusted, result_path
from grader.claims import check_claims, parse_claims
from grader.data import DataSet
from grader.definitions import extract
from grader.evidence import (
    Cell,
    Claim,
    DataPathUsed,
    Environment,
    Evidence,
    FileEvidence,
    LoggedCurve,
    ModelEvidence,
)
from grader.execute.cgroups import Cgroup
from grader.execute.gpu import GpuSlot
from grader.execute.limits import Limits, Mount
from grader.execute.magics import as_python
from grader.execute.module import run_module
from grader.execute.notebook import RunResult, run_notebook
from grader.execute.sandbox import Sandbox
from grader.execute.workdir import make_workdir
from grader.fsutil import atomic_write_bytes
from grader.intake import Submission, SubmissionFile
from grader.measure import CleanRoom, HarvestedFile
from grader.notebook_io import read_notebook
from grader.outdir import MAX_ID_CHARS
from grader.rubric import Rubric

MAX_KEPT_WEIGHTS_BYTES = 64 << 20  # trained weights kept beside a student's report, in all
MAX_KEPT_MODELS = 20


@dataclass(frozen=True)
class Settings:
    dataset: DataSet
    work_root: Path  # scratch: <work_root>/<student>/ holds one student's runs
    runtime: Path
    sandbox: Sandbox
    limits: Limits
    plan: list[dict[str, Any]]
    threads: int = 1
    seed: int = 0
    claim_tolerance: float = 0.03
    secret: bytes = b""  # seeds the clean room's invisible noise (grader.perturb); never enters a sandbox
    data_path: str = "fast"  # how torchvision's MNIST serves the student's process (inside/fastdata.py)
    gpu: GpuSlot | None = None  # this student's share of a GPU (batch.py hands them out); None: the CPU


def training_plan(rubric: Rubric) -> list[dict[str, Any]]:
    """What the module runner trains: the rubric's models with their hyperparameters."""
    return [
        {"key": key, "class_name": spec.class_name, "trainable_params": spec.trainable_params,
         "convolutional": spec.convolutional, "training": spec.training.model_dump()}
        for key, spec in rubric.models.items()
    ]


def plan_sha256(plan: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


@functools.cache
def environment(sandbox: str, threads: int, gpu: GpuSlot | None = None) -> Environment:
    """What ran the student's code: versions, and the GPU share (from nvidia-smi, not from the student)."""
    cuda = None
    if gpu is not None:  # torch takes seconds to import: only when its CUDA version is worth saying
        import torch  # the grading environment's torch; not student code

        cuda = torch.version.cuda
    return Environment(
        python=platform.python_version(), torch=importlib.metadata.version("torch"),
        torchvision=importlib.metadata.version("torchvision"), platform=platform.platform(terse=True),
        device=f"cuda:{gpu.gpu.index} ({gpu.gpu.name})" if gpu else "cpu", cuda=cuda, threads=threads,
        sandbox=sandbox, gpu_driver=gpu.gpu.driver if gpu else None,
        gpu_memory_cap_gib=round(gpu.memory_cap_bytes / (1 << 30), 2) if gpu else None,
    )


@functools.cache
def memory_cap() -> str:
    return Cgroup.probe()


def _claims(cells: list[Cell]) -> list[Claim]:
    claims: list[Claim] = []
    for cell in cells:
        if cell.cell_type == "markdown":
            claims += parse_claims(cell.source, "markdown", cell.index)
        elif cell.output_text:
            claims += parse_claims(cell.output_text, "output", cell.index)
    return claims


def _definitions_source(file: SubmissionFile, notebook: nbformat.NotebookNode | None) -> list[tuple[str, str]]:
    if notebook is None:
        return [(file.relative, file.path.read_text(encoding="utf-8"))]
    return [
        (f"{file.relative}, cell {index}", as_python(cell.source))
        for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
    ]


def _run_file(number: int, file: SubmissionFile, submission: Submission, settings: Settings
              ) -> tuple[FileEvidence, HarvestedFile]:
    work = make_workdir(settings.work_root / submission.student / f"f{number}", submission.root, submission.copied)
    mounts = [*work.data_mounts(settings.dataset.public_dir), Mount(settings.runtime, settings.runtime)]
    notebook = read_notebook(file.path, file.relative).notebook if file.kind == "notebook" else None
    if notebook is not None:
        result: RunResult = run_notebook(notebook, work, runtime=settings.runtime, sandbox=settings.sandbox,
                                         mounts=mounts, limits=settings.limits, threads=settings.threads,
                                         data_path=settings.data_path, gpu=settings.gpu)
    else:
        result = run_module(file.relative, file.path.read_text(encoding="utf-8"), work, runtime=settings.runtime,
                            sandbox=settings.sandbox, mounts=mounts, limits=settings.limits,
                            threads=settings.threads, plan=settings.plan, data_path=settings.data_path,
                            gpu=settings.gpu)
    message = result.message
    harvest = None
    try:
        harvest = read_json(result_path(work.root, "harvest.json"), Harvest, "the harvest of trained models")
    except ResultError as error:
        if result.status == "completed":
            message = (message + "; " if message else "") + str(error)
    definitions = extract(_definitions_source(file, notebook))
    evidence = FileEvidence(
        path=file.relative, kind=file.kind, sha256=file.sha256, status=result.status, message=message,
        duration_s=result.duration_s, cells=result.cells, claims=_claims(result.cells),
        definition_problems=[f"not valid Python, skipped: {u}" for u in definitions.unparsable],
        curves=[LoggedCurve(**curve.model_dump()) for curve in harvest.curves] if harvest else None,
        repairs=list(file.repairs),
        data_path=DataPathUsed(**harvest.data_path.model_dump()) if harvest and harvest.data_path else None,
    )
    return evidence, HarvestedFile(key=file.relative, definitions=definitions, harvest=harvest, work=work)


def refused_files(submission: Submission) -> list[FileEvidence]:
    """Files intake refused, as evidence with status 'invalid' and the reason."""
    kinds = {".ipynb": "notebook", ".py": "module"}
    return [
        FileEvidence(path=refusal.path, kind=kinds.get(Path(refusal.path).suffix, "other"),  # type: ignore[arg-type]
                     sha256="", status="invalid", message=refusal.reason)
        for refusal in submission.refused
    ]


def collect_evidence(submission: Submission, settings: Settings) -> Evidence:
    started, clock = dt.datetime.now(dt.UTC), time.monotonic()
    problems = list(submission.problems)
    if not submission.files:
        problems.append("nothing to grade: no notebook (.ipynb) or module (.py) could be accepted")
    files, harvested = refused_files(submission), []
    limits = settings.limits
    # started now, so that its imports overlap the student's run; measures once the run is over
    room = CleanRoom(submission_files=(submission.root, submission.copied), dataset=settings.dataset,
                     room_base=settings.work_root / submission.student / "cleanroom", runtime=settings.runtime,
                     sandbox=settings.sandbox, limits=limits, seed=settings.seed, secret=settings.secret,
                     wait_s=len(submission.files) * (limits.total_timeout_s + limits.harvest_timeout_s + 180))
    try:
        for number, file in enumerate(submission.files, start=1):
            evidence, harvest = _run_file(number, file, submission, settings)
            files.append(evidence)
            harvested.append(harvest)
        models, definition_problems, message = room.measure(harvested)
    finally:
        room.close()
    keep_weights(harvested, models, settings.work_root / submission.student / "models")
    if message:
        problems.append(message)
    for record in files:
        if record.status == "invalid":
            continue
        record.definition_problems += definition_problems.get(record.path, [])
        record.claim_checks = check_claims(record.claims, [m for m in models if m.file == record.path],
                                           settings.claim_tolerance)
    return Evidence(
        grader_version=__version__, student=submission.student, submission_sha256=submission.sha256,
        plan_sha256=plan_sha256(settings.plan), data=settings.dataset.summary(),
        environment=environment(settings.sandbox.name, settings.threads, settings.gpu),
        status="ok" if submission.files else "error", problems=problems, files=files, models=models,
        seed=settings.seed, limits=settings.limits.describe(memory_cap()),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - clock, 3),
    )


def _safe_part(text: str, limit: int) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("._")[:limit] or "x"


def keep_weights(harvested: list[HarvestedFile], models: list[ModelEvidence], target: Path) -> None:
    """Copy the harvested tensors the evidence names into ``target`` (for audit), bounded in count and size.

    Only the files each harvest listed are copied, through the untrusted reader (no links, regular
    files); names are the grader's own. ``ModelEvidence.saved_as`` records each file's name.
    """
    by_id = {model.id: model for model in models}
    budget, kept = MAX_KEPT_WEIGHTS_BYTES, 0
    for file in harvested:
        for model in file.harvest.models if file.harvest else []:
            evidence = by_id.get(f"{file.key}:{model.variable}")
            if evidence is None or not model.weights or kept >= MAX_KEPT_MODELS:
                continue
            try:
                data = read_untrusted(result_path(file.work.root, model.weights), min(budget, MAX_WEIGHTS_BYTES),
                                      "weights file")
            except ResultError:
                continue
            name = f"{kept:02d}-{_safe_part(Path(file.key).stem, 40)}-{_safe_part(model.variable, 40)}.safetensors"
            atomic_write_bytes(target / name[: MAX_ID_CHARS * 2], data)
            evidence.saved_as = name[: MAX_ID_CHARS * 2]
            budget -= len(data)
            kept += 1
