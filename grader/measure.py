"""Clean-room measurement: numbers about the trained models that the notebook cannot influence.

The trusted side (this module) prepares a fresh directory holding only the student's files,
the definitions taken from their code, the harvested tensors and the evaluation *images*; a
new sandboxed process rebuilds the classes, loads the tensors and writes logits. Here, labels
that never left the grader turn logits into accuracies, and parameter counts are read from the
tensor files themselves.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.data import SPLITS, DataSet
from grader.definitions import Definitions
from grader.evidence import Accuracy, LayerRow, ModelEvidence
from grader.execute.process import run_process
from grader.execute.sandbox import Limits, Mount, Sandbox, base_env
from grader.execute.workdir import WorkDir, make_workdir
from grader.results import (
    CleanroomResults,
    Harvest,
    HarvestedModel,
    MeasuredModel,
    ResultError,
    numel,
    read_json,
    read_logits,
    result_path,
    tensor_shapes,
)

# state_dict entries that are statistics, not parameters (BatchNorm and friends)
NORMALISATION_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class HarvestedFile:
    """One student file after its run: its definitions and what the harvest saved."""

    key: str  # the file's path in the submission
    definitions: Definitions
    harvest: Harvest | None
    work_root: Path  # the run's work dir; results are read from its .grader/out


@dataclass
class _Job:
    model: HarvestedModel
    file: HarvestedFile
    weights: Path
    id: str


def _transform_name(index: int, normalize: list[Any]) -> str:
    if index == 0:
        return "ToTensor()"
    mean, std = normalize[index - 1]
    return f"ToTensor(), Normalize({tuple(round(m, 4) for m in mean)}, {tuple(round(s, 4) for s in std)})"


def _collect_jobs(files: list[HarvestedFile]) -> tuple[list[_Job], list[ModelEvidence]]:
    jobs, failed = [], []
    for file in files:
        if file.harvest is None:
            continue
        for model in file.harvest.models:
            model_id = f"{file.key}:{model.variable}"
            if model.error or not model.weights:
                failed.append(ModelEvidence(id=model_id, file=file.key, variable=model.variable,
                                            class_name=model.class_name,
                                            error=f"the harvest could not save this model: {model.error}"))
                continue
            try:
                weights = result_path(file.work_root, model.weights)
                tensor_shapes(weights)
            except ResultError as error:
                failed.append(ModelEvidence(id=model_id, file=file.key, variable=model.variable,
                                            class_name=model.class_name, error=str(error)))
                continue
            jobs.append(_Job(model=model, file=file, weights=weights, id=model_id))
    return jobs, failed


def _accuracy(measured: MeasuredModel, room: WorkDir, dataset: DataSet,
              labels: dict[str, np.ndarray]) -> tuple[Accuracy, int]:
    """Accuracy under each input transform the run used; the one that fits the notebook's own test split wins."""
    best: tuple[float, int, dict[str, float]] | None = None
    for index_text, files in sorted(measured.logits.items(), key=lambda kv: int(kv[0])):
        scores = {}
        for split in SPLITS:
            logits = read_logits(result_path(room.root, files[split]), rows=labels[split].shape[0])
            scores[split] = float(np.mean(np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1) == labels[split]))
        candidate = (scores["test"], -int(index_text), scores)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise ResultError("the clean room returned no logits")
    scores = best[2]
    accuracy = Accuracy(
        train=round(scores["train"], 6), test=round(scores["holdout"], 6), public_test=round(scores["test"], 6),
        n_train=int(labels["train"].shape[0]), n_test=int(labels["holdout"].shape[0]),
        n_public_test=int(labels["test"].shape[0]),
    )
    return accuracy, -best[1]


