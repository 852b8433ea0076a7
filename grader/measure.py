"""Clean-room measurement: numbers about the trained models that the notebook cannot influence.

The trusted side (this module) prepares a fresh directory holding only the student's Python
files, the definitions taken from their code, copies of the harvested tensors and the
evaluation *images*; a new sandboxed process rebuilds the classes, loads the tensors and writes
logits into files whose names this module chose. Here, labels that never left the grader turn
logits into accuracies, and parameter counts are read from the tensor files themselves.

The clean room runs student code too, so everything it reports is checked or bounded: only the
logits asked for are read (each size-capped), tensor counts come from the weights files, and a
model whose answers collapse on invisibly changed digits, or that scores far above chance
without its trained weights, is marked as looking answers up.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.channel import (
    MAX_WEIGHTS_BYTES,
    CleanroomResults,
    Harvest,
    HarvestedModel,
    MeasuredModel,
    ResultError,
    numel,
    read_json,
    read_logits,
    read_untrusted,
    result_path,
    tensor_shapes,
)
from grader.data import SPLITS, DataSet
from grader.definitions import Definitions
from grader.evidence import Accuracy, LayerRow, LookupCheck, ModelEvidence
from grader.execute.gpu import gpu_env
from grader.execute.limits import Limits, Mount
from grader.execute.process import Deadline, ProcessResult, run_process
from grader.execute.sandbox import Sandbox, base_env
from grader.execute.workdir import WorkDir, make_workdir
from grader.fsutil import atomic_write_bytes
from grader.idx import encode_images, read_images
from grader.perturb import COLLAPSE, TRAIN_SUBSET, noisy_copy, seed_for

STATISTICS = ("running_mean", "running_var", "num_batches_tracked")  # normalisation layers' buffers
MAX_STATISTICS_PER_LAYER = 4096  # channels of one normalisation layer
MAX_CLASSES = 1000  # columns of a logits file the grader will read
MAX_SUPPORT_BYTES = 256 << 10  # a helper module copied into the clean room
MAX_MEASURED_WEIGHTS_BYTES = 256 << 20  # all the models of one submission
EVAL_SPLITS = (*SPLITS, "train_noisy", "holdout_noisy")


@dataclass
class HarvestedFile:
    """One student file after its run: its definitions and what the harvest saved."""

    key: str  # the file's path in the submission
    definitions: Definitions
    harvest: Harvest | None
    work: WorkDir  # the run's directories; results are read from ``work.out``


@dataclass
class _Job:
    model: HarvestedModel
    file: HarvestedFile
    shapes: dict[str, tuple[int, ...]]
    weights: bytes
    id: str
    number: int = 0
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # transform -> split -> file name
    untrained: dict[str, str] = field(default_factory=dict)  # transform -> file name


def _add_error(evidence: ModelEvidence, message: str) -> None:
    """Every problem is kept, in the order found."""
    evidence.error = f"{evidence.error}; {message}" if evidence.error else message


def _transform_name(index: int, normalize: list[Any]) -> str:
    if index == 0:
        return "ToTensor()"
    mean, std = normalize[index - 1]
    return f"ToTensor(), Normalize({tuple(round(m, 4) for m in mean)}, {tuple(round(s, 4) for s in std)})"


def _collect_jobs(files: list[HarvestedFile]) -> tuple[list[_Job], list[ModelEvidence]]:
    """The models the harvests listed, with their tensors read once (capped, no links followed)."""
    jobs: list[_Job] = []
    failed: list[ModelEvidence] = []
    budget = MAX_MEASURED_WEIGHTS_BYTES
    for file in files:
        if file.harvest is None:
            continue
        for model in file.harvest.models:
            model_id = f"{file.key}:{model.variable}"
            if model.error or not model.weights:
                failed.append(ModelEvidence(id=model_id, file=file.key, variable=model.variable,
                                            class_name=model.class_name, trained=model.trained,
                                            error=f"the harvest could not save this model: {model.error}"))
                continue
            try:
                path = result_path(file.work.root, model.weights)
                shapes = tensor_shapes(path)
                if budget <= 0:
                    raise ResultError(f"not measured: the submission's models pass {MAX_MEASURED_WEIGHTS_BYTES:,} "
                                      "bytes of tensors in all")
                weights = read_untrusted(path, min(budget, MAX_WEIGHTS_BYTES), f"weights file {path.name}")
                budget -= len(weights)
            except ResultError as error:
                failed.append(ModelEvidence(id=model_id, file=file.key, variable=model.variable,
                                            class_name=model.class_name, trained=model.trained, error=str(error)))
                continue
            jobs.append(_Job(model=model, file=file, shapes=shapes, weights=weights, id=model_id,
                             number=len(jobs)))
    return jobs, failed


def _eval_images(dataset: DataSet, secret: bytes, directory: Path) -> dict[str, Path]:
    """The evaluation images the clean room sees: the profile's, and invisibly changed copies."""
    paths = {split: dataset.eval_images(split) for split in SPLITS}
    train = read_images(paths["train"])[:TRAIN_SUBSET]
    holdout = read_images(paths["holdout"])
    for split, images in (("train_noisy", train), ("holdout_noisy", holdout)):
        target = directory / f"{split}-images-idx3-ubyte"
        atomic_write_bytes(target, encode_images(noisy_copy(images, seed_for(secret, split))))
        paths[split] = target
    return paths


