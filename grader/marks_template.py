"""A marks file for the TA to fill in: every student, every manual item, its rubric lines and hints.

Loaded unchanged by ``grader.marks.load_marks`` it marks nothing (every item stays pending):
keyword hints appear as suggestions in comments (YAML) or in a ``suggestion`` column (CSV) and
are never applied by themselves.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Literal

from grader.evidence import Evidence
from grader.keyword_hints import Suggestion, suggest
from grader.points import fmt
from grader.render.context import CellView, answer_cells
from grader.render.gradebook import spreadsheet_safe
from grader.rubric import Item, Rubric

TemplateFormat = Literal["yaml", "csv"]
# characters YAML refuses anywhere in a stream, comments included (PyYAML's reader)
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
CSV_COLUMNS = ("student", "item", "lines", "comment", "override", "title", "points", "rubric_lines", "suggestion",
               "answer")


@dataclass(frozen=True)
class Entry:
    student: str
    item: Item
    answers: tuple[CellView, ...]
    suggestions: tuple[Suggestion, ...]


def entries(rubric: Rubric, evidences: list[Evidence]) -> list[Entry]:
    """One entry per student (sorted) and manual item (rubric order)."""
    found = []
    for evidence in sorted(evidences, key=lambda e: e.student):
        for item in rubric.items():
            if item.grading != "manual":
                continue
            answers = answer_cells(item.answer, evidence) if item.answer else []
            hints = suggest(item, [view.cell.source for view in answers])
            found.append(Entry(evidence.student, item, tuple(answers), tuple(hints)))
    return found


def one_line(text: str, limit: int = 90) -> str:
    """Student text made safe for a YAML comment or a CSV cell: one line, printable, bounded."""
    flat = _NOT_PRINTABLE.sub("", " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _where(entry: Entry) -> str:
    if not entry.answers:
        return f"no answer found (no markdown cell whose first line matches {entry.item.answer!r})"
    first = entry.answers[0]
    more = f" (+{len(entry.answers) - 1} more cell(s))" if len(entry.answers) > 1 else ""
    return f"answer: {first.file} cell {first.cell.index}{more}: {one_line(first.cell.source, 70)}"


def _lines(item: Item) -> list[str]:
    return [f"{line.id}: {line.text} ({fmt(line.points)})" for line in item.lines]


def render_yaml(rubric: Rubric, found: list[Entry], *, rubric_name: str, source: str) -> str:
    students = sorted({entry.student for entry in found})
    out = [
        f"# TA marks for {rubric.assignment.title} ({rubric_name}): {len(students)} student(s) from {source}",
        "# Written by `grader marks template`. Nothing in it is applied until you fill it in.",
        "#",
        "# For each item, list the ids of the rubric lines that apply, e.g.",
        '#   "1.2": [no_covariate_shift]',
        '#   "2.1": {lines: [correct], comment: "clear derivation"}',
        "# [correct] gives full marks; an item left empty stays pending. Hints are suggestions only.",
        f"# Then: grader rescore --rubric {rubric_name} --out {source} --marks <this file>",
    ]
    for student in students:
        out += ["", f"{json.dumps(student)}:"]
        for entry in (e for e in found if e.student == student):
            item = entry.item
            out.append(f"  # {item.id} {one_line(item.title, 60)} ({fmt(item.points)} pts); {_where(entry)}")
            out += [f"  #   {line}" for line in _lines(item)]
            out += [f"  #   hint: {hint.message}" for hint in entry.suggestions]
            out.append(f"  {json.dumps(item.id)}:")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """A descriptive CSV cell that a spreadsheet will not read as a formula."""
    return spreadsheet_safe(text)


def render_csv(found: list[Entry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in found:
        item = entry.item
        hints = "; ".join(hint.message for hint in entry.suggestions)
        writer.writerow([entry.student, item.id, "", "", "", _cell(one_line(item.title, 80)), fmt(item.points),
                         _cell("; ".join(_lines(item))), _cell(hints), _cell(_where(entry))])
    return buffer.getvalue()


def render_template(rubric: Rubric, evidences: list[Evidence], fmt_: TemplateFormat, *, rubric_name: str,
                    source: str) -> str:
    found = entries(rubric, evidences)
    if fmt_ == "csv":
        return render_csv(found)
    return render_yaml(rubric, found, rubric_name=rubric_name, source=source)
