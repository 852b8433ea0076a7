"""TA marks: YAML or CSV, validated against the rubric with errors naming the row or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.marks import MarksError, load_marks
from grader.rubric import Rubric


def test_yaml_marks(tmp_path: Path, rubric: Rubric) -> None:
    path = tmp_path / "marks.yaml"
    path.write_text('ana:\n  "1.2": [no_covariate_shift]\n  "2.1": {lines: [correct], comment: good}\n'
                    '  "3.2": {lines: [correct], override: true}\n')
    marks = load_marks(path, rubric).for_student("ana")
    assert marks["1.2"].lines == ("no_covariate_shift",)
    assert marks["2.1"].comment == "good" and marks["3.2"].override


def test_csv_marks(tmp_path: Path, rubric: Rubric) -> None:
    path = tmp_path / "marks.csv"
    path.write_text("student,item,lines,comment\nana,1.2,no_covariate_shift,\nana,2.1,lacks_layers_weights;"
                    "relu_not_mentioned,two issues\n")
    marks = load_marks(path, rubric).for_student("ana")
    assert marks["2.1"].lines == ("lacks_layers_weights", "relu_not_mentioned")


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ('ana:\n  "9.9": [correct]\n', ".yaml", "ana, item 9.9: the rubric has no item '9.9'"),
        ('ana:\n  "1.2": [typo]\n', ".yaml", "ana, item 1.2: unknown rubric line(s) typo; this item's lines are"),
        ('ana:\n  "2.3": [correct]\n', ".yaml", "item 2.3 is graded automatically; add 'override: true'"),
        ('ana:\n  "1.2": {lines: [correct], note: x}\n', ".yaml", "unknown key(s) note"),
        ("student,item\nana,1.2\n", ".csv", "missing column(s) lines"),
        ("student,item,lines\n,1.2,correct\n", ".csv", "row 2: 'student' and 'item' are required"),
        ("ana: [unclosed\n", ".yaml", "not valid YAML"),
    ],
)
def test_marks_errors(tmp_path: Path, rubric: Rubric, text: str, suffix: str, message: str) -> None:
    path = tmp_path / f"marks{suffix}"
    path.write_text(text)
    with pytest.raises(MarksError) as caught:
        load_marks(path, rubric)
    assert str(path) in str(caught.value) and message in str(caught.value)
