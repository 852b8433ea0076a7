"""What a report shows beside each item: the student's relevant cells and the measured evidence.

Presentation only: nothing here changes a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grader.evidence import Cell, Evidence, FileEvidence, ModelEvidence
from grader.keyword_hints import Suggestion, suggest
from grader.render.curves import CurveView, curve_view
from grader.rubric import Item, Rubric
from grader.score import ItemScore

MAX_CELLS_PER_ITEM = 8


@dataclass(frozen=True)
class CellView:
    file: str
    cell: Cell
    why: str  # "answer", "model definition", "printed accuracy", "raised an error", "text check"


@dataclass
class ModelView:
    key: str
    class_name: str
    expected_params: int
    expected_layers: list[tuple[str, int]]
    model: ModelEvidence | None
    how: str
    problems: list[str]
    thresholds: dict[str, float] = field(default_factory=dict)
    claims: list[tuple[str, float, float | None, bool, str]] = field(default_factory=list)


@dataclass
class ItemView:
    item: Item
    score: ItemScore
    cells: list[CellView]
    model: ModelView | None
    text_checks: list[tuple[str, bool, str]]
    curve: CurveView | None = None
    suggestions: list[Suggestion] = field(default_factory=list)  # keyword hints for a pending manual item


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def answer_cells(pattern: str, evidence: Evidence) -> list[CellView]:
    regex = re.compile(pattern)
    views = []
    for file in evidence.files:
        for cell in file.cells:
            if cell.cell_type == "markdown" and regex.search(_first_line(cell.source)):
                views.append(CellView(file.path, cell, "answer"))
    return views


def _file(evidence: Evidence, path: str) -> FileEvidence | None:
    return next((f for f in evidence.files if f.path == path), None)


def model_cells(model: ModelEvidence, evidence: Evidence) -> list[CellView]:
    file = _file(evidence, model.file)
    if file is None:
        return []
    definition = re.compile(rf"^\s*class\s+{re.escape(model.class_name)}\b", re.MULTILINE)
    claim_cells = {c.cell_index for c in file.claims if c.source == "output"}
    views = []
    for cell in file.cells:
        if cell.cell_type != "code":
            continue
        if definition.search(cell.source) and file.kind == "notebook":
            views.append(CellView(file.path, cell, "model definition"))
        elif cell.index in claim_cells:
            views.append(CellView(file.path, cell, "printed accuracy"))
        elif cell.status in ("error", "timeout"):
            views.append(CellView(file.path, cell, "raised an error" if cell.status == "error" else "timed out"))
        elif file.kind == "module":
            views.append(CellView(file.path, cell, "module" if cell.index == 0 else "training run"))
    return views


def _text_cells(where: set[str], evidence: Evidence) -> list[CellView]:
    views = []
    for file in evidence.files:
        for cell in file.cells:
            labels = {f"{file.path}, cell {cell.index} ({kind})" for kind in ("markdown", "code", "output")}
            if file.kind == "module" and cell.index == 0:
                labels.add(file.path)
            if labels & where:
                views.append(CellView(file.path, cell, "text check"))
    return views


def model_view(rubric: Rubric, scored: ItemScore, evidence: Evidence) -> ModelView:
    """The item's model as the score sheet matched it (nothing is matched again here)."""
    assert scored.model_key is not None
    key, match = scored.model_key, scored.match
    spec = rubric.models[key]
    view = ModelView(
        key=key, class_name=spec.class_name, expected_params=spec.trainable_params,
        expected_layers=[(layer.type, layer.params) for layer in spec.layers],
        model=match.model if match else None, how=match.how if match else "not found",
        problems=list(scored.architecture),
    )
    for item in rubric.items():
        for line in item.lines:
            if line.when and line.when.accuracy_below and line.when.accuracy_below.model == key:
                limits = line.when.accuracy_below.thresholds.get(evidence.profile)
                if limits:
                    view.thresholds = {"train": limits.train, "test": limits.test}
    if match:
        file = _file(evidence, match.model.file)
        for check in file.claim_checks if file else []:
            view.claims.append((check.split, check.claimed, check.measured, check.consistent, check.note))
    return view


def item_views(rubric: Rubric, evidence: Evidence, scores: dict[str, ItemScore]) -> dict[str, ItemView]:
    views = {}
    for item in rubric.items():
        if item.id not in scores:
            continue
        cells: list[CellView] = []
        texts: list[tuple[str, bool, str]] = []
        model, curve, suggestions = None, None, []
        if item.answer:
            cells += answer_cells(item.answer, evidence)
            if scores[item.id].pending:
                suggestions = suggest(item, [view.cell.source for view in cells])
        scored = scores[item.id]
        if scored.model_key:
            model = model_view(rubric, scored, evidence)
            if model.model:
                cells += model_cells(model.model, evidence)
                curve = curve_view(evidence, model.model, scored.model_key, list(rubric.models))
        where: set[str] = set()
        for finding in scored.text_checks:
            texts.append((finding.description, finding.result.found, finding.result.detail))
            where.update(finding.result.where)
        if where and not item.answer:
            cells += _text_cells(where, evidence)
        seen, unique = set(), []
        for view in cells:
            if (view.file, view.cell.index) not in seen:
                seen.add((view.file, view.cell.index))
                unique.append(view)
        views[item.id] = ItemView(item, scores[item.id], unique[:MAX_CELLS_PER_ITEM], model, texts, curve,
                                  suggestions)
    return views
