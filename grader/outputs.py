"""Score stored evidence and write what users read: per-student reports and the class files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.evidence import Evidence, read_evidence
from grader.fsutil import atomic_write_text
from grader.marks import Marks
from grader.outdir import OutDir
from grader.render.gradebook import gradebook_frame, write_gradebook
from grader.render.gradescope import render_results
from grader.render.html import render_report
from grader.render.pdf import PdfError, Printer
from grader.render.summary import render_summary
from grader.rubric import Rubric
from grader.score import ScoreSheet, score


@dataclass(frozen=True)
class Published:
    evidence: Evidence
    sheet: ScoreSheet
    report: Path
    pdf: Path | None = None
    pdf_error: str = ""


def _out(out: OutDir | Path) -> OutDir:
    return out if isinstance(out, OutDir) else OutDir(Path(out))


def publish_student(out: OutDir | Path, rubric: Rubric, rubric_name: str, evidence: Evidence,
                    marks: Marks | None, *, printer: Printer | None = None) -> Published:
    """``report.html``, ``results.json`` (Gradescope) and, given a Chromium ``printer``, ``report.pdf``.

    Without a printer a stale ``report.pdf`` is removed: it would disagree with the new report.
    """
    sheet = score(rubric, evidence, marks.for_student(evidence.student) if marks else None)
    folder = _out(out).student(evidence.student)
    atomic_write_text(folder.report_html, render_report(rubric, evidence, sheet, rubric_name=rubric_name))
    atomic_write_text(folder.results_json, render_results(rubric, evidence, sheet, rubric_name=rubric_name))
    if printer is None:
        folder.report_pdf.unlink(missing_ok=True)
        return Published(evidence, sheet, folder.report_html)
    try:
        printer.print(folder.report_html, folder.report_pdf)
    except PdfError as error:
        folder.report_pdf.unlink(missing_ok=True)
        return Published(evidence, sheet, folder.report_html, None, f"{evidence.student}: no report.pdf: {error}")
    return Published(evidence, sheet, folder.report_html, folder.report_pdf)


def publish_class(out: OutDir | Path, rubric: Rubric, marks: Marks | None, *, rubric_name: str = "",
                  published: list[Published] | None = None) -> Path:
    """The gradebook and the instructor summary of every student in ``out``, not only the last batch's.

    The students in ``published`` (this run's) keep the sheets they were scored with; only the others
    (graded by an earlier run into the same folder) are scored here.
    """
    out = _out(out)
    scored = {item.evidence.student: item for item in published or []}
    graded = []
    for _, evidence, _ in stored_evidence(out):
        if evidence is None or evidence.profile not in rubric.data_profiles:
            continue
        known = scored.get(evidence.student)
        if known is not None and (known.evidence.submission_sha256, known.evidence.started_at) == (
                evidence.submission_sha256, evidence.started_at):
            graded.append((known.evidence, known.sheet))
        else:
            graded.append((evidence, score(rubric, evidence, marks.for_student(evidence.student) if marks else None)))
    write_gradebook(out.gradebook, gradebook_frame(rubric, graded))
    atomic_write_text(out.summary, render_summary(rubric, graded, rubric_name=rubric_name))
    return out.gradebook


def stored_evidence(out: OutDir | Path) -> list[tuple[Path, Evidence | None, str]]:
    """Every ``<out>/<student>/evidence.json``: (path, evidence or None, error message)."""
    found: list[tuple[Path, Evidence | None, str]] = []
    for path in _out(out).evidence_files():
        try:
            found.append((path, read_evidence(path), ""))
        except (OSError, ValueError, RecursionError) as error:
            found.append((path, None, f"{path}: unreadable evidence ({str(error).splitlines()[0][:200]})"))
    return found
