"""Calibration proposes thresholds from measured accuracy minus a margin, and can write them in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RUBRIC
from factories import evidence, model

from grader.calibrate import CalibrationError, propose, write_thresholds
from grader.rubric import Rubric, load_rubric


def test_lowest_measurement_minus_margin_rounded_down(rubric: Rubric) -> None:
    seed = evidence([model(train=0.992, test=0.934), model("CNN", 8490, 0.894, 0.870, file="problem2_mlp.ipynb")],
                    student="seed")
    reference = evidence([model(train=1.0, test=0.952), model("CNN", 8490, 0.98, 0.958, file="problem2_mlp.ipynb")],
                         student="reference")
    proposals = {p.model: p for p in propose(rubric, [seed, reference], "embedded", 0.03)}
    assert (proposals["mlp"].train, proposals["mlp"].test) == (0.96, 0.90)
    assert (proposals["cnn"].train, proposals["cnn"].test) == (0.86, 0.84)
    assert [m.student for m in proposals["cnn"].measurements] == ["seed", "reference"]


def test_runs_that_did_not_complete_do_not_count(rubric: Rubric) -> None:
    timed_out = evidence([model(), model("CNN", 8490, file="problem2_mlp.ipynb")])
    timed_out.files[0].status = "timeout"
    with pytest.raises(CalibrationError, match="from a run that completed"):
        propose(rubric, [timed_out], "embedded", 0.03)


def test_write_thresholds_edits_only_those_values(rubric: Rubric, tmp_path: Path) -> None:
    path = tmp_path / "hw4.yaml"
    path.write_text(RUBRIC.read_text())
    seed = evidence([model(train=0.9, test=0.8), model("CNN", 8490, 0.7, 0.6, file="problem2_mlp.ipynb")],
                    profile="embedded-60k")
    write_thresholds(path, propose(rubric, [seed], "embedded-60k", 0.05))
    written = load_rubric(path)
    lines = {line.id: line for item in written.items() for line in item.lines}
    assert lines["low_accuracy"].when.accuracy_below.thresholds["embedded-60k"].test == 0.75  # type: ignore[union-attr]
    assert lines["accuracy_not_satisfactory"].when.accuracy_below.thresholds["embedded-60k"].train == 0.65  # type: ignore[union-attr]
    before, after = RUBRIC.read_text().splitlines(), path.read_text().splitlines()
    assert len(before) == len(after) and sum(a != b for a, b in zip(before, after, strict=True)) == 2
