"""Score = a pure function of (rubric, evidence, manual marks). No kernel, no files, no clock.

Each rubric line is applied or not, with a one-line reason drawn from the evidence; an item's
score is its points plus the applied deductions, floored at zero. Manual items without marks
are *pending*, and so is the total.

The score sheet keeps what it decided on: for each item the student's model it matched, that
model's architecture problems and the results of its text checks. Reports, Gradescope's
results, the summary and the self-check only read them; nothing is decided twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from grader.evidence import Evidence, ModelEvidence
from grader.findings import ModelMatch, architecture_problems, found_list, match_model
from grader.marks import Mark
from grader.points import fmt
from grader.rubric import AccuracyBelow, Condition, Item, Rubric, RubricLine, TextMissing
from grader.textcheck import TextResult, evaluate

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
class TextFinding:
    """One text check of an item, as scored."""

    name: str
    description: str
    result: TextResult


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
    hidden: bool = False
    model_key: str | None = None  # the rubric model the item is about
    match: ModelMatch | None = None  # the student's model taken for it
    architecture: tuple[str, ...] = ()  # how that model differs from the handout's
    text_checks: tuple[TextFinding, ...] = ()

    @property
    def pending(self) -> bool:
        return self.score is None

    @property
    def model_id(self) -> str | None:
        return self.match.model.id if self.match else None


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
    matches: dict[str, ModelMatch | None] = field(default_factory=dict)  # rubric model key -> the student's model

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


@dataclass(frozen=True)
class _Facts:
    """What one score sheet decides on, computed once: model matches and text-check results."""

    rubric: Rubric
    evidence: Evidence
    matches: dict[str, ModelMatch | None]
    texts: dict[str, TextResult]

    @classmethod
    def of(cls, rubric: Rubric, evidence: Evidence) -> _Facts:
        matches = {key: match_model(spec, evidence.models) for key, spec in rubric.models.items()}
        texts = {}
        for name, check in rubric.text_checks.items():
            # or_student_total / or_student_layers: the student's own model for that rubric model
            own: dict[str, ModelEvidence] = {key: match.model for key in check.student_models()
                                             if (match := matches.get(key)) is not None}
            texts[name] = evaluate(check, evidence, own)
        return cls(rubric, evidence, matches, texts)


# --------------------------------------------------------------------------- conditions


def _accuracy_below(condition: AccuracyBelow, match: ModelMatch | None, profile: str) -> tuple[bool, str]:
    if match is None:
        return False, "no model to measure"
    model = match.model
    if model.accuracy is None:
        return True, f"{model.class_name} could not be measured: {model.error or 'no measurement'}"
    thresholds = condition.thresholds[profile]
    measured = {"train": model.accuracy.train, "test": model.accuracy.test}
    lookup = model.lookup.suspected if model.lookup else ""
    if lookup and model.lookup is not None:  # scored on the changed digits, where a lookup finds nothing
        changed = {"train": model.lookup.perturbed_train, "test": model.lookup.perturbed_test}
        measured = {split: value if (value := changed[split]) is not None else measured[split] for split in measured}
    parts, below = [], False
    for split in condition.splits:
        value = measured[split]
        minimum = getattr(thresholds, split)
        ok = value >= minimum
        below = below or not ok
        parts.append(f"{split} {value:.3f} {'>=' if ok else '<'} {minimum:.2f}")
    if lookup:
        return below, (f"measured accuracy on invisibly changed copies of the digits: {', '.join(parts)} "
                       f"({profile} data), because {lookup}")
    return below, f"measured accuracy: {', '.join(parts)} ({profile} data)"


def _text_missing(condition: TextMissing, facts: _Facts) -> tuple[bool, str]:
    results = {name: facts.texts[name] for name in condition.checks}
    missing = [name for name, result in results.items() if not result.found]
    applies = bool(missing) and (condition.mode == "any" or len(missing) == len(results))
    details = "; ".join(
        f"{facts.rubric.text_checks[name].description or name}: {result.detail}"
        + (f" [{result.looked_for}]" if result.looked_for else "")
        for name, result in results.items()
    )
    return applies, details


def _evaluate(condition: Condition, facts: _Facts) -> tuple[bool, str]:
    if condition.text_missing is not None:
        return _text_missing(condition.text_missing, facts)
    key = condition.models()[0]
    spec = facts.rubric.models[key]
    match = facts.matches[key]
    if condition.model_missing is not None:
        if match is None:
            return True, (f"no {spec.class_name} (nor any model with {spec.trainable_params:,} trainable parameters) "
                          f"after running the submission; {found_list(facts.evidence.models)}")
        if match.model.lookup is not None and match.model.lookup.suspected:
            return True, (f"found {match.how}, but it is not a trained model: {match.model.lookup.suspected} "
                          "(a TA can override this after reading the code)")
        return False, f"found {match.how}"
    if condition.architecture_mismatch is not None:
        if match is None:
            return False, "no model to compare"
        problems = architecture_problems(spec, match.model)
        if problems:
            return True, "; ".join(problems)
        return False, f"{match.model.class_name} has {spec.trainable_params:,} trainable parameters, as the handout's"
    assert condition.accuracy_below is not None
    return _accuracy_below(condition.accuracy_below, match, facts.evidence.profile)


def evaluate_condition(condition: Condition, rubric: Rubric, evidence: Evidence) -> tuple[bool, str]:
    """Whether an automatic rubric line applies, and why (one condition on its own)."""
    return _evaluate(condition, _Facts.of(rubric, evidence))


# --------------------------------------------------------------------------- items


def _correct_line(item: Item) -> RubricLine | None:
    return next((line for line in item.lines if line.points == 0 and line.when is None), None)


def _finish(item: Item, applied: dict[str, str], reasons: dict[str, str], source: LineSource,
            comment: str = "") -> ItemScore:
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
                     item.hidden)


def _findings(item: Item, facts: _Facts) -> dict[str, object]:
    """What the item's views show beside its score: its model, that model's problems, its text checks."""
    key = item.model_key
    match = facts.matches.get(key) if key else None
    names = [name for line in item.lines if line.when and line.when.text_missing
             for name in line.when.text_missing.checks]
    texts = tuple(TextFinding(name, facts.rubric.text_checks[name].description or name, facts.texts[name])
                  for name in dict.fromkeys(names))
    architecture = tuple(architecture_problems(facts.rubric.models[key], match.model)) if key and match else ()
    return {"model_key": key, "match": match, "architecture": architecture, "text_checks": texts}


def _auto_item(item: Item, facts: _Facts) -> ItemScore:
    evaluated = {line.id: _evaluate(line.when, facts) for line in item.lines if line.when}
    applied = {line_id: reason for line_id, (applies, reason) in evaluated.items() if applies}
    reasons = {line_id: reason for line_id, (_, reason) in evaluated.items()}
    match = facts.matches.get(item.model_key) if item.model_key else None
    correct = _correct_line(item)
    if correct is not None:
        # why 'Correct': the facts the automatic lines checked, in one line
        checked = [reason for line in item.lines if line.when and line.when.kind != "model_missing"
                   for applies, reason in [evaluated[line.id]] if not applies]
        reasons[correct.id] = "; ".join(([f"found {match.how}"] if match else []) + checked)
    return _finish(item, applied, reasons, "auto")


def _manual_item(item: Item, mark: Mark | None) -> ItemScore:
    if mark is None:
        lines = tuple(LineResult(line.id, line.text, line.points, False, "", line.added, line.hidden)
                      for line in item.lines)
        return ItemScore(item.id, item.title, item.points, None, item.grading, "none", lines,
                         "pending: awaiting TA marks", hidden=item.hidden)
    applied = {line_id: "marked by the TA" for line_id in mark.lines}
    reasons = dict(applied)
    return _finish(item, applied, reasons, "manual", comment=mark.comment)


def _item(item: Item, facts: _Facts, mark: Mark | None) -> ItemScore:
    if item.grading == "manual":
        scored = _manual_item(item, mark)
    elif mark is not None and mark.override:
        overridden = _manual_item(item, mark)
        reason = f"set by the TA (automatic result overridden); {overridden.reason}"
        scored = ItemScore(**{**overridden.__dict__, "source": "override", "reason": reason})
    else:
        scored = _auto_item(item, facts)
    return ItemScore(**{**scored.__dict__, **_findings(item, facts)})


def score(rubric: Rubric, evidence: Evidence, marks: dict[str, Mark] | None = None, *,
          include_hidden: bool = True) -> ScoreSheet:
    """The score sheet. ``include_hidden=False`` (student self-checks) leaves out hidden items and hidden lines."""
    marks = marks or {}
    facts = _Facts.of(rubric, evidence)
    questions = []
    for question in rubric.questions:
        items = []
        for item in question.items:
            if item.hidden and not include_hidden:
                continue
            if not include_hidden and any(line.hidden for line in item.lines):
                # hidden rubric lines are neither evaluated nor shown: the score cannot reveal them
                item = item.model_copy(update={"lines": tuple(line for line in item.lines if not line.hidden)})
            items.append(_item(item, facts, marks.get(item.id)))
        if items:
            questions.append(QuestionScore(question.id, question.title, sum(i.max_points for i in items), tuple(items)))
    return ScoreSheet(evidence.student, rubric.assignment.title, evidence.profile, tuple(questions),
                      tuple(evidence.problems), dict(facts.matches))
