"""The instructor's view of a class: ``summary.html``, one page that works offline.

What it shows: the class table (sortable), the score histogram, how often each rubric line was
applied, the measured accuracies per model, the students worth a look (most urgent first: models
that look answers up, printed accuracies above the measured ones, models that could not be
measured, errors in notebooks that lost points), the runs that timed out or crashed, and possibly
copied written answers. Deterministic for given evidence, rubric and marks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from markupsafe import Markup
from matplotlib.ticker import MaxNLocator

from grader.evidence import Evidence
from grader.render.html import environment
from grader.render.svg import PALETTE, figure_svg, new_figure
from grader.rubric import Rubric
from grader.score import ScoreSheet
from grader.similarity import COPY_MIN_WORDS, COPY_THRESHOLD, possible_copies

SPLITS = ("train", "test")


@dataclass
class StudentRow:
    student: str
    sheet: ScoreSheet
    accuracy: dict[str, dict[str, float | None]]  # model key -> split -> measured accuracy
    flags: list[str] = field(default_factory=list)  # most urgent first
    run_problems: list[str] = field(default_factory=list)
    urgency: int = len(range(4))  # the most urgent flag's priority (lower: look first)


@dataclass
class LineRate:
    item_id: str
    line_id: str
    text: str
    points: float
    students: list[str]
    graded: int  # students whose item has a score (not pending)

    @property
    def share(self) -> float:
        return len(self.students) / self.graded if self.graded else 0.0


def _accuracy(rubric: Rubric, sheet: ScoreSheet) -> dict[str, dict[str, float | None]]:
    found: dict[str, dict[str, float | None]] = {}
    for key in rubric.models:
        match = sheet.matches.get(key)
        accuracy = match.model.accuracy if match else None
        found[key] = {split: getattr(accuracy, split) if accuracy else None for split in SPLITS}
    return found


# what a TA acts on first: a model that looks answers up, a printed number above the measured one,
# a model that could not be measured, then errors in a notebook that lost automatic points
LOOKUP, OVERSTATED, UNMEASURED, ERRORS_WITH_DEDUCTIONS = range(4)


def _flags(evidence: Evidence, sheet: ScoreSheet) -> list[tuple[int, str]]:
    """(priority, text) of what is worth a TA's look, most urgent first.

    Not flagged (they are notes in the report): a printed accuracy *below* the measured one (the
    notebook evaluated with dropout on, or averaged over epochs), and cells that raised in a
    notebook whose automatic items lost nothing.
    """
    flags = [(LOOKUP, f"{model.id}: {model.lookup.suspected}") for model in evidence.models
             if model.lookup and model.lookup.suspected]
    for file in evidence.files:
        flags += [(OVERSTATED, f"{file.path}: {check.note}") for check in file.claim_checks
                  if check.overstated or (check.measured is None and not check.consistent)]
    flags += [(UNMEASURED, f"{model.id}: {model.error}") for model in evidence.models if model.error]
    lost = [item.id for item in sheet.items() if item.grading == "auto" and not item.pending
            and (item.score or 0) < item.max_points]
    if lost:
        for file in evidence.files:
            raised = [f"cell {cell.index} ({cell.error.ename})" for cell in file.cells
                      if cell.status == "error" and cell.error]
            if raised:
                flags.append((ERRORS_WITH_DEDUCTIONS, f"{file.path}: {len(raised)} cell(s) raised ("
                              f"{', '.join(raised[:5])}) and item(s) {', '.join(lost)} lost points"))
    return sorted(flags, key=lambda flag: flag[0])


def _run_problems(evidence: Evidence) -> list[str]:
    problems = list(evidence.problems)
    for file in evidence.files:
        if file.status != "completed":
            problems.append(f"{file.path}: {file.status}{' - ' + file.message if file.message else ''}")
        timed_out = [str(cell.index) for cell in file.cells if cell.status == "timeout"]
        if timed_out:
            problems.append(f"{file.path}: cell(s) {', '.join(timed_out)} ran past the cell time limit")
    return problems


def student_rows(rubric: Rubric, graded: list[tuple[Evidence, ScoreSheet]]) -> list[StudentRow]:
    rows = []
    for evidence, sheet in sorted(graded, key=lambda pair: pair[1].student):
        flags = _flags(evidence, sheet)
        row = StudentRow(evidence.student, sheet, _accuracy(rubric, sheet), [text for _, text in flags],
                         _run_problems(evidence))
        if flags:
            row.urgency = flags[0][0]
        rows.append(row)
    return rows


def worth_a_look(rows: list[StudentRow]) -> list[StudentRow]:
    """Flagged students, most urgent first; among equals, the one who lost more points first."""
    return sorted((row for row in rows if row.flags),
                  key=lambda row: (row.urgency, row.sheet.total - row.sheet.max_points, row.student))


def line_rates(rubric: Rubric, rows: list[StudentRow]) -> list[LineRate]:
    """How many students each rubric line was applied to, among those whose item is scored."""
    rates = []
    for item in rubric.items():
        scored = [row for row in rows if any(i.id == item.id for i in row.sheet.items())]
        results = [(row.student, row.sheet.item(item.id)) for row in scored]
        graded = sum(1 for _, result in results if not result.pending)
        if not graded:
            continue
        for line in item.lines:
            students = [student for student, result in results
                        if not result.pending and any(r.id == line.id and r.applied for r in result.lines)]
            rates.append(LineRate(item.id, line.id, line.text, line.points, students, graded))
    return rates


# --------------------------------------------------------------------------- plots


def histogram(rows: list[StudentRow], max_points: float) -> Markup:
    figure = new_figure(6.4, 2.4)
    axes = figure.add_subplot()
    width = 5.0 if max_points >= 50 else 1.0
    edges = [width * i for i in range(int(max_points // width) + 2)]
    axes.hist([row.sheet.total for row in rows], bins=edges, color=PALETTE[0], edgecolor="white")
    axes.set_xlim(0, max_points + width)
    axes.set_xlabel(f"total points (of {max_points:g}; graded items only)")
    axes.set_ylabel("students")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    return figure_svg(figure, "summary-histogram", "histogram of the students' total points")


def accuracy_plot(rubric: Rubric, rows: list[StudentRow], profile: str) -> Markup:
    """Each student's measured accuracy per model and split (dots), with the rubric's minimum (dashes)."""
    figure = new_figure(6.4, 2.8)
    axes = figure.add_subplot()
    labels = []
    for position, (key, split) in enumerate((key, split) for key in rubric.models for split in SPLITS):
        labels.append(f"{key} {split}")
        values = sorted(v for row in rows if (v := row.accuracy[key][split]) is not None)
        offsets = [((i % 7) - 3) * 0.05 for i in range(len(values))]  # fixed spread, no randomness
        axes.scatter([position + o for o in offsets], values, s=14, color=PALETTE[position // 2 % len(PALETTE)],
                     alpha=0.8, zorder=3)
        minimum = threshold(rubric, key, split, profile)
        if minimum is not None:
            axes.hlines(minimum, position - 0.35, position + 0.35, colors="#a11d1d", linestyles="dashed", zorder=2)
    axes.set_xticks(range(len(labels)), labels)
    axes.set_ylim(0, 1.02)
    axes.set_ylabel(f"measured accuracy ({profile} data)")
    axes.grid(axis="y", alpha=0.3)
    return figure_svg(figure, "summary-accuracy", "measured accuracy per model and split; dashes: rubric minimum")


def threshold(rubric: Rubric, key: str, split: str, profile: str) -> float | None:
    for item in rubric.items():
        for line in item.lines:
            below = line.when.accuracy_below if line.when else None
            if below and below.model == key and split in below.splits and profile in below.thresholds:
                return float(getattr(below.thresholds[profile], split))
    return None


# --------------------------------------------------------------------------- page


def pending_counts(rubric: Rubric, rows: list[StudentRow]) -> dict[str, int]:
    """Item id -> how many students still wait for TA marks on it, in rubric order."""
    counts = Counter(item for row in rows for item in row.sheet.pending_items)
    return {item.id: counts[item.id] for item in rubric.items() if counts[item.id]}


def render_summary(rubric: Rubric, graded: list[tuple[Evidence, ScoreSheet]], *, rubric_name: str) -> str:
    rows = student_rows(rubric, graded)
    profiles = Counter(evidence.profile for evidence, _ in graded)
    profile = profiles.most_common(1)[0][0] if profiles else rubric.data_profiles[0]
    totals = sorted(row.sheet.total for row in rows)
    return environment().get_template("summary.html.j2").render(
        rubric=rubric, rubric_name=rubric_name, rows=rows, rates=line_rates(rubric, rows),
        flagged=worth_a_look(rows),
        pending=pending_counts(rubric, rows),
        profiles=sorted(profiles.items()), profile=profile, totals=totals,
        median=(totals[len(totals) // 2] + totals[(len(totals) - 1) // 2]) / 2 if totals else 0.0,
        histogram=histogram(rows, rubric.total_points) if rows else None,
        accuracy_plot=accuracy_plot(rubric, rows, profile) if rows and rubric.models else None,
        thresholds={f"{key} {split}": threshold(rubric, key, split, profile) for key in rubric.models
                    for split in SPLITS},
        copies=possible_copies(rubric, [evidence for evidence, _ in graded]), copy_threshold=COPY_THRESHOLD,
        copy_min_words=COPY_MIN_WORDS,
    )
