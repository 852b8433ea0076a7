"""The rubric file: a versioned YAML document validated into frozen, typed objects.

Unknown keys are rejected and every error names the YAML path (``questions[1].items[2].lines[0].points``)
and what is wrong, so that an instructor can fix the file without reading this code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grader.profiles import PROFILES

SCHEMA_VERSION = 1
Scope = Literal["markdown", "code", "outputs", "summaries"]  # see grader.textcheck


class RubricError(ValueError):
    """The rubric file is invalid; the message names the file, the YAML path and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- models


class LayerSpec(Strict):
    type: str = Field(description="torch layer class name, e.g. Linear or Conv2d")
    params: int = Field(ge=0, description="trainable parameters of this layer")


class TrainingSpec(Strict):
    """How the grader trains a model handed in as a .py module (notebooks train themselves)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.0
    lr: float = 0.01
    batch_size: int = 64
    epochs: int = 10
    seed: int = 1234
    log_interval: int = 100
    gamma: float = 0.95


class ModelSpec(Strict):
    description: str = ""
    class_name: str = Field(description="the class the handout asks for")
    trainable_params: int = Field(gt=0, description="exact trainable parameter count of the handout's model")
    input_shape: tuple[int, ...] = (1, 28, 28)
    layers: tuple[LayerSpec, ...] = Field(
        default=(), description="expected layers with trainable parameters, in execution order"
    )
    training: TrainingSpec = TrainingSpec()

    @property
    def convolutional(self) -> bool:
        """A CNN (its layers include convolutions), else a dense network: what a renamed class is matched by."""
        return any(layer.type.startswith("Conv") for layer in self.layers)


# --------------------------------------------------------------------------- text checks


class NumberSet(Strict):
    numbers: tuple[int, ...] = Field(min_length=1)


class TextCheck(Strict):
    """Numbers that must appear in the student's text (forms accepted: grader.textcheck).

    ``numbers``: all must appear. ``any_of``: at least one of the listed sets must appear in full.
    ``scope``: where to read: ``markdown``, ``code`` (comments included), ``outputs`` (what code
    cells printed) and ``summaries`` (parameter counts torch printed: ``summary(...)``, ``numel()``).
    ``or_student_total`` / ``or_student_layers``: a key of ``models``; the check also passes with the
    trainable parameter count / the per-layer counts of the student's own model matched for it.
    """

    description: str = ""
    scope: tuple[Scope, ...] = Field(default=("markdown", "code"), min_length=1)
    numbers: tuple[int, ...] = ()
    any_of: tuple[NumberSet, ...] = ()
    or_student_total: str | None = Field(
        default=None, description="also accept the trainable parameter count of the student's model matched "
                                  "for this rubric model (a key of 'models')")
    or_student_layers: str | None = Field(
        default=None, description="also accept the per-layer parameter counts (weights plus biases, or weights "
                                  "alone) of the student's model matched for this rubric model (a key of 'models')")

    @model_validator(mode="after")
    def _one_form(self) -> TextCheck:
        if bool(self.numbers) == bool(self.any_of):
            raise ValueError("give exactly one of 'numbers' or 'any_of'")
        return self

    def student_models(self) -> tuple[str, ...]:
        """The rubric models whose student counterpart this check also accepts."""
        return tuple(dict.fromkeys(k for k in (self.or_student_total, self.or_student_layers) if k))


# --------------------------------------------------------------------------- conditions


class SplitThresholds(Strict):
    train: float = Field(ge=0, le=1)
    test: float = Field(ge=0, le=1)


class AccuracyBelow(Strict):
    model: str
    splits: tuple[Literal["train", "test"], ...] = ("train", "test")
    thresholds: dict[str, SplitThresholds] = Field(description="minimum accuracy per data profile")


class TextMissing(Strict):
    checks: tuple[str, ...] = Field(min_length=1)
    mode: Literal["all", "any"] = Field(
        default="any", description="'all': applies when every check fails; 'any': when at least one fails"
    )


class Condition(Strict):
    """When an automatic rubric line applies. Exactly one key."""

    model_missing: str | None = None
    architecture_mismatch: str | None = None
    accuracy_below: AccuracyBelow | None = None
    text_missing: TextMissing | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"a condition needs exactly one of: {names} (got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    def models(self) -> list[str]:
        if self.model_missing:
            return [self.model_missing]
        if self.architecture_mismatch:
            return [self.architecture_mismatch]
        if self.accuracy_below:
            return [self.accuracy_below.model]
        return []


# --------------------------------------------------------------------------- items


class RubricLine(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    text: str
    points: float = Field(le=0, description="0 for the 'Correct' line, negative for a deduction")
    when: Condition | None = None
    exclusive: bool = Field(
        default=False, description="when applied, the item's other deductions are not applied"
    )
    added: bool = Field(default=False, description="not in the original (TA) rubric; added by the grader")
    hidden: bool = False


class KeywordHint(Strict):
    """Shown to the TA as a suggestion, never applied by itself."""

    keywords: tuple[str, ...] = Field(min_length=1)
    if_missing: str = Field(description="rubric line id suggested when none of the keywords appears")


class Item(Strict):
    id: str
    title: str = ""
    points: float = Field(gt=0)
    grading: Literal["auto", "manual"]
    answer: str | None = Field(
        default=None, description="regex locating the student's answer (markdown heading or text)"
    )
    model: str | None = Field(default=None, description="model whose evidence the report shows")
    hidden: bool = False
    hints: tuple[KeywordHint, ...] = ()
    lines: tuple[RubricLine, ...] = Field(min_length=1)

    @property
    def model_key(self) -> str | None:
        """The rubric model this item is about: ``model``, else the first one its conditions name."""
        return self.model or next((key for line in self.lines if line.when for key in line.when.models()), None)

    @field_validator("answer")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from error
        return value

    @model_validator(mode="after")
    def _lines_consistent(self) -> Item:
        ids = [line.id for line in self.lines]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate rubric line ids: {', '.join(duplicates)}")
        automatic = [line.id for line in self.lines if line.when is not None]
        if self.grading == "auto" and not automatic:
            raise ValueError("an 'auto' item needs at least one line with a 'when' condition")
        if self.grading == "manual" and automatic:
            raise ValueError(f"a 'manual' item cannot have 'when' conditions (lines {', '.join(automatic)})")
        for hint in self.hints:
            if hint.if_missing not in ids:
                raise ValueError(f"hint names rubric line {hint.if_missing!r}, which this item does not have")
        return self


class Question(Strict):
    id: str
    title: str
    items: tuple[Item, ...] = Field(min_length=1)


class LimitsSpec(Strict):
    """Resource limits for this assignment's student processes; CLI options override them."""

    cell_timeout_s: float | None = Field(default=None, gt=0)
    total_timeout_s: float | None = Field(default=None, gt=0)
    memory_gb: float | None = Field(default=None, gt=0)
    max_processes: int | None = Field(default=None, ge=16)
    max_file_mb: float | None = Field(default=None, gt=0)
    max_output_mb: float | None = Field(default=None, gt=0)