def _accuracy(measured: MeasuredModel, job: _Job, room: WorkDir, labels: dict[str, np.ndarray]
              ) -> tuple[Accuracy, int, dict[str, float]]:
    """Accuracy under each input transform the run used; the one that fits the notebook's own test split wins.

    Returns the accuracy, the transform's index and the accuracies of that transform on the other
    evaluations (noisy copies, untrained instance).
    """
    rows = {split: labels[split].shape[0] for split in EVAL_SPLITS}
    best: tuple[float, int, dict[str, float]] | None = None
    for index_text, names in sorted(job.outputs.items(), key=lambda kv: int(kv[0])):
        scores = {}
        for split, name in names.items():
            logits = read_logits(result_path(room.root, name), rows=rows[split],
                                 cap=rows[split] * MAX_CLASSES * 8 + 4096)
            scores[split] = float(np.mean(np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1) == labels[split]))
        candidate = (scores["test"], -int(index_text), scores)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise ResultError("the clean room returned no logits")
    scores, index = best[2], -best[1]
    accuracy = Accuracy(
        train=round(scores["train"], 6), test=round(scores["holdout"], 6), public_test=round(scores["test"], 6),
        n_train=int(labels["train"].shape[0]), n_test=int(labels["holdout"].shape[0]),
        n_public_test=int(labels["test"].shape[0]),
    )
    return accuracy, index, scores


def _lookup_check(job: _Job, index: int, scores: dict[str, float], room: WorkDir, labels: dict[str, np.ndarray],
                  train_logits_subset: float) -> LookupCheck:
    check = LookupCheck(perturbed_test=round(scores["holdout_noisy"], 6), perturbed_train=round(
        scores["train_noisy"], 6), clean_train_subset=round(train_logits_subset, 6))
    reasons = []
    try:
        logits = read_logits(result_path(room.root, job.untrained[str(index)]), rows=labels["holdout"].shape[0],
                             cap=labels["holdout"].shape[0] * MAX_CLASSES * 8 + 4096)
        check.untrained_test = round(float(np.mean(np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1)
                                                   == labels["holdout"])), 6)
    except (ResultError, KeyError) as error:
        reasons.append(f"the untrained instance could not be measured ({error})")
    drops = {"test": scores["holdout"] - scores["holdout_noisy"], "train": train_logits_subset - scores["train_noisy"]}
    for split, drop in drops.items():
        if drop > COLLAPSE:
            reasons.append(f"its {split} accuracy falls by {drop:.3f} on the same digits changed by a few grey "
                           "levels (a real model barely moves)")
    if check.untrained_test is not None and check.untrained_test > 0.5:
        reasons.append(f"a freshly initialised instance of its class, without the trained weights, scores "
                       f"{check.untrained_test:.3f}")
    if any(not r.startswith("the untrained") for r in reasons):
        check.suspected = "the model appears to look answers up: " + "; ".join(reasons)
    elif reasons:
        check.note = "; ".join(reasons)
    return check


def _statistics_exempt(shapes: dict[str, tuple[int, ...]], measured: MeasuredModel | None) -> set[str]:
    """Keys of normalisation statistics the rebuilt model really has (checked against their shapes)."""
    if measured is None or not measured.ok:
        return set()
    exempt: set[str] = set()
    for key in measured.normalisation_buffers:
        prefix, _, name = key.rpartition(".")
        shape = shapes.get(key)
        if shape is None or name not in STATISTICS:
            continue
        siblings = [shapes.get(f"{prefix}.{s}" if prefix else s) for s in ("running_mean", "running_var")]
        counter = name == "num_batches_tracked" and shape == ()
        statistic = len(shape) == 1 and shape[0] <= MAX_STATISTICS_PER_LAYER and siblings[0] == siblings[1] == shape
        if counter or statistic:
            exempt.add(key)
    return exempt


