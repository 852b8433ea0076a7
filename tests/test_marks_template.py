"""`grader marks template`: a marks file for the class that the marks loader reads unchanged."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import RUBRIC
from factories import evidence, markdown

from grader.cli import EXIT_INPUT, cli
from grader.evidence import Evidence, read_evidence, write_evidence
from grader.keyword_hints import suggest
from grader.marks import load_marks
from grader.marks_template import render_template
from grader.rubric import Rubric
from grader.score import score

CLASS = Path(__file__).parent / "data" / "class"
MANUAL = ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1"]


def answers(batchnorm: str) -> Evidence:
    return evidence(cells=[
        markdown(0, "**Problem 1 A)**\nPooling makes CNNs translation invariant."),
        markdown(1, f"**Problem 1 B)**\n{batchnorm}"),
        markdown(2, "**Problem 2.1**\nTwo linear layers with a ReLU between them."),
    ], student="ana")


@pytest.fixture
def graded(tmp_path: Path) -> Path:
    out = tmp_path / "reports"
    shutil.copytree(CLASS, out)
    return out


def test_hints_are_suggestions_from_the_answer_text(rubric: Rubric) -> None:
    item = rubric.item("1.2")
    missing = suggest(item, ["Batch norm normalises each mini-batch."])
    assert [s.suggested for s in missing] == [True]
    assert "consider “did not mention internal co-varient shift” (-1, line id no_covariate_shift)" in missing[0].message
    found = suggest(item, ["It reduces internal Co-Variate\nshift."])
    assert not found[0].suggested and found[0].found == ("co-variate shift",)
    assert suggest(item, []) == []  # no answer, no suggestion


def test_yaml_template_loads_unchanged_and_marks_nothing(tmp_path: Path, rubric: Rubric) -> None:
    students = [answers("Normalises each batch."), read_evidence(CLASS / "aditya_singh" / "evidence.json")]
    text = render_template(rubric, students, "yaml", rubric_name="rubric/hw4.yaml", source="reports/")
    path = tmp_path / "marks.yaml"
    path.write_text(text)
    marks = load_marks(path, rubric)
    assert all(not items for items in marks.by_student.values())
    assert set(yaml.safe_load(text)) == {"aditya_singh", "ana"}
    sheet = score(rubric, students[1], marks.for_student("aditya_singh"))
    assert sheet.pending_items == MANUAL
    # every manual item of every student, with its rubric lines as comments
    assert text.count('\n  "1.2":\n') == 2
    assert "#   no_covariate_shift: did not mention internal co-varient shift (-1)" in text
    assert "#   missing: Missing solution (-15)" in text
    assert "hint: none of “covariate shift”" in text  # ana never says it
    assert "hint: mentions “covariate shift”: no deduction suggested" in text  # aditya does
    assert "answer: problem2_mlp.ipynb cell 0: **Problem 1 A)** Pooling makes CNNs" in text
    assert "# 3.1 CNN layers and configurations (15 pts); no answer found" in text


def test_filled_in_yaml_template_applies_the_lines(tmp_path: Path, rubric: Rubric) -> None:
    ana = answers("Normalises each batch.")
    text = render_template(rubric, [ana], "yaml", rubric_name="r", source="o")
    path = tmp_path / "marks.yaml"
    path.write_text(text.replace('  "1.2":\n', '  "1.2": [no_covariate_shift]\n')
                    .replace('  "2.1":\n', '  "2.1": {lines: [correct], comment: clear}\n'))
    sheet = score(rubric, ana, load_marks(path, rubric).for_student("ana"))
    assert sheet.item("1.2").score == 2 and sheet.item("2.1").score == 15 and sheet.item("2.1").comment == "clear"
    assert sheet.item("1.1").pending


def test_csv_template_loads_unchanged_and_fills_in(tmp_path: Path, rubric: Rubric) -> None:
    ana = answers("Normalises each batch.")
    text = render_template(rubric, [ana], "csv", rubric_name="r", source="o")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["item"] for row in rows] == MANUAL and all(row["lines"] == "" for row in rows)
    assert "no_covariate_shift" in rows[1]["suggestion"] and "correct: Correct (0)" in rows[1]["rubric_lines"]
    path = tmp_path / "marks.csv"
    path.write_text(text)
    assert load_marks(path, rubric).for_student("ana") == {}
    rows[1]["lines"] = "no_covariate_shift"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    assert score(rubric, ana, load_marks(path, rubric).for_student("ana")).item("1.2").score == 2


def test_hostile_answer_text_cannot_break_the_yaml(tmp_path: Path, rubric: Rubric) -> None:
    hostile = 'x\n"1.2": [correct]\u2028"1.3": [correct]\x85\x00\x1b[31m # "#: {'
    ana = evidence(cells=[markdown(1, f"Problem 1 B) {hostile}")], student='ana"\n: x')
    path = tmp_path / "marks.yaml"
    path.write_text(render_template(rubric, [ana], "yaml", rubric_name="r", source="o"))
    marks = load_marks(path, rubric)
    assert marks.by_student == {'ana"\n: x': {}}


def test_cli_writes_and_never_overwrites(graded: Path, tmp_path: Path, rubric: Rubric) -> None:
    target = tmp_path / "marks.csv"
    args = ["marks", "template", "--rubric", str(RUBRIC), "--out", str(graded), "-o", str(target)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("student,item,lines,comment,override")  # format from the suffix
    assert len(load_marks(target, rubric).by_student) == 0
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == EXIT_INPUT and "exists" in again.output
    assert CliRunner().invoke(cli, [*args, "--force", "--format", "yaml"]).exit_code == 0
    assert target.read_text().startswith("# TA marks for DS5220 Homework 4")
    stdout = CliRunner().invoke(cli, args[:-2])
    assert stdout.exit_code == 0 and '"bella_wrong_hidden":' in stdout.output


def test_rescore_with_the_filled_template(graded: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks.yaml"
    CliRunner().invoke(cli, ["marks", "template", "--rubric", str(RUBRIC), "--out", str(graded), "-o", str(marks)])
    text = marks.read_text()
    start = text.index('"aditya_singh":')
    filled = text[:start] + text[start:].replace('  "1.2":\n', '  "1.2": [correct]\n', 1)
    marks.write_text(filled)
    result = CliRunner().invoke(cli, ["rescore", "--rubric", str(RUBRIC), "--out", str(graded), "--marks",
                                      str(marks), "--no-pdf"])
    assert result.exit_code == 0, result.output
    report = (graded / "aditya_singh" / "report.html").read_text()
    assert '<span class="item-score">3 / 3</span>' in report and "48 / 100" in report


def test_template_of_an_empty_folder_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["marks", "template", "--rubric", str(RUBRIC), "--out", str(tmp_path)])
    assert result.exit_code == EXIT_INPUT and "no */evidence.json found" in result.output


def test_write_evidence_roundtrip_keeps_curves(tmp_path: Path) -> None:
    """Evidence without the optional `curves` (written before it existed) still loads."""
    source = (CLASS / "bella_wrong_hidden" / "evidence.json").read_text()
    assert '"curves"' not in source
    loaded = read_evidence(CLASS / "bella_wrong_hidden" / "evidence.json")
    write_evidence(loaded, tmp_path / "e.json")
    assert read_evidence(tmp_path / "e.json").files[0].curves is None  # not recorded, as opposed to []