class Assignment(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    title: str
    course: str = ""


class Rubric(Strict):
    schema_version: int
    assignment: Assignment
    data_profiles: tuple[str, ...] = Field(min_length=1)
    limits: LimitsSpec = LimitsSpec()
    models: dict[str, ModelSpec] = {}
    text_checks: dict[str, TextCheck] = {}
    questions: tuple[Question, ...] = Field(min_length=1)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"this grader reads schema_version {SCHEMA_VERSION}, the file says {value}")
        return value

    @field_validator("data_profiles")
    @classmethod
    def _known_profiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in value if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown data profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> Rubric:
        item_ids = [item.id for item in self.items()]
        duplicates = sorted({i for i in item_ids if item_ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate item ids: {', '.join(duplicates)}")
        for question in self.questions:
            for item in question.items:
                where = f"item {item.id}"
                if item.model is not None and item.model not in self.models:
                    raise ValueError(f"{where}: model {item.model!r} is not defined under 'models'")
                for line in item.lines:
                    if line.when is None:
                        continue
                    self._check_condition(f"{where}, line {line.id!r}", line.when)
        for name, check in self.text_checks.items():
            for key in check.student_models():
                if key not in self.models:
                    raise ValueError(f"text check {name!r}: model {key!r} is not defined under 'models'")
        return self

    def _check_condition(self, where: str, condition: Condition) -> None:
        for model in condition.models():
            if model not in self.models:
                raise ValueError(f"{where}: model {model!r} is not defined under 'models'")
        if condition.accuracy_below is not None:
            missing = [p for p in self.data_profiles if p not in condition.accuracy_below.thresholds]
            extra = [p for p in condition.accuracy_below.thresholds if p not in self.data_profiles]
            if missing:
                raise ValueError(f"{where}: no accuracy thresholds for data profile(s) {', '.join(missing)}")
            if extra:
                raise ValueError(f"{where}: thresholds for profile(s) not in data_profiles: {', '.join(extra)}")
        if condition.text_missing is not None:
            for check in condition.text_missing.checks:
                if check not in self.text_checks:
                    raise ValueError(f"{where}: text check {check!r} is not defined under 'text_checks'")

    # -- convenience ---------------------------------------------------------

    def items(self) -> Iterator[Item]:
        for question in self.questions:
            yield from question.items

    def item(self, item_id: str) -> Item:
        for item in self.items():
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    @property
    def total_points(self) -> float:
        return sum(item.points for item in self.items())


# --------------------------------------------------------------------------- loading


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _explain(error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        path = _yaml_path(tuple(detail["loc"]))
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see docs/rubric.md 'Format')"
        elif detail["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{path}: {message}")
    return problems


def parse_rubric(document: Any, source: str = "<rubric>") -> Rubric:
    if not isinstance(document, dict):
        raise RubricError(f"{source}: the rubric must be a YAML mapping at the top level")
    try:
        return Rubric.model_validate(document)
    except ValidationError as error:
        problems = _explain(error)
        raise RubricError(f"{source}: invalid rubric\n  " + "\n  ".join(problems)) from None


def load_rubric(path: Path) -> Rubric:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RubricError(f"{path}: cannot read the rubric ({error.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RubricError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    return parse_rubric(document, str(path))
