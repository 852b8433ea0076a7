"""A self-check's result: the public part of the rubric scored on the evidence, with what to fix.

Pure: rubric + evidence in, ``CheckResult`` out. What a check scores:

* automatic items that are not hidden, without their hidden lines (``score(..., include_hidden=False)``);
* accuracy lines only where the rubric has thresholds for the evidence's data profile (not on
  ``embedded-fast``, the ``--fast`` profile): elsewhere accuracy is measured and shown, not scored;
* manual items are listed (a TA grades them later), hidden ones counted, never described.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.evidence import Evidence
from grader.findings import ModelMatch
from grader.points import fmt
from grader.rubric import Condition, Item, ModelSpec, Rubric, RubricLine
from grader.score import ItemScore, LineResult, ScoreSheet, score
from grader.selfcheck import hints


@dataclass(frozen=True)
class Deduction:
    line: str  # rubric line id
    text: str
    points: float
    reason: str


@dataclass(frozen=True)
class ItemCheck:
    id: str
    title: str
    points: float
    max_points: float
    measured: str  # what the grader found, in one line
    fixes: tuple[str, ...] = ()  # one per deduction, in plain words
    deductions: tuple[Deduction, ...] = ()
    advice: tuple[str, ...] = ()  # worth fixing, not deducted
    not_scored: tuple[str, ...] = ()  # rubric lines measured but not scored here, and why

    @property
    def passed(self) -> bool:
        return self.points >= self.max_points

    @property
    def points_label(self) -> str:
        return f"{fmt(self.points)} / {fmt(self.max_points)}"


@dataclass(frozen=True)
class ManualItem:
    id: str
    title: str
    points: float


@dataclass(frozen=True)
class CheckResult:
    assignment_id: str
    assignment_title: str
    student: str
    rubric: str  # the rubric file as given
    profile: str
    profile_description: str
    train_images: int  # what the notebook trained on (one epoch)
    accuracy_scored: bool
    sandbox: str
    items: tuple[ItemCheck, ...]
    manual: tuple[ManualItem, ...]
    hidden_items: int
    hidden_lines: int
    files: tuple[tuple[str, str], ...]  # (path, run status)
    notes: tuple[str, ...] = ()
    run_ok: bool = True  # False: the grader itself could not collect evidence
    duration_s: float = 0.0
    grader_version: str = ""
    fast: bool = False

    @property
    def points(self) -> float:
        return sum(item.points for item in self.items)

    @property
    def max_points(self) -> float:
        return sum(item.max_points for item in self.items)

    @property
    def failed(self) -> list[ItemCheck]:
        return [item for item in self.items if not item.passed]

    @property
    def passed(self) -> bool:
        return self.run_ok and not self.failed

    @property
    def hidden_total(self) -> int:
        return self.hidden_items + self.hidden_lines

    def hidden_sentence(self) -> str:
        if not self.hidden_total:
            return "This rubric has no hidden checks."
        parts = []
        if self.hidden_items:
            parts.append(f"{self.hidden_items} hidden item{'s' if self.hidden_items != 1 else ''}")
        if self.hidden_lines:
            parts.append(f"{self.hidden_lines} hidden rubric line{'s' if self.hidden_lines != 1 else ''}")
        return (f"{' and '.join(parts)} {'are' if self.hidden_total != 1 else 'is'} not run or shown here; "
                "the instructor's grading applies them.")

    def manual_sentence(self) -> str:
        if not self.manual:
            return "No manual items."
        points = fmt(sum(item.points for item in self.manual))
        return (f"Manual items {', '.join(item.id for item in self.manual)} ({points} points) are graded by a TA "
                "later; they are not checked here.")

    def accuracy_sentence(self) -> str:
        trained = f" (your notebook trained on {self.train_images:,} images)" if self.train_images else ""
        if self.accuracy_scored:
            return f"Accuracy is scored against the rubric's thresholds for '{self.profile}' data{trained}."
        if self.fast:
            return (f"--fast: a first look on '{self.profile}' data{trained}. Architecture, parameter-count and text "
                    "checks are real; accuracy is shown but NOT scored (thresholds are calibrated for the full "
                    "data). Run `grader check` without --fast for the scored result.")
        return (f"Accuracy is shown but NOT scored: the rubric has no accuracy thresholds for '{self.profile}' "
                f"data{trained}.")


# --------------------------------------------------------------------------- the public rubric


def hidden_counts(rubric: Rubric) -> tuple[int, int]:
    """(hidden items, hidden lines of visible items): counted, never described."""
    items = sum(1 for item in rubric.items() if item.hidden)
    lines = sum(1 for item in rubric.items() if not item.hidden for line in item.lines if line.hidden)
    return items, lines


def without_accuracy(rubric: Rubric) -> tuple[Rubric, dict[str, list[RubricLine]]]:
    """The rubric less its accuracy lines, and those lines per item (for a profile without thresholds)."""
    dropped: dict[str, list[RubricLine]] = {}
    questions = []
    for question in rubric.questions:
        items = []
        for item in question.items:
            accuracy = [line for line in item.lines if line.when is not None and line.when.kind == "accuracy_below"]
            if accuracy:
                dropped[item.id] = accuracy
                item = item.model_copy(update={"lines": tuple(line for line in item.lines if line not in accuracy)})
            items.append(item)
        questions.append(question.model_copy(update={"items": tuple(items)}))
    return rubric.model_copy(update={"questions": tuple(questions)}), dropped


# --------------------------------------------------------------------------- one item


def _measured(sheet_item: ItemScore, spec: ModelSpec | None, match: ModelMatch | None, accuracy_scored: bool) -> str:
    if spec is not None:
        if match is None:
            return f"no {spec.class_name} found"
        model = match.model
        text = hints.describe_model(spec, model)
        if model.accuracy is not None:
            text += (f"; accuracy: train {model.accuracy.train:.3f}, test {model.accuracy.test:.3f} "
                     f"({model.accuracy.n_test:,} held-out digits)")
            if not accuracy_scored:
                text += " (not scored)"
        elif model.error:
            text += f"; not measured: {model.error}"
        return text
    return "; ".join(f"{finding.description}: {'found' if finding.result.found else 'missing'}"
                     for finding in sheet_item.text_checks)


def _fix(condition: Condition | None, reason: str, sheet_item: ItemScore, spec: ModelSpec | None,
         match: ModelMatch | None, evidence: Evidence) -> str:
    if condition is None:
        return reason
    if condition.model_missing is not None and spec is not None:
        return hints.missing_model_hint(spec, evidence)
    if condition.architecture_mismatch is not None and spec is not None and match is not None:
        return hints.architecture_hint(spec, match.model)
    if condition.accuracy_below is not None and spec is not None:
        return hints.accuracy_hint(spec, match.model if match else None, evidence, reason)
    if condition.text_missing is not None:
        return hints.text_hint(sheet_item.text_checks, condition.text_missing.checks) or reason
    return reason


def _advice(spec: ModelSpec | None, match: ModelMatch | None, evidence: Evidence, accuracy_scored: bool,
            deducted: bool) -> list[str]:
    if spec is None or match is None:
        return []
    model = match.model
    said = []
    if model.class_name != spec.class_name:
        how = "its parameter count" if model.trainable_params == spec.trainable_params else "its kind of layers"
        said.append(f"name the class {spec.class_name} as the handout does (your {model.class_name} was found by "
                    f"{how})")
    if not accuracy_scored and model.accuracy is None:
        said.append(hints.accuracy_hint(spec, model, evidence, ""))
    if not deducted:
        said += hints.claim_mismatches(evidence, model)
    return said


def _item_check(item: Item, sheet_item: ItemScore, sheet: ScoreSheet, rubric: Rubric, evidence: Evidence,
                accuracy_scored: bool, unscored: list[RubricLine]) -> ItemCheck:
    key = sheet_item.model_key or next((k for line in unscored if line.when for k in line.when.models()), None)
    spec = rubric.models[key] if key else None
    match = sheet.matches.get(key) if key else None
    lines = {line.id: line for line in item.lines}
    applied: list[LineResult] = [r for r in sheet_item.lines if r.applied and r.points < 0]
    deductions = tuple(Deduction(r.id, r.text, r.points, r.reason) for r in applied)
    fixes = tuple(_fix(lines[r.id].when, r.reason, sheet_item, spec, match, evidence) for r in applied)
    not_scored = tuple(f"not scored on '{evidence.profile}' data: {line.text} ({fmt(line.points)})"
                       for line in unscored)
    return ItemCheck(
        id=item.id, title=item.title, points=sheet_item.score or 0.0, max_points=sheet_item.max_points,
        measured=_measured(sheet_item, spec, match, accuracy_scored), fixes=fixes, deductions=deductions,
        advice=tuple(_advice(spec, match, evidence, accuracy_scored, bool(applied))), not_scored=not_scored,
    )


# --------------------------------------------------------------------------- the whole check


def run_notes(evidence: Evidence) -> list[str]:
    notes = [problem.splitlines()[0][:300] for problem in evidence.problems]
    for file in evidence.files:
        if file.status != "completed":
            notes.append(f"{file.path} did not run to the end: {file.status}" + (f" ({file.message})" if file.message
                                                                                   else ""))
    notes += hints.cell_errors(evidence, limit=10)
    return notes


def check_result(rubric: Rubric, evidence: Evidence, *, rubric_name: str = "", fast: bool = False) -> CheckResult:
    accuracy_scored = evidence.profile in rubric.data_profiles
    public, unscored = (rubric, {}) if accuracy_scored else without_accuracy(rubric)
    sheet = score(public, evidence, include_hidden=False)
    items, manual = [], []
    for sheet_item in sheet.items():
        item = public.item(sheet_item.id)
        item = item.model_copy(update={"lines": tuple(line for line in item.lines if not line.hidden)})
        if item.grading == "manual":
            manual.append(ManualItem(item.id, item.title, item.points))
            continue
        items.append(_item_check(item, sheet_item, sheet, public, evidence, accuracy_scored,
                                 [line for line in unscored.get(item.id, []) if not line.hidden]))
    hidden_items, hidden_lines = hidden_counts(rubric)
    return CheckResult(
        assignment_id=rubric.assignment.id, assignment_title=rubric.assignment.title, student=evidence.student,
        rubric=rubric_name, profile=evidence.profile, profile_description=str(evidence.data.get("description", "")),
        train_images=int(evidence.data.get("sizes", {}).get("public_train", 0)),
        accuracy_scored=accuracy_scored, sandbox=evidence.environment.sandbox, items=tuple(items),
        manual=tuple(manual), hidden_items=hidden_items, hidden_lines=hidden_lines,
        files=tuple((file.path, file.status) for file in evidence.files), notes=tuple(run_notes(evidence)),
        run_ok=evidence.status == "ok", duration_s=evidence.duration_s, grader_version=evidence.grader_version,
        fast=fast,
    )
