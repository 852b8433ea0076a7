"""TA marks for manual items (and overrides of automatic ones), from YAML or CSV.

YAML::

    aditya_singh:
      "1.2": [no_covariate_shift]              # rubric line ids applied
      "2.1": {lines: [correct], comment: "clear derivation"}
      "2.3": {lines: [correct], override: true, comment: "checked by hand"}

CSV (one row per student and item; line ids separated by ``;``)::

    student,item,lines,comment,override
    aditya_singh,1.2,no_covariate_shift,,

An item left empty (YAML ``"1.2":`` with no value, a CSV row with no lines, comment or override)
is not marked yet: it stays pending. ``grader marks template`` writes such a file for the class.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grader.rubric import Rubric


class MarksError(ValueError):
    """The marks file is invalid; the message names the file, the row or key, and the problem."""


@dataclass(frozen=True)
class Mark:
    lines: tuple[str, ...]
    comment: str = ""
    override: bool = False


@dataclass
class Marks:
    by_student: dict[str, dict[str, Mark]] = field(default_factory=dict)
    source: str = ""

    def for_student(self, student: str) -> dict[str, Mark]:
        return self.by_student.get(student, {})


def _mark(value: Any, where: str) -> Mark:
    if value is None:
        return Mark(lines=())
    if isinstance(value, list):
        return Mark(lines=tuple(str(v) for v in value))
    if isinstance(value, str):
        return Mark(lines=tuple(v.strip() for v in value.replace(",", ";").split(";") if v.strip()))
    if isinstance(value, dict):
        unknown = set(value) - {"lines", "comment", "override"}
        if unknown:
            raise MarksError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (use lines, comment, override)")
        lines = _mark(value.get("lines", []), where).lines
        return Mark(lines=lines, comment=str(value.get("comment") or ""), override=bool(value.get("override", False)))
    raise MarksError(f"{where}: expected a list of rubric line ids or a mapping with 'lines'")


def validate_marks(marks: Marks, rubric: Rubric) -> None:
    """``MarksError`` naming the student, item and line when ``marks`` do not fit ``rubric``."""
    for student, items in marks.by_student.items():
        for item_id, mark in items.items():
            where = f"{marks.source}: {student}, item {item_id}"
            try:
                item = rubric.item(item_id)
            except KeyError:
                known = ", ".join(i.id for i in rubric.items())
                raise MarksError(f"{where}: the rubric has no item {item_id!r} (items: {known})") from None
            ids = {line.id for line in item.lines}
            unknown = [line for line in mark.lines if line not in ids]
            if unknown:
                raise MarksError(f"{where}: unknown rubric line(s) {', '.join(unknown)}; "
                                 f"this item's lines are {', '.join(sorted(ids))}")
            if item.grading == "auto" and not mark.override:
                raise MarksError(f"{where}: item {item_id} is graded automatically; add 'override: true' "
                                 "to replace the automatic result")


def parse_yaml_marks(text: str, source: str) -> Marks:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise MarksError(f"{source}: not valid YAML: {error}") from None
    if isinstance(document, dict) and set(document) == {"students"}:
        document = document["students"] or {}
    if not isinstance(document, dict):
        raise MarksError(f"{source}: expected a mapping of student -> item -> rubric lines")
    marks = Marks(source=source)
    for student, items in document.items():
        if items is None:
            continue
        if not isinstance(items, dict):
            raise MarksError(f"{source}: {student}: expected a mapping of item id -> rubric lines")
        marks.by_student[str(student)] = {
            str(item): _mark(value, f"{source}: {student}, item {item}") for item, value in items.items()
            if value is not None  # an item left empty (as `grader marks template` writes it) is not marked yet
        }
    return marks


def parse_csv_marks(text: str, source: str) -> Marks:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"student", "item", "lines"} - set(reader.fieldnames or [])
    if missing:
        raise MarksError(f"{source}: missing column(s) {', '.join(sorted(missing))}; "
                         "the header must be student,item,lines[,comment][,override]")
    marks = Marks(source=source)
    for row_number, row in enumerate(reader, start=2):
        student, item = (row.get("student") or "").strip(), (row.get("item") or "").strip()
        if not student or not item:
            raise MarksError(f"{source}: row {row_number}: 'student' and 'item' are required")
        override = (row.get("override") or "").strip().lower() in ("1", "true", "yes", "y")
        mark = Mark(lines=_mark(row.get("lines") or "", f"{source}: row {row_number}").lines,
                    comment=(row.get("comment") or "").strip(), override=override)
        if not any((row.get(column) or "").strip() for column in ("lines", "comment", "override")):
            continue  # an empty row (as `grader marks template` writes it) is not marked yet
        marks.by_student.setdefault(student, {})[item] = mark
    return marks


def load_marks(path: Path, rubric: Rubric) -> Marks:
    if path.suffix.lower() in (".sqlite", ".sqlite3", ".db"):  # the database of `grader serve`
        from grader.marksdb import load_db_marks

        return load_db_marks(path, rubric)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MarksError(f"{path}: cannot read the marks file ({error.strerror})") from None
    marks = parse_csv_marks(text, str(path)) if path.suffix.lower() == ".csv" else parse_yaml_marks(text, str(path))
    validate_marks(marks, rubric)
    return marks
