"""Gradescope ``results.json``: one test per rubric item, in the autograder output format.

Spec: https://gradescope-autograders.readthedocs.io/en/latest/specs/ (validated by
tests/data/gradescope_results.schema.json). The top-level ``score`` is the report's total; a manual
item still awaiting TA marks has no score and no status, and its output says so.
"""

from __future__ import annotations

import json
from typing import Any

from grader.evidence import Evidence
from grader.points import fmt
from grader.render.context import ModelView, model_view
from grader.rubric import Rubric
from grader.score import ItemScore, ScoreSheet


def _line_text(item: ItemScore) -> list[str]:
    rows = []
    for line in item.lines:
        mark = "[x]" if line.applied else "[ ]"
        rows.append(f"{mark} {line.points + 0.0:g} pts  {line.text}{' (grader)' if line.added else ''}")
        if line.applied and line.reason:
            rows.append(f"      {line.reason}")
    return rows


def _model_text(view: ModelView) -> list[str]:
    model = view.model
    if model is None:
        return [f"Measured: no {view.class_name} was found after running the submission."]
    count = f"{model.trainable_params:,}" if model.trainable_params is not None else "unknown"
    rows = [f"Measured: {view.how}", f"  trainable parameters {count} (expected {view.expected_params:,})"]
    if model.accuracy:
        rows.append(f"  accuracy: train {model.accuracy.train:.3f} on {model.accuracy.n_train:,} training digits, "
                    f"test {model.accuracy.test:.3f} on {model.accuracy.n_test:,} held-out digits")
    if model.error:
        rows.append(f"  problem: {model.error}")
    rows += [f"  printed {split} accuracy: {note}" for split, _, _, _, note in view.claims]
    return rows


def _test(rubric: Rubric, evidence: Evidence, question_id: str, item: ItemScore) -> dict[str, Any]:
    test: dict[str, Any] = {"name": f"{item.id} {item.title}".strip(), "number": item.id}
    if item.pending:
        output = ["Pending: this written answer is graded by a TA; the score will be added when it is marked.",
                  "", *_line_text(item)]
    else:
        test["score"] = item.score
        output = [f"{fmt(item.score or 0)} / {fmt(item.max_points)}", "", *_line_text(item)]
    test["max_score"] = item.max_points
    if not item.pending:
        test["status"] = "passed" if (item.score or 0) >= item.max_points else "failed"
    if item.comment:
        output += ["", f"TA comment: {item.comment}"]
    if item.model_key and item.source == "auto":
        output += ["", *_model_text(model_view(rubric, item, evidence))]
    test["output"] = "\n".join(output)
    test["visibility"] = "after_published" if item.hidden else "visible"
    test["tags"] = [f"question {question_id}", item.grading] + (["pending"] if item.pending else [])
    return test


def provenance(evidence: Evidence, rubric_name: str) -> dict[str, Any]:
    """What the report's provenance table shows, as data."""
    extra: dict[str, Any] = {
        "grader_version": evidence.grader_version,
        "rubric": rubric_name,
        "student": evidence.student,
        "submission_sha256": evidence.submission_sha256,
        "files": [{"path": f.path, "sha256": f.sha256, "status": f.status} for f in evidence.files],
        "data": evidence.data,
        "environment": evidence.environment.model_dump(),
        "seed": evidence.seed,
        "started_at": evidence.started_at,
        "duration_s": evidence.duration_s,
    }
    limits = getattr(evidence, "limits", None)
    if limits:
        extra["limits"] = limits
    return extra


def results(rubric: Rubric, evidence: Evidence, sheet: ScoreSheet, *, rubric_name: str) -> dict[str, Any]:
    summary = [f"{sheet.assignment}: {sheet.total_label}", f"Data profile: {evidence.profile}; "
               f"sandbox: {evidence.environment.sandbox}"]
    summary += [f"Problem: {problem}" for problem in evidence.problems]
    summary += [f"{f.path}: {f.status}{' - ' + f.message if f.message else ''}" for f in evidence.files
                if f.status != "completed" or f.message]
    if sheet.pending_items:
        summary.append(f"Pending TA marks: {', '.join(sheet.pending_items)}; the score counts only graded items.")
    return {
        "score": sheet.total,
        "execution_time": round(evidence.duration_s),
        "output": "\n".join(summary),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": provenance(evidence, rubric_name),
        "tests": [_test(rubric, evidence, q.id, item) for q in sheet.questions for item in q.items],
    }


def render_results(rubric: Rubric, evidence: Evidence, sheet: ScoreSheet, *, rubric_name: str) -> str:
    return json.dumps(results(rubric, evidence, sheet, rubric_name=rubric_name), indent=1, ensure_ascii=False) + "\n"