def _model_evidence(job: _Job, measured: MeasuredModel | None, room: WorkDir, dataset: DataSet,
                    labels: dict[str, np.ndarray]) -> ModelEvidence:
    shapes = tensor_shapes(job.weights)
    evidence = ModelEvidence(id=job.id, file=job.file.key, variable=job.model.variable,
                             class_name=job.model.class_name, tensor_elements=sum(numel(s) for s in shapes.values()),
                             parameter_elements=sum(numel(s) for key, s in shapes.items()
                                                    if not key.endswith(NORMALISATION_BUFFERS)))
    if measured is not None and measured.ok and measured.parameters:
        trainable = [p.name for p in measured.parameters if p.trainable]
        evidence.trainable_params_source = "saved tensors of the parameters the rebuilt class marks trainable"
    else:
        trainable = job.model.trainable
        evidence.trainable_params_source = "saved tensors of the parameters the student's run marked trainable"
    missing = [name for name in trainable if name not in shapes]
    evidence.trainable_params = sum(numel(shapes[name]) for name in trainable if name in shapes)
    if missing:
        evidence.error = f"parameters missing from the saved tensors: {', '.join(missing[:5])}"
    if measured is None:
        evidence.error = "the clean room did not report on this model"
        return evidence
    if not measured.ok:
        evidence.error = measured.error or "the clean room could not measure this model"
        return evidence
    evidence.rebuilt_from = measured.rebuilt_from or ""
    if measured.summary is not None:
        evidence.layers = [LayerRow(**row.model_dump()) for row in measured.summary.rows]
        evidence.summary_input_shape = measured.summary.input_shape
        if measured.summary.error:
            evidence.error = f"torchinfo could not summarise the model: {measured.summary.error}"
    try:
        evidence.accuracy, transform_index = _accuracy(measured, room, dataset, labels)
        normalize = job.file.harvest.normalize if job.file.harvest else []
        evidence.transform = _transform_name(transform_index, list(normalize))
    except ResultError as error:
        evidence.error = str(error)
    return evidence


def measure_models(files: list[HarvestedFile], *, submission_files: tuple[Path, list[Path]], dataset: DataSet,
                   room_base: Path, runtime: Path, sandbox: Sandbox, limits: Limits, seed: int,
                   ) -> tuple[list[ModelEvidence], dict[str, list[str]], str]:
    """Measure every harvested model. Returns (models, definition problems per file, message)."""
    jobs, failed = _collect_jobs(files)
    if not jobs:
        return failed, {}, ""
    root, copied = submission_files
    room = make_workdir(room_base, root, copied)
    weights_dir = room.root / ".grader" / "weights"
    weights_dir.mkdir(parents=True)
    for number, job in enumerate(jobs):
        target = weights_dir / f"w{number}.safetensors"
        shutil.copyfile(job.weights, target)
    eval_mount = Mount(source=dataset.eval_dir, target=room.root / ".grader" / "eval")
    spec = {
        "programs": {file.key: file.definitions.to_job() for file in files},
        "models": [
            {
                "id": job.id, "program": job.file.key, "class_name": job.model.class_name,
                "weights": str(weights_dir / f"w{number}.safetensors"),
                "constructor_args": job.file.definitions.constructor_args.get(job.model.class_name, []),
                "normalize": [list(pair) for pair in (job.file.harvest.normalize if job.file.harvest else [])],
            }
            for number, job in enumerate(jobs)
        ],
        "eval": {split: str(eval_mount.target / dataset.eval_images(split).name) for split in SPLITS},
        "out_dir": str(room.out),
        "seed": seed,
    }
    job_path = room.root / ".grader" / "cleanroom.json"
    job_path.write_text(json.dumps(spec))
    mounts = [eval_mount, Mount(runtime, runtime)]
    sandbox.prepare(mounts)
    env = base_env(room.root, threads=1)
    env["CUDA_VISIBLE_DEVICES"] = ""  # measured on the CPU: deterministic, same on every machine
    launch = sandbox.wrap([sys.executable, str(runtime / "cleanroom.py"), str(job_path)], cwd=room.root,
                          mounts=mounts, env=env, limits=limits)
    process = run_process(launch, cwd=room.root, timeout_s=limits.measure_timeout_s,
                          max_output_bytes=256 << 10)
    limit_hit = launch.finish()
    message = f"the clean room hit its {limit_hit} limit" if limit_hit else ""
    try:
        results = read_json(result_path(room.root, "results.json"), CleanroomResults, "the clean-room results")
    except ResultError as error:
        results = CleanroomResults()
        said = " | ".join(process.output.strip().splitlines()[-3:])
        message = f"clean-room measurement failed: the process {process.describe_exit()}; {error}" + (
            f" ({message})" if message else "") + (f"; it printed: {said[:600]}" if said else "")
    by_id = {m.id: m for m in results.models}
    labels = {split: dataset.labels(split) for split in SPLITS}
    models = []
    for job in jobs:
        measured = by_id.get(job.id)
        evidence = _model_evidence(job, measured, room, dataset, labels)
        if measured is None and message:
            evidence.error = message
        models.append(evidence)
    problems = {key: value.get("problems", []) for key, value in results.programs.items()}
    return [*models, *failed], problems, message
