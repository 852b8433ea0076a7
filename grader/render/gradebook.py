"""The class gradebook: one row per student, one column per item, the total.

Every text cell is made safe for spreadsheets: a refused file's name is the student's choice, and
``=HYPERLINK(...)`` in it must stay text when an instructor opens the CSV.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from grader.evidence import Evidence
from grader.fsutil import atomic_write_text
from grader.rubric import Rubric
from grader.score import ScoreSheet

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that Excel, LibreOffice and Google Sheets show as text, never run as a formula."""
    return "'" + text if text.lstrip(" ")[:1] in FORMULA_STARTS else text


def gradebook_frame(rubric: Rubric, graded: list[tuple[Evidence, ScoreSheet]]) -> pd.DataFrame:
    rows = []
    for evidence, sheet in sorted(graded, key=lambda pair: pair[1].student):
        row: dict[str, object] = {"student": sheet.student}
        for item in sheet.items():
            row[item.id] = item.score  # empty when pending
        row["total"] = sheet.total
        row["max"] = sheet.max_points
        row["pending"] = " ".join(sheet.pending_items)
        row["status"] = "ok" if evidence.status == "ok" and all(f.status == "completed" for f in evidence.files) \
            else "; ".join([p for p in evidence.problems] + [f"{f.path}: {f.status}" for f in evidence.files
                                                              if f.status != "completed"])
        row["data_profile"] = evidence.profile
        row["sandbox"] = evidence.environment.sandbox
        row["submission_sha256"] = evidence.submission_sha256
        rows.append(row)
    columns = ["student", *[item.id for item in rubric.items()], "total", "max", "pending", "status",
               "data_profile", "sandbox", "submission_sha256"]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, str):
                row[key] = spreadsheet_safe(value)
    return pd.DataFrame(rows, columns=columns)


def write_gradebook(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False, float_format="%g"))
