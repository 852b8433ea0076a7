"""What the grading app knows: the class's stored evidence, the rubric (with its edits), and the marks database.

Evidence is read once at start (it does not change while grading); marks are always read from the
database, so that two app processes or a ``grader marks import`` beside the app are seen at once.
Scores are recomputed with the pure ``grader.score.score`` on every request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from grader.evidence import Evidence
from grader.keyword_hints import suggest
from grader.marks import Mark, MarksError, validate_marks
from grader.marksdb import MarksDB, MarkState
from grader.outputs import publish_class, publish_student, stored_evidence
from grader.render.context import CellView, answer_cells
from grader.render.pdf import Printer, find_browser
from grader.rubric import Item, load_rubric
from grader.rubric_edits import EditAction, RubricEdit, apply_edits, new_line_id
from grader.score import ScoreSheet, score
from grader.similarity import GROUP_THRESHOLD, answer_text, group_answers


class ServeError(ValueError):
    """The app cannot start on this folder: no evidence, marks that do not fit the rubric."""


@dataclass
class Student:
    name: str
    evidence: Evidence
    answers: dict[str, list[CellView]] = field(default_factory=dict)  # manual item id -> answer cells


@dataclass(frozen=True)
class Published:
    students: list[str]
    unchanged: int
    pdf_errors: list[str]
    summary: Path


@dataclass(frozen=True)
class RubricChange:
    edit: RubricEdit
    rescored: list[tuple[str, float | None, float | None]]  # student, item score before, after


class Grading:
    """One class being graded; safe to use from several threads."""

    def __init__(self, out_dir: Path, rubric_path: Path, db: MarksDB, *, pdf: bool = False) -> None:
        self.out_dir = out_dir
        self.rubric_path = rubric_path
        self.db = db
        self.pdf = pdf
        self.base_rubric = load_rubric(rubric_path)
        self.rubric = apply_edits(self.base_rubric, db.rubric_edits(), source=str(db.path))
        self.students: dict[str, Student] = {}
        self.skipped: list[str] = []
        for path, evidence, problem in stored_evidence(out_dir):
            if evidence is None:
                self.skipped.append(problem)
            elif evidence.profile not in self.rubric.data_profiles:
                self.skipped.append(f"{path}: data profile {evidence.profile!r} is not in the rubric")
            else:
                self.students[evidence.student] = Student(evidence.student, evidence)
        if not self.students:
            raise ServeError(f"{out_dir}: no */evidence.json found; run 'grader grade' (or 'grader rescore') on this "
                             "folder first")
        self.order = sorted(self.students)
        for student in self.students.values():
            for item in self.rubric.items():
                if item.answer:
                    student.answers[item.id] = answer_cells(item.answer, student.evidence)
        try:
            validate_marks(db.marks(), self.rubric)
        except MarksError as error:
            raise ServeError(f"{error}. The marks database refers to something this rubric does not have: start with "
                             "the rubric the marks were made with; nothing was changed") from None
        self._lock = threading.RLock()
        self._publish_lock = threading.Lock()
        self._groups: dict[tuple[str, float], list[list[str]]] = {}
        self._rubric_version = 0
        self._auto: dict[str, tuple[int, ScoreSheet]] = {}

    # -- reading ---------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        return self.rubric.item(item_id)

    def marks_of(self, student: str) -> dict[str, Mark]:
        return {item: state.mark for (_, item), state in self.db.current(student=student).items()
                if state.mark is not None}

    def _automatic(self, student: str) -> ScoreSheet:
        """The student's sheet without marks (automatic items scored), cached until the rubric changes."""
        version = self._rubric_version
        cached = self._auto.get(student)
        if cached is not None and cached[0] == version:
            return cached[1]
        sheet = score(self.rubric, self.students[student].evidence, {})
        self._auto[student] = (version, sheet)
        return sheet

    def warm_up(self) -> threading.Thread:
        """Score every student's automatic items (their text checks take milliseconds) and group the answers of
        every manual item, in a background thread."""

        def run() -> None:
            for student in self.order:
                self._automatic(student)
            for item in self.rubric.items():
                if item.grading == "manual":
                    self.groups(item.id)

        thread = threading.Thread(target=run, name="grader-serve-warm-up", daemon=True)
        thread.start()
        return thread

    def sheet(self, student: str, marks: dict[str, Mark] | None = None) -> ScoreSheet:
        """``score(rubric, evidence, marks)``: the items a TA marks are scored now, the automatic ones come from
        the cached sheet (``score`` treats every item on its own, so the result is the same; tested)."""
        marks = self.marks_of(student) if marks is None else marks
        rubric = self.rubric
        base = self._automatic(student)
        by_hand = {item.id for item in rubric.items()
                   if item.grading == "manual" or (item.id in marks and marks[item.id].override)}
        questions = tuple(q.model_copy(update={"items": tuple(i for i in q.items if i.id in by_hand)})
                          for q in rubric.questions)
        checks = {name for item in rubric.items() if item.id in by_hand for line in item.lines
                  if line.when and line.when.text_missing for name in line.when.text_missing.checks}
        needed = {name: check for name, check in rubric.text_checks.items() if name in checks}
        marked = score(rubric.model_copy(update={"questions": questions, "text_checks": needed}),
                       self.students[student].evidence, marks)
        scored = {item.id: item for item in marked.items()}
        return dataclasses.replace(base, questions=tuple(
            dataclasses.replace(q, items=tuple(scored.get(i.id, i) for i in q.items)) for q in base.questions))

    def states(self, item_id: str) -> dict[str, MarkState]:
        """Student -> current state for ``item_id`` (never-marked students at version 0)."""
        found = {student: state for (student, _), state in self.db.current(item=item_id).items()}
        return {student: found.get(student, MarkState(student, item_id)) for student in self.order}

    def graded(self, item_id: str, states: dict[str, MarkState] | None = None) -> set[str]:
        """Students whose item has a score: marked (manual items), or any student (automatic items)."""
        if self.item(item_id).grading == "auto":
            return set(self.order)
        states = self.states(item_id) if states is None else states
        return {student for student, state in states.items() if state.mark is not None and student in self.students}

    def neighbours(self, item_id: str, student: str) -> tuple[str | None, str | None]:
        position = self.order.index(student)
        previous = self.order[position - 1] if position > 0 else None
        following = self.order[position + 1] if position + 1 < len(self.order) else None
        return previous, following

    def next_ungraded(self, item_id: str, after: str | None = None) -> str | None:
        """The first student after ``after`` (wrapping around, ``after`` itself last) whose item has no mark."""
        graded = self.graded(item_id)
        start = self.order.index(after) + 1 if after in self.students else 0
        for student in self.order[start:] + self.order[:start]:
            if student not in graded and student != after:
                return student
        return None

    def answer_text(self, item_id: str, student: str) -> str:
        return answer_text(self.rubric, self.students[student].evidence, item_id)

    def hints(self, item_id: str, student: str) -> tuple[list[str], list[str]]:
        """(messages, keywords to highlight) of the item's keyword hints for this student's answer."""
        item = self.item(item_id)
        cells = self.students[student].answers.get(item_id, [])
        messages = [hint.message for hint in suggest(item, [view.cell.source for view in cells])]
        return messages, [keyword for hint in item.hints for keyword in hint.keywords]

    def groups(self, item_id: str, threshold: float = GROUP_THRESHOLD) -> list[list[str]]:
        key = (item_id, round(threshold, 3))
        with self._lock:
            if key not in self._groups:
                texts = {student: self.answer_text(item_id, student) for student in self.order}
                self._groups[key] = group_answers(texts, threshold)
            return self._groups[key]

    def group_of(self, item_id: str, student: str) -> list[str]:
        return next((group for group in self.groups(item_id) if student in group), [student])

    # -- rubric changes --------------------------------------------------------------

    def change_rubric(self, item_id: str, line_id: str | None, text: str, points: float, *, who: str) -> RubricChange:
        """Add a line (``line_id`` None) or change one; returns the students whose item score moved."""
        with self._lock:
            item = self.item(item_id)
            action: EditAction = "add" if line_id is None else "edit"
            line = new_line_id(item, text) if line_id is None else line_id
            candidate = RubricEdit(item_id, line, action, text.strip(), float(points))
            new_rubric = apply_edits(self.rubric, [candidate], source="this change")  # raises before anything is kept
            before = {student: self.sheet(student).item(item_id).score for student in self.order}
            edit = self.db.add_rubric_edit(item_id, line, action, text.strip(), float(points), who=who)
            self.rubric = new_rubric
            self._rubric_version += 1
            self._groups.clear()
            marked = {student for student, state in self.states(item_id).items()
                      if state.mark is not None and line in state.mark.lines}
            rescored = []
            for student in self.order:
                after = self.sheet(student).item(item_id).score
                if student in marked or after != before[student]:
                    rescored.append((student, before[student], after))
            return RubricChange(edit, rescored)

    # -- publishing ------------------------------------------------------------------

    def fingerprint(self, sheet: ScoreSheet) -> str:
        return hashlib.sha256(repr(sheet).encode()).hexdigest()

    def changed(self) -> list[str]:
        """Students whose score sheet differs from the one last published from this database."""
        published = self.db.published()
        return [student for student in self.order if published.get(student) != self.fingerprint(self.sheet(student))]

    def publish(self, *, who: str, everyone: bool = False) -> Published:
        """Re-render the reports (and PDFs), results.json, gradebook and summary of the students whose marks changed."""
        with self._publish_lock:
            students = list(self.order) if everyone else self.changed()
            marks = self.db.marks()
            rubric_name = str(self.rubric_path)
            if self.db.rubric_edits():
                rubric_name += f" + {len(self.db.rubric_edits())} change(s) in {self.db.path.name}"
            fingerprints, errors = {}, []
            browser = find_browser() if self.pdf and students else None
            printer = Printer(browser) if browser else None
            try:
                for student in students:
                    evidence = self.students[student].evidence
                    done = publish_student(self.out_dir, self.rubric, rubric_name, evidence, marks, printer=printer)
                    fingerprints[student] = self.fingerprint(done.sheet)
                    if done.pdf_error:
                        errors.append(done.pdf_error)
            finally:
                if printer is not None:
                    printer.close()
            publish_class(self.out_dir, self.rubric, marks, rubric_name=rubric_name)
            if fingerprints:
                self.db.record_published(fingerprints, who=who)
            if self.pdf and browser is None and students:
                errors.append("Chromium was not found: report.pdf is skipped")
            return Published(students, len(self.order) - len(students), errors, self.out_dir / "summary.html")
