"""Rubric line changes made while grading: added lines, new points or text for a line.

They are stored in the marks database (``grader.marksdb``), applied on top of the rubric file when
the database is used, and exported as a new rubric file by ``grader rubric export``; the rubric
file itself is never edited. Applying an edit is idempotent (an ``add`` of a line that exists sets
its text and points), so edits applied to an exported rubric change nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from grader.rubric import Item, Rubric, RubricLine, parse_rubric

EditAction = Literal["add", "edit"]
_ID = re.compile(r"[^a-z0-9]+")


class RubricEditError(ValueError):
    """A rubric change that cannot be applied: unknown item or line, points above zero, empty text."""


@dataclass(frozen=True)
class RubricEdit:
    item: str
    line: str
    action: EditAction
    text: str
    points: float
    id: int = 0  # the database row
    at: str = ""
    who: str = ""

    def describe(self) -> str:
        verb = "added line" if self.action == "add" else "changed line"
        return f"{self.item}: {verb} {self.line!r}: {self.text} ({self.points:+g})"


def new_line_id(item: Item, text: str) -> str:
    """A line id for ``text`` that is unique in ``item``: its words, lowercase, joined by underscores."""
    base = _ID.sub("_", text.lower()).strip("_")[:40].strip("_") or "line"
    taken = {line.id for line in item.lines}
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}_{number}", number + 1
    return candidate


def _check(edit: RubricEdit) -> None:
    if not edit.text.strip():
        raise RubricEditError(f"item {edit.item}, line {edit.line!r}: the text is empty")
    if edit.points > 0:
        raise RubricEditError(f"item {edit.item}, line {edit.line!r}: points must be 0 or negative (a deduction), "
                              f"not {edit.points:g}")


def _edited_item(item: Item, edit: RubricEdit) -> Item:
    _check(edit)
    if any(line.id == edit.line for line in item.lines):
        lines = tuple(line.model_copy(update={"text": edit.text, "points": float(edit.points)})
                      if line.id == edit.line else line for line in item.lines)
    elif edit.action == "add":
        lines = (*item.lines, RubricLine(id=edit.line, text=edit.text, points=edit.points))
    else:
        raise RubricEditError(f"item {edit.item} has no rubric line {edit.line!r} to change "
                              f"(its lines: {', '.join(line.id for line in item.lines)})")
    return item.model_copy(update={"lines": lines})


def apply_edits(rubric: Rubric, edits: Iterable[RubricEdit], source: str = "the marks database") -> Rubric:
    """``rubric`` with ``edits`` applied in order, validated as a rubric file is."""
    edits = list(edits)
    if not edits:
        return rubric
    items = {item.id: item for item in rubric.items()}
    for edit in edits:
        if edit.item not in items:
            raise RubricEditError(f"{source}: a rubric change made while grading refers to item {edit.item!r}, which "
                                  f"the rubric does not have (items: {', '.join(items)})")
        try:
            items[edit.item] = _edited_item(items[edit.item], edit)
        except RubricEditError as error:
            raise RubricEditError(f"{source}: {error}") from None
    questions = tuple(q.model_copy(update={"items": tuple(items[i.id] for i in q.items)}) for q in rubric.questions)
    try:
        return Rubric.model_validate(rubric.model_copy(update={"questions": questions}).model_dump())
    except ValidationError as error:
        raise RubricEditError(f"{source}: the rubric changes make the rubric invalid: {error}") from None


def _line_document(document: dict[str, Any], edit: RubricEdit) -> None:
    for question in document.get("questions") or []:
        for item in question.get("items") or []:
            if str(item.get("id")) != edit.item:
                continue
            lines = item.setdefault("lines", [])
            for line in lines:
                if line.get("id") == edit.line:
                    line["text"], line["points"] = edit.text, _number(edit.points)
                    return
            lines.append({"id": edit.line, "text": edit.text, "points": _number(edit.points)})
            return
    raise RubricEditError(f"the rubric file has no item {edit.item!r}")


def _number(points: float) -> int | float:
    return int(points) if float(points).is_integer() else float(points)


def export_rubric(source_text: str, edits: list[RubricEdit], *, header: str, source: str = "<rubric>") -> str:
    """The rubric file's YAML with ``edits`` applied, preceded by ``header`` (comment lines), validated.

    The YAML is re-written (its comments are not kept; the header lists the changes).
    """
    document = copy.deepcopy(yaml.safe_load(source_text))
    for edit in edits:
        _check(edit)
        _line_document(document, edit)
    parse_rubric(document, source)  # raises RubricError when the result is not a valid rubric
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + body
