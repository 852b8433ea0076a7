"""Score = a pure function of (rubric, evidence, manual marks). No kernel, no files, no clock.

Each rubric line is applied or not, with a one-line reason drawn from the evidence; an item's
score is its points plus the applied deductions, floored at zero. Manual items without marks
are *pending*, and so is the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from grader.evidence import Evidence, ModelEvidence
from grader.marks import Mark
from grader.rubric import AccuracyBelow, Condition, Item, ModelSpec, Rubric, RubricLine, TextMissing
from grader.textcheck import evaluate

LineSource = Literal["auto", "manual", "override", "none"]


@dataclass(frozen=True)
class LineResult:
    id: str
    text: str
    points: float
    applied: bool
    reason: str = ""
    added: bool = False
    hidden: bool = False


@dataclass(frozen=True)
class ItemScore:
    id: str
    title: str
    max_points: float
    score: float | None  # None: pending (a manual item without marks)
    grading: Literal["auto", "manual"]
    source: LineSource
    lines: tuple[LineResult, ...]
    reason: str
    comment: str = ""
    model_id: str | None = None
    hidden: bool = False

    @property
    def pending(self) -> bool:
        return self.score is None


@dataclass(frozen=True)
class QuestionScore:
    id: str
    title: str
    max_points: float
    items: tuple[ItemScore, ...]

    @property
    def score(self) -> float:
        return sum(item.score or 0.0 for item in self.items)

    @property
    def pending(self) -> bool:
        return any(item.pending for item in self.items)


@dataclass(frozen=True)
class ScoreSheet:
    student: str
    assignment: str
    profile: str
    questions: tuple[QuestionScore, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def max_points(self) -> float:
        return sum(q.max_points for q in self.questions)

    @property
    def total(self) -> float:
        return sum(q.score for q in self.questions)

    @property
    def pending_items(self) -> list[str]:
        return [item.id for q in self.questions for item in q.items if item.pending]

    def items(self) -> list[ItemScore]:
        return [item for q in self.questions for item in q.items]

    def item(self, item_id: str) -> ItemScore:
        return next(item for item in self.items() if item.id == item_id)

    @property
    def total_label(self) -> str:
        text = f"{fmt(self.total)} / {fmt(self.max_points)}"
        if self.pending_items:
            text += f" (pending: {', '.join(self.pending_items)})"
        return text


def fmt(points: float) -> str:
    return f"{points + 0.0:g}"  # + 0.0 turns -0.0 into 0.0


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelMatch:
    model: ModelEvidence
    how: str


def match_model(spec: ModelSpec, models: list[ModelEvidence]) -> ModelMatch | None:
    """The student's model for ``spec``: by class name, else by exact trainable parameter count.

    Among several candidates (re-run cells, an untrained copy), the one with the handout's
    parameter count and the best measured accuracy is taken.
    """

    def rank(model: ModelEvidence) -> tuple[bool, bool, float]:
        accuracy = model.accuracy.test if model.accuracy else -1.0
        return (model.trainable_params == spec.trainable_params, model.accuracy is not None, accuracy)

    by_name = [m for m in models if m.class_name == spec.class_name]
    if by_name:
        best = max(by_name, key=rank)
        return ModelMatch(best, f"class {spec.class_name} ({best.variable} in {best.file})")
    by_count = [m for m in models if m.trainable_params == spec.trainable_params]
    if by_count:
        best = max(by_count, key=rank)
        return ModelMatch(best, f"class {best.class_name} ({best.variable} in {best.file}), matched by its "
                                f"{spec.trainable_params:,} trainable parameters: no class named {spec.class_name}")
    return None


def _found_list(models: list[ModelEvidence]) -> str:
    if not models:
        return "no trained model was found"
    shown = sorted({f"{m.class_name} ({m.trainable_params:,} parameters)" if m.trainable_params is not None
                    else m.class_name for m in models})
    return "found: " + ", ".join(shown)


def architecture_problems(spec: ModelSpec, model: ModelEvidence) -> list[str]:
    problems = []
    if model.trainable_params != spec.trainable_params:
        count = "an unknown number of" if model.trainable_params is None else f"{model.trainable_params:,}"
        problems.append(f"{model.class_name} has {count} trainable parameters; expected {spec.trainable_params:,}")
    elif model.parameter_elements is not None and model.parameter_elements != spec.trainable_params:
        problems.append(f"{model.class_name}'s saved tensors hold {model.parameter_elements:,} parameter values, "
                        f"of which {model.trainable_params:,} are reported trainable (a frozen or hidden extra "
                        f"layer?); the handout's model has {spec.trainable_params:,}")
    if spec.layers and model.layers:
        have = [(row.type, row.params) for row in model.layers if row.leaf and row.params > 0]
        want = [(layer.type, layer.params) for layer in spec.layers]
        if have != want:
            shown = ", ".join(f"{t} {p:,}" for t, p in have) or "none"
            expected = ", ".join(f"{t} {p:,}" for t, p in want)
            problems.append(f"layers with parameters [{shown}] differ from the handout's [{expected}]")
    return problems


# --------------------------------------------------------------------------- conditions


def _accuracy_below(condition: AccuracyBelow, match: ModelMatch | None, profile: str) -> tuple[bool, str]:
    if match is None:
        return False, "no model to measure"
    model = match.model
    if model.accuracy is None:
        return True, f"{model.class_name} could not be measured: {model.error or 'no measurement'}"
    thresholds = condition.thresholds[profile]
    parts, below = [], False
    for split in condition.splits:
        value = getattr(model.accuracy, split)
        minimum = getattr(thresholds, split)
        ok = value >= minimum
        below = below or not ok
        parts.append(f"{split} {value:.3f} {'>=' if ok else '<'} {minimum:.2f}")
    return below, f"measured accuracy: {', '.join(parts)} ({profile} data)"


def _text_missing(condition: TextMissing, rubric: Rubric, evidence: Evidence) -> tuple[bool, str]:
    results = {name: evaluate(rubric.text_checks[name], evidence) for name in condition.checks}
    missing = [name for name, result in results.items() if not result.found]
    applies = bool(missing) and (condition.mode == "any" or len(missing) == len(results))
    details = "; ".join(
        f"{rubric.text_checks[name].description or name}: {result.detail}" for name, result in results.items()
    )
    return applies, details


def evaluate_condition(condition: Condition, rubric: Rubric, evidence: Evidence) -> tuple[bool, str]:
    if condition.text_missing is not None:
        return _text_missing(condition.text_missing, rubric, evidence)
    key = condition.models()[0]
    spec = rubric.models[key]
    match = match_model(spec, evidence.models)
    if condition.model_missing is not None:
        if match is None:
            return True, (f"no {spec.class_name} (nor any model with {spec.trainable_params:,} trainable parameters) "
                          f"after running the submission; {_found_list(evidence.models)}")
        return False, f"found {match.how}"
    if condition.architecture_mismatch is not None:
        if match is None:
            return False, "no model to compare"
        problems = architecture_problems(spec, match.model)
        if problems:
            return True, "; ".join(problems)
        return False, f"{match.model.class_name} has {spec.trainable_params:,} trainable parameters, as the handout's"
    assert condition.accuracy_below is not None
    return _accuracy_below(condition.accuracy_below, match, evidence.profile)


# --------------------------------------------------------------------------- items


def _correct_line(item: Item) -> RubricLine | None:
    return next((line for line in item.lines if line.points == 0 and line.when is None), None)


def _finish(item: Item, applied: dict[str, str], reasons: dict[str, str], source: LineSource,
            comment: str = "", model_id: str | None = None) -> ItemScore:
    """Apply exclusivity, tick 'Correct' when nothing is deducted, compute the score."""
    exclusive = [line for line in item.lines if line.id in applied and line.exclusive and line.points < 0]
    if exclusive:
        keep = exclusive[0].id
        for line in item.lines:
            if line.id in applied and line.id != keep:
                reasons[line.id] = f"not applied: '{exclusive[0].text}' covers it"
                del applied[line.id]
    deductions = sum(line.points for line in item.lines if line.id in applied)
    correct = _correct_line(item)
    if correct is not None and not any(line.points < 0 for line in item.lines if line.id in applied):
        applied.setdefault(correct.id, reasons.get(correct.id, ""))
    lines = tuple(
        LineResult(line.id, line.text, line.points, line.id in applied, reasons.get(line.id, ""), line.added,
                   line.hidden)
        for line in item.lines
    )
    score = max(0.0, item.points + deductions)
    applied_reasons = [reasons[line.id] for line in item.lines if line.id in applied and reasons.get(line.id)]
    reason = "; ".join(applied_reasons)
    return ItemScore(item.id, item.title, item.points, score, item.grading, source, lines, reason, comment,
                     model_id, item.hidden)


def _auto_item(item: Item, rubric: Rubric, evidence: Evidence) -> ItemScore:
    evaluated = {line.id: evaluate_condition(line.when, rubric, evidence) for line in item.lines if line.when}
    applied = {line_id: reason for line_id, (applies, reason) in evaluated.items() if applies}
    reasons = {line_id: reason for line_id, (_, reason) in evaluated.items()}
    model_key = item.model or next((m for line in item.lines if line.when for m in line.when.models()), None)
    match = match_model(rubric.models[model_key], evidence.models) if model_key else None
    correct = _correct_line(item)
    if correct is not None:
        # why 'Correct': the facts the automatic lines checked, in one line
        facts = [reason for line in item.lines if line.when and line.when.kind != "model_missing"
                 for applies, reason in [evaluated[line.id]] if not applies]
        reasons[correct.id] = "; ".join(([f"found {match.how}"] if match else []) + facts)
    return _finish(item, applied, reasons, "auto", model_id=match.model.id if match else None)


def _manual_item(item: Item, mark: Mark | None) -> ItemScore:
    if mark is None:
        lines = tuple(LineResult(line.id, line.text, line.points, False, "", line.added, line.hidden)
                      for line in item.lines)
        return ItemScore(item.id, item.title, item.points, None, item.grading, "none", lines,
                         "pending: awaiting TA marks", hidden=item.hidden)
    applied = {line_id: "marked by the TA" for line_id in mark.lines}
    reasons = dict(applied)
    return _finish(item, applied, reasons, "manual", comment=mark.comment)


def score(rubric: Rubric, evidence: Evidence, marks: dict[str, Mark] | None = None, *,
          include_hidden: bool = True) -> ScoreSheet:
    """The score sheet. ``include_hidden=False`` (student self-checks) leaves out hidden items and hidden lines."""
    marks = marks or {}
    questions = []
    for question in rubric.questions:
        items = []
        for item in question.items:
            if item.hidden and not include_hidden:
                continue
            if not include_hidden and any(line.hidden for line in item.lines):
                # hidden rubric lines are neither evaluated nor shown: the score cannot reveal them
                item = item.model_copy(update={"lines": tuple(line for line in item.lines if not line.hidden)})
            mark = marks.get(item.id)
            if item.grading == "manual":
                items.append(_manual_item(item, mark))
            elif mark is not None and mark.override:
                overridden = _manual_item(item, mark)
                reason = f"set by the TA (automatic result overridden); {overridden.reason}"
                items.append(ItemScore(**{**overridden.__dict__, "source": "override", "reason": reason}))
            else:
                items.append(_auto_item(item, rubric, evidence))
        if items:
            questions.append(QuestionScore(question.id, question.title, sum(i.max_points for i in items), tuple(items)))
    notes = tuple(evidence.problems)
    return ScoreSheet(evidence.student, rubric.assignment.title, evidence.profile, tuple(questions), notes)