def _model_evidence(job: _Job, measured: MeasuredModel | None, room: WorkDir, labels: dict[str, np.ndarray],
                    message: str) -> ModelEvidence:
    shapes = job.shapes
    evidence = ModelEvidence(id=job.id, file=job.file.key, variable=job.model.variable,
                             class_name=job.model.class_name, trained=job.model.trained,
                             tensor_elements=sum(numel(s) for s in shapes.values()))
    if measured is not None and measured.ok and measured.parameters:
        trainable = [p.name for p in measured.parameters if p.trainable]
        evidence.trainable_params_source = "saved tensors of the parameters the rebuilt class marks trainable"
    else:
        trainable = job.model.trainable
        evidence.trainable_params_source = "saved tensors of the parameters the student's run marked trainable"
    exempt = _statistics_exempt(shapes, measured)
    evidence.parameter_elements = sum(numel(s) for key, s in shapes.items() if key not in exempt)
    evidence.extra_tensors = sorted(key for key in shapes if key not in exempt and key not in trainable)[:20]
    missing = [name for name in trainable if name not in shapes]
    evidence.trainable_params = sum(numel(shapes[name]) for name in trainable if name in shapes)
    if missing:
        _add_error(evidence, f"parameters missing from the saved tensors: {', '.join(missing[:5])}")
    if measured is None:
        _add_error(evidence, message or "the clean room did not report on this model")
        return evidence
    if not measured.ok:
        _add_error(evidence, measured.error or "the clean room could not measure this model")
        return evidence
    evidence.rebuilt_from = measured.rebuilt_from or ""
    if measured.summary is not None:
        evidence.layers = [LayerRow(**row.model_dump()) for row in measured.summary.rows]
        evidence.summary_input_shape = measured.summary.input_shape
        if measured.summary.error:
            _add_error(evidence, f"torchinfo could not summarise the model: {measured.summary.error}")
    try:
        evidence.accuracy, index, scores = _accuracy(measured, job, room, labels)
        normalize = job.file.harvest.normalize if job.file.harvest else []
        evidence.transform = _transform_name(index, list(normalize))
        subset = _subset_accuracy(job, index, room, labels)
        evidence.lookup = _lookup_check(job, index, scores, room, labels, subset)
    except ResultError as error:
        _add_error(evidence, str(error))
    return evidence


def _subset_accuracy(job: _Job, index: int, room: WorkDir, labels: dict[str, np.ndarray]) -> float:
    """Clean training accuracy on the digits the noisy training copy was made from."""
    rows = labels["train"].shape[0]
    logits = read_logits(result_path(room.root, job.outputs[str(index)]["train"]), rows=rows,
                         cap=rows * MAX_CLASSES * 8 + 4096)[:TRAIN_SUBSET]
    return float(np.mean(np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1) == labels["train"][:TRAIN_SUBSET]))


def _support_files(root: Path, copied: list[Path]) -> list[Path]:
    """What the clean room gets of the submission: its small Python files (helper modules), nothing else."""
    return [p for p in copied if p.suffix == ".py" and p.stat().st_size <= MAX_SUPPORT_BYTES]


