"""Marks written back in the formats ``grader.marks`` reads (YAML, CSV): what ``grader marks export`` writes.

Loading what these functions write gives the same marks (tested): a mark with no lines, no comment
and no override (full points in YAML as ``[]``) is written to CSV with ``override`` ``false``, so
that the row is not read as "not marked yet".
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

import yaml

from grader.marks import Mark, Marks

COLUMNS = ("student", "item", "lines", "comment", "override")


def _item_key(item: str) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\s]", item))


def ordered(marks: Marks, item_order: Sequence[str] = ()) -> list[tuple[str, str, Mark]]:
    """(student, item, mark) sorted by student, then in rubric order (unknown items after, numerically)."""
    rank = {item: position for position, item in enumerate(item_order)}
    return [(student, item, mark) for student in sorted(marks.by_student)
            for item, mark in sorted(marks.by_student[student].items(),
                                     key=lambda pair: (rank.get(pair[0], len(rank)), _item_key(pair[0])))]


def _yaml_value(mark: Mark) -> Any:
    if not mark.comment and not mark.override:
        return list(mark.lines)
    value: dict[str, Any] = {"lines": list(mark.lines)}
    if mark.comment:
        value["comment"] = mark.comment
    if mark.override:
        value["override"] = True
    return value


def marks_yaml(marks: Marks, item_order: Sequence[str] = (), header: str = "") -> str:
    document: dict[str, dict[str, Any]] = {}
    for student, item, mark in ordered(marks, item_order):
        document.setdefault(student, {})[item] = _yaml_value(mark)
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=None,
                          width=4096) if document else "{}\n"
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + body


def marks_csv(marks: Marks, item_order: Sequence[str] = ()) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for student, item, mark in ordered(marks, item_order):
        override = "true" if mark.override else ("false" if not mark.lines and not mark.comment else "")
        writer.writerow([student, item, ";".join(mark.lines), mark.comment, override])
    return buffer.getvalue()
