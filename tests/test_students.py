"""Notebooks as students really write them, graded in the sandbox as an instructor would (issue 9).

Not the sample class: one Colab notebook for both problems with DataLoader workers and a tqdm
``fit()``; a wider CNN with the calculation of *that* network; counts computed in code and only
printed; renamed classes; a module in the style of PyTorch's MNIST example (``Net`` trained in
``main()``); and a corpus of the DataLoader styles students use. One batch per session, graded
into a deep output folder (the path length once hung every notebook with DataLoader workers).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, RUBRIC

from grader.evidence import Evidence, read_evidence
from grader.execute.bubblewrap import probe
from grader.rubric import Rubric
from grader.score import ScoreSheet, score

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(probe() is not None, reason=f"bubblewrap cannot run here: {probe()}")]

STUDENTS = ROOT / "tests" / "notebooks" / "students"
LOADERS = ROOT / "tests" / "notebooks" / "loaders"
# a loader that hangs waits for the cell limit; each of these runs in well under a minute
CELL_TIMEOUT_S = 240
LOADER_BOUND_S = 150


@dataclass(frozen=True)
class Graded:
    out: Path
    output: str
    returncode: int


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Graded:
    out = tmp_path_factory.mktemp("students") / ("course-ds5220-fall-2026-" * 3) / "homework-4-graded-reports"
    paths = [str(p) for p in sorted(STUDENTS.iterdir())] + [str(p) for p in sorted(LOADERS.glob("*.ipynb"))]
    done = subprocess.run(
        [sys.executable, "-m", "grader", "grade", *paths, "--rubric", str(RUBRIC), "--out", str(out),
         "--cache-dir", str(cache_dir), "--cell-timeout", str(CELL_TIMEOUT_S), "--no-pdf"],
        cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    return Graded(out, done.stdout + done.stderr, done.returncode)


def evidence(graded: Graded, student: str) -> Evidence:
    return read_evidence(graded.out / student / "evidence.json")


def sheet(graded: Graded, rubric: Rubric, student: str) -> ScoreSheet:
    return score(rubric, evidence(graded, student))


def test_every_student_is_graded(graded: Graded) -> None:
    assert graded.returncode == 0, graded.output[-3000:]


def test_a_colab_notebook_with_loader_workers_gets_full_marks(graded: Graded, rubric: Rubric) -> None:
    ev = evidence(graded, "colab_all_in_one")
    file = ev.files[0]
    assert file.status == "completed" and not file.message, file.message
    assert not [c.index for c in file.cells if c.status in ("timeout", "error")]
    assert file.duration_s < 180, "it runs about as long as outside the grader, not until the cell limit"
    result = sheet(graded, rubric, "colab_all_in_one")
    assert [result.item(i).score for i in ("2.3", "3.2", "3.3")] == [20, 20, 5], result.item("3.2").reason


@pytest.mark.parametrize("notebook", sorted(p.stem for p in LOADERS.glob("*.ipynb")))
def test_every_loader_style_runs_in_the_sandbox(graded: Graded, notebook: str) -> None:
    ev = evidence(graded, notebook)
    file = ev.files[0]
    assert file.status == "completed", f"{notebook}: {file.message}"
    assert not [c.index for c in file.cells if c.status != "ok" and c.cell_type == "code"], file.cells
    assert file.duration_s < LOADER_BOUND_S, f"{notebook} took {file.duration_s:.0f} s"
    model = next(m for m in ev.models if m.class_name == "MNISTClassifierMLP")
    assert model.accuracy is not None and model.accuracy.test > 0.85


def test_the_calculation_of_the_students_own_network_counts(graded: Graded, rubric: Rubric) -> None:
    result = sheet(graded, rubric, "wider_cnn")
    assert result.item("3.2").score == 15, "the architecture differs from the handout's"
    assert result.item("3.3").score == 5, result.item("3.3").reason
    assert "18,378" in result.item("3.3").reason


def test_counts_computed_in_code_and_printed_get_full_marks(graded: Graded, rubric: Rubric) -> None:
    result = sheet(graded, rubric, "counts_printed")
    assert result.item("3.3").score == 5, result.item("3.3").reason


def test_renamed_classes_are_graded_as_the_networks_they_are(graded: Graded, rubric: Rubric) -> None:
    result = sheet(graded, rubric, "renamed_classes")
    assert result.item("2.3").score == 20, result.item("2.3").reason
    cnn = result.item("3.2")
    assert cnn.score == 15, cnn.reason  # measured, with the architecture deduction
    assert "MyCNN" in cnn.reason and "Conv2d" in cnn.reason  # named, and the layers that differ
    assert cnn.model_id and cnn.model_id.endswith(":cnn"), "the trained instance, not the untrained copy"


def test_a_module_whose_cnn_is_net_trained_in_main_is_graded(graded: Graded, rubric: Rubric) -> None:
    ev = evidence(graded, "module_net_main")
    net = next((m for m in ev.models if m.class_name == "Net"), None)
    assert net is not None and net.accuracy is not None, [(m.id, m.error) for m in ev.models]
    assert net.accuracy.test > 0.85 and net.transform.startswith("ToTensor(), Normalize(")
    result = sheet(graded, rubric, "module_net_main")
    assert result.item("3.2").score == 15, result.item("3.2").reason
    match = result.item("3.2").match
    assert match is not None and "Net is the network the run trained with convolution layers" in match.how
