"""Calibrate accuracy thresholds per data profile from code known to deserve full marks.

threshold = (lowest measured accuracy among the calibration submissions) - margin, rounded down
to 0.01. The evidence comes from a normal grading run, so calibration measures exactly what
grading measures.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from grader.evidence import Evidence
from grader.findings import match_model
from grader.fsutil import atomic_write_text
from grader.rubric import Rubric, RubricError, load_rubric


class CalibrationError(RuntimeError):
    """Thresholds cannot be proposed or written; the message says why."""


@dataclass(frozen=True)
class Measurement:
    student: str
    model_id: str
    train: float
    test: float


@dataclass(frozen=True)
class Proposal:
    model: str
    profile: str
    measurements: tuple[Measurement, ...]
    train: float
    test: float
    current_train: float | None
    current_test: float | None


def _floor(value: float) -> float:
    return math.floor(round(value * 100, 6)) / 100


def calibrated_models(rubric: Rubric) -> list[str]:
    return sorted({line.when.accuracy_below.model for item in rubric.items() for line in item.lines
                   if line.when and line.when.accuracy_below})


def _current(rubric: Rubric, model: str, profile: str) -> tuple[float | None, float | None]:
    for item in rubric.items():
        for line in item.lines:
            if line.when and line.when.accuracy_below and line.when.accuracy_below.model == model:
                found = line.when.accuracy_below.thresholds.get(profile)
                if found:
                    return found.train, found.test
    return None, None


def propose(rubric: Rubric, evidence: list[Evidence], profile: str, margin: float) -> list[Proposal]:
    proposals = []
    for key in calibrated_models(rubric):
        measurements = []
        for item in evidence:
            if item.profile != profile:
                continue
            # every file counts (a reference in notebook and module form gives two measurements);
            # within a file, its best instance (an untrained copy beside the trained one is not the answer)
            complete = {f.path for f in item.files if f.status == "completed"}
            for file in sorted({m.file for m in item.models} & complete):
                match = match_model(rubric.models[key], [m for m in item.models if m.file == file])
                if match is not None and match.model.accuracy is not None:
                    accuracy = match.model.accuracy
                    measurements.append(Measurement(item.student, match.model.id, accuracy.train, accuracy.test))
        if not measurements:
            raise CalibrationError(f"no calibration submission has a measurable {rubric.models[key].class_name} "
                                   f"from a run that completed on the '{profile}' profile (runs that timed out "
                                   "or crashed do not count: raise --cell-timeout or use a quieter machine)")
        current_train, current_test = _current(rubric, key, profile)
        proposals.append(Proposal(
            model=key, profile=profile, measurements=tuple(measurements),
            train=_floor(min(m.train for m in measurements) - margin),
            test=_floor(min(m.test for m in measurements) - margin),
            current_train=current_train, current_test=current_test,
        ))
    return proposals


def write_thresholds(path: Path, proposals: list[Proposal]) -> None:
    """Edit the ``<profile>: {train: x, test: y}`` lines in place (comments and layout kept), then re-validate."""
    text = path.read_text(encoding="utf-8")
    for proposal in proposals:
        pattern = re.compile(
            rf"(accuracy_below:\s*\n\s*model:\s*{re.escape(proposal.model)}\s*\n(?:[^\n]*\n)*?\s*thresholds:\s*\n"
            rf"(?:\s+[\w-]+:[^\n]*\n)*?\s+{re.escape(proposal.profile)}:\s*)\{{[^}}\n]*\}}"
        )
        text, count = pattern.subn(rf"\g<1>{{train: {proposal.train:.2f}, test: {proposal.test:.2f}}}", text)
        if count != 1:
            raise CalibrationError(f"{path}: could not find the '{proposal.profile}' thresholds of model "
                                   f"'{proposal.model}' written as '{proposal.profile}: {{train: .., test: ..}}'; "
                                   "set the proposed values by hand")
    backup = path.read_text(encoding="utf-8")
    atomic_write_text(path, text)
    try:
        written = load_rubric(path)
        for proposal in proposals:
            if _current(written, proposal.model, proposal.profile) != (proposal.train, proposal.test):
                raise CalibrationError(f"{path}: the thresholds did not take effect")
    except (RubricError, CalibrationError):
        atomic_write_text(path, backup)
        raise
