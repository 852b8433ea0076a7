"""The output folder's layout: the one place that knows every path in it.

::

    OUT/
        gradebook.csv, summary.html, marks.sqlite     the class files
        <student>/                                    one folder per student
            evidence.json  report.html  report.pdf  results.json  models/
        .work/                                        scratch (removed as each student finishes)
            runtime/                                  the scripts that run inside the sandbox
            runs/<student>/f<n>/, runs/<student>/cleanroom/

Student folder names are chosen by :func:`student_ids`, which never gives a class file's name,
a scratch name or a duplicate, so a student cannot overwrite the grader's files or another
student's, whatever they are called.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

GRADEBOOK = "gradebook.csv"
SUMMARY = "summary.html"
MARKS_DB = "marks.sqlite"
SCRATCH = ".work"
CLASS_FILES = (GRADEBOOK, SUMMARY, MARKS_DB, f"{MARKS_DB}-wal", f"{MARKS_DB}-shm", f"{MARKS_DB}-journal")
MAX_ID_CHARS = 64
_UNSAFE = re.compile(r"[^\w.@-]+")


def _safe(name: str) -> str:
    """A usable folder name: letters, digits and ._@-, not starting with a dot, bounded."""
    cleaned = _UNSAFE.sub("_", name).lstrip(".-") or "unnamed"
    return cleaned[:MAX_ID_CHARS]


def _reserved(name: str) -> bool:
    folded = name.casefold()
    return folded in {f.casefold() for f in CLASS_FILES} or folded.startswith(".")


def student_ids(names: Iterable[str]) -> list[str]:
    """One folder name per submission, in order: each safe, none reserved, all distinct (also ignoring case).

    A name that is already unique keeps its form; the others get the first free ``-2``, ``-3``, ...
    """
    wanted = [_safe(name) for name in names]
    wanted = [f"{name}-student" if _reserved(name) else name for name in wanted]
    counts: dict[str, int] = {}
    for name in wanted:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    taken = {name.casefold() for name in wanted if counts[name.casefold()] == 1}
    result = []
    for name in wanted:
        if counts[name.casefold()] == 1:
            result.append(name)
            continue
        number = 1
        candidate = name
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{name[: MAX_ID_CHARS - 1 - len(str(number))]}-{number}"
        taken.add(candidate.casefold())
        result.append(candidate)
    return result


@dataclass(frozen=True)
class StudentDir:
    root: Path

    @property
    def evidence(self) -> Path:
        return self.root / "evidence.json"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def report_pdf(self) -> Path:
        return self.root / "report.pdf"

    @property
    def results_json(self) -> Path:
        """Gradescope's results file."""
        return self.root / "results.json"

    @property
    def models(self) -> Path:
        return self.root / "models"


@dataclass(frozen=True)
class OutDir:
    root: Path

    @property
    def gradebook(self) -> Path:
        return self.root / GRADEBOOK

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY

    @property
    def marks_db(self) -> Path:
        return self.root / MARKS_DB

    @property
    def scratch(self) -> Path:
        return self.root / SCRATCH

    @property
    def runtime(self) -> Path:
        return self.scratch / "runtime"

    def runs(self, student: str) -> Path:
        """Scratch space of one student's runs (removed when the student is done)."""
        return self.scratch / "runs" / student

    def student(self, student: str) -> StudentDir:
        if _reserved(student) or "/" in student or student in ("", ".", ".."):
            raise ValueError(f"{student!r} is not a student folder name")
        return StudentDir(self.root / student)

    def evidence_files(self) -> list[Path]:
        """Every stored ``<student>/evidence.json``, sorted."""
        return sorted(path for path in self.root.glob("*/evidence.json") if not _reserved(path.parent.name))