class CleanRoom:
    """The clean-room sandbox of one submission, started before its notebooks run.

    Its start (Python, torch, the evaluation images) overlaps the student's run; the models to
    measure are handed over afterwards (``measure``) as a job file that appears in its read-only
    job folder. It waits at most ``wait_s`` for that; the measurement itself is bounded by
    ``limits.measure_timeout_s`` from the hand-over. ``close`` ends it whatever happened.
    """

    def __init__(self, *, submission_files: tuple[Path, list[Path]], dataset: DataSet, room_base: Path,
                 runtime: Path, sandbox: Sandbox, limits: Limits, seed: int, secret: bytes, wait_s: float) -> None:
        root, copied = submission_files
        self.dataset, self.limits = dataset, limits
        self.room = room = make_workdir(room_base, root, _support_files(root, copied))
        self.weights_dir = room.jobs / "weights"
        self.weights_dir.mkdir()
        eval_paths = _eval_images(dataset, secret, room.jobs)
        eval_mount = Mount(source=dataset.eval_dir, target=room.jobs / "eval")
        eval_paths.update({split: eval_mount.target / dataset.eval_images(split).name for split in SPLITS})
        self.job_path = room.jobs / "models.json"  # written by measure(); the room waits for it
        start = {"eval": {split: str(path) for split, path in eval_paths.items()}, "out_dir": str(room.out),
                 "seed": seed, "job": str(self.job_path), "wait_s": wait_s}
        start_path = room.job_file("cleanroom.json")
        start_path.write_text(json.dumps(start))
        mounts = [*room.job_mounts(), eval_mount, Mount(runtime, runtime)]
        sandbox.prepare(mounts)
        env = base_env(room.root, threads=1)
        env.update(gpu_env(None))  # measured on the CPU: deterministic, same on every machine
        self.launch = sandbox.wrap([sys.executable, str(runtime / "cleanroom.py"), str(start_path)], cwd=room.root,
                                   mounts=mounts, env=env, limits=limits)
        self.deadline = Deadline(time.monotonic() + wait_s + limits.measure_timeout_s)
        self.process: ProcessResult | None = None
        self.limit_hit: str | None = None
        self.finished = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.process = run_process(self.launch, cwd=self.room.root, timeout_s=float("inf"),
                                   max_output_bytes=256 << 10, deadline=self.deadline)

    def _hand_over(self, job: dict[str, Any]) -> None:
        self.deadline.at = min(self.deadline.at, time.monotonic() + self.limits.measure_timeout_s)
        atomic_write_bytes(self.job_path, json.dumps(job).encode())

    def close(self) -> None:
        """End the room: an empty job if it still waits, then a kill at its deadline."""
        if self.thread.is_alive() and not self.job_path.exists():
            self._hand_over({"programs": {}, "models": []})
            self.deadline.at = min(self.deadline.at, time.monotonic() + 30)
        self._finish()

    def _finish(self) -> None:
        self.thread.join()
        if not self.finished:
            self.finished = True
            self.limit_hit = self.launch.finish()

    def measure(self, files: list[HarvestedFile]) -> tuple[list[ModelEvidence], dict[str, list[str]], str]:
        """Measure every harvested model. Returns (models, definition problems per file, message)."""
        jobs, failed = _collect_jobs(files)
        if not jobs:
            self.close()
            return failed, {}, ""
        room = self.room
        for job in jobs:
            atomic_write_bytes(self.weights_dir / f"w{job.number}.safetensors", job.weights)
            job.weights = b""  # copied: not kept in memory
        transforms_of = {file.key: [None, *[list(pair) for pair in (file.harvest.normalize if file.harvest else [])]]
                         for file in files}
        for job in jobs:
            for t_index in range(len(transforms_of[job.file.key])):
                job.outputs[str(t_index)] = {split: f"m{job.number}_t{t_index}_{split}.npy" for split in EVAL_SPLITS}
                job.untrained[str(t_index)] = f"m{job.number}_t{t_index}_untrained.npy"
        self._hand_over({
            "programs": {file.key: file.definitions.to_job() for file in files},
            "models": [
                {
                    "id": job.id, "program": job.file.key, "class_name": job.model.class_name,
                    "weights": str(self.weights_dir / f"w{job.number}.safetensors"),
                    "constructor_args": job.file.definitions.constructor_args.get(job.model.class_name, []),
                    "transforms": transforms_of[job.file.key], "outputs": job.outputs,
                    "untrained_outputs": job.untrained,
                }
                for job in jobs
            ],
        })
        self._finish()
        process = self.process
        message = f"the clean room hit its {self.limit_hit} limit" if self.limit_hit else ""
        try:
            results = read_json(result_path(room.root, "results.json"), CleanroomResults, "the clean-room results")
        except ResultError as error:
            results = CleanroomResults()
            said = " | ".join(process.output.strip().splitlines()[-3:]) if process else ""
            exit_ = process.describe_exit() if process else "did not start"
            message = f"clean-room measurement failed: the process {exit_}; {error}" + (
                f" ({message})" if message else "") + (f"; it printed: {said[:600]}" if said else "")
        by_id = {m.id: m for m in results.models}
        labels = {split: self.dataset.labels(split) for split in SPLITS}
        labels["train_noisy"] = labels["train"][:TRAIN_SUBSET]
        labels["holdout_noisy"] = labels["holdout"]
        models = [_model_evidence(job, by_id.get(job.id), room, labels, message) for job in jobs]
        problems = {key: value.get("problems", [])[:50] for key, value in results.programs.items()
                    if key in transforms_of}
        return [*models, *failed], problems, message

