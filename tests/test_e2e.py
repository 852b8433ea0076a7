"""End to end on the sample class and the reference solutions: every student's per-item scores and reasons.

One graded batch per test session (the slow part, a few minutes on 2 cores); the tests read its
evidence, gradebook and reports.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, RUBRIC

from grader.evidence import Evidence, read_evidence
from grader.rubric import Rubric, load_rubric
from grader.score import ScoreSheet, score

pytestmark = pytest.mark.slow


def grader(*args: str, timeout: int = 3000) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass(frozen=True)
class Graded:
    out: Path
    output: str
    returncode: int


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Graded:
    out = tmp_path_factory.mktemp("reports")
    done = grader("grade", "submissions", "reference_solutions", "--rubric", str(RUBRIC), "--out", str(out),
                  "--cache-dir", str(cache_dir))
    return Graded(out, done.stdout + done.stderr, done.returncode)


def evidence_of(graded: Graded, student: str) -> Evidence:
    return read_evidence(graded.out / student / "evidence.json")


def sheet_of(graded: Graded, rubric: Rubric, student: str) -> ScoreSheet:
    return score(rubric, evidence_of(graded, student))


# student -> {item: (score, applied rubric lines)}
EXPECTED = {
    "aditya_singh": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "bella_wrong_hidden": {"2.3": (15, ["architecture"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "carlos_no_cnn": {"2.3": (20, ["correct"]), "3.2": (0, ["not_done"]), "3.3": (0, ["not_done"])},
    "dana_raises_midway": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "eli_few_epochs": {"2.3": (18, ["low_accuracy"]), "3.2": (15, ["accuracy_not_satisfactory"]),
                       "3.3": (5, ["correct"])},
    "farah_module": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "gus_colab": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "hana_fake_accuracy": {"2.3": (18, ["low_accuracy"]), "3.2": (15, ["accuracy_not_satisfactory"]),
                           "3.3": (5, ["correct"])},
    "ivan_normalized": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (3, ["calculation_not_shown"])},
    "jia_multi_model": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
    "reference_solutions": {"2.3": (20, ["correct"]), "3.2": (20, ["correct"]), "3.3": (5, ["correct"])},
}


def test_the_batch_grades_everyone_and_exits_zero(graded: Graded) -> None:
    assert graded.returncode == 0, graded.output[-3000:]
    for student in EXPECTED:
        assert (graded.out / student / "report.html").is_file()
        assert evidence_of(graded, student).status == "ok"


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_per_item_scores(graded: Graded, rubric: Rubric, student: str) -> None:
    sheet = sheet_of(graded, rubric, student)
    for item_id, (points, lines) in EXPECTED[student].items():
        item = sheet.item(item_id)
        assert (item.score, [line.id for line in item.lines if line.applied]) == (points, lines), \
            f"{student} {item_id}: {item.reason}"
    assert sheet.pending_items == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1"]


def test_gradebook_has_one_row_per_student_and_a_column_per_item(graded: Graded) -> None:
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO((graded.out / "gradebook.csv").read_text()))}
    assert set(rows) == set(EXPECTED)
    for student, items in EXPECTED.items():
        for item_id, (points, _) in items.items():
            assert float(rows[student][item_id]) == points
        assert rows[student]["1.1"] == "" and rows[student]["pending"].startswith("1.1")
        assert float(rows[student]["total"]) == sum(points for points, _ in items.values())


def test_seed_student(graded: Graded, rubric: Rubric) -> None:
    evidence = evidence_of(graded, "aditya_singh")
    sheet = score(rubric, evidence)
    assert "MNISTClassifierMLP has 101,770 trainable parameters" in sheet.item("2.3").reason
    assert "CNN has 8,490 trainable parameters" in sheet.item("3.2").reason
    cnn_file = next(f for f in evidence.files if f.path == "problem3_cnn.ipynb")
    errors = [c.error.ename for c in cnn_file.cells if c.error]
    assert errors == ["NameError"], "the undefined load_data() cell is recorded and the notebook goes on"
    mlp_file = next(f for f in evidence.files if f.path == "problem2_mlp.ipynb")
    assert not [c.error for c in mlp_file.cells if c.error], "his '20 incorrect predictions' loop finds 20"
    assert any("!pip install torch torchvision matplotlib tqdm" in c.skipped_magics for c in cnn_file.cells)
    # his P3 prints swap train and test and average over epochs: flagged, not trusted
    assert [c.consistent for c in cnn_file.claim_checks] == [False, False]
    assert evidence.environment.sandbox == "bubblewrap" and evidence.data["profile"] == "embedded"


def test_wrong_hidden_size(graded: Graded, rubric: Rubric) -> None:
    reason = sheet_of(graded, rubric, "bella_wrong_hidden").item("2.3").reason
    assert "MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770" in reason
    assert "[Linear 200,960, Linear 2,570] differ from the handout's [Linear 100,480, Linear 1,290]" in reason


def test_missing_cnn(graded: Graded, rubric: Rubric) -> None:
    sheet = sheet_of(graded, rubric, "carlos_no_cnn")
    assert "no CNN (nor any model with 8,490 trainable parameters)" in sheet.item("3.2").reason
    assert "8,490 not found" in sheet.item("3.3").reason


def test_cells_that_raise_are_recorded_and_execution_goes_on(graded: Graded) -> None:
    evidence = evidence_of(graded, "dana_raises_midway")
    raised = {f.path: [c.error.ename for c in f.cells if c.error] for f in evidence.files}
    assert raised == {"problem2_mlp.ipynb": ["NameError"], "problem3_cnn.ipynb": ["IndexError"]}
    assert all(f.status == "completed" for f in evidence.files)


def test_low_accuracy_reason(graded: Graded, rubric: Rubric) -> None:
    reason = sheet_of(graded, rubric, "eli_few_epochs").item("3.2").reason
    assert "measured accuracy: train 0." in reason and " < 0." in reason and "(embedded data)" in reason


def test_module_submission_is_trained_by_the_grader(graded: Graded) -> None:
    evidence = evidence_of(graded, "farah_module")
    assert [f.kind for f in evidence.files] == ["module"]
    assert sorted(m.class_name for m in evidence.models) == ["CNN", "MNISTClassifierMLP"]
    assert "optimizer: the module's make_optimizer" in evidence.files[0].cells[1].output_text


def test_colab_leftovers_are_neutralised(graded: Graded) -> None:
    evidence = evidence_of(graded, "gus_colab")
    skipped = {m for f in evidence.files for c in f.cells for m in c.skipped_magics}
    assert {"!pip install torchsummary", "!nvidia-smi", "!ls"} <= skipped
    outputs = "".join(c.output_text for f in evidence.files for c in f.cells)
    assert "[grader] google.colab.drive.mount('/content/drive') skipped" in outputs
    assert [c.index for f in evidence.files for c in f.cells if c.status == "error"] == []


def test_printed_accuracy_that_is_not_the_real_one(graded: Graded) -> None:
    evidence = evidence_of(graded, "hana_fake_accuracy")
    checks = [c for f in evidence.files for c in f.claim_checks if c.split == "test"]
    assert checks and all(not c.consistent and c.claimed == 0.987 for c in checks)
    assert all(m.accuracy and m.accuracy.test < 0.5 for m in evidence.models)


def test_renamed_class_found_by_parameter_count_and_normalisation_detected(graded: Graded, rubric: Rubric) -> None:
    evidence = evidence_of(graded, "ivan_normalized")
    reason = score(rubric, evidence).item("2.3").reason
    assert "class TwoLayerNet" in reason and "matched by its 101,770 trainable parameters" in reason
    mlp = next(m for m in evidence.models if m.class_name == "TwoLayerNet")
    assert mlp.transform == "ToTensor(), Normalize((0.1307,), (0.3081,))"


def test_several_instances_the_trained_one_counts(graded: Graded, rubric: Rubric) -> None:
    evidence = evidence_of(graded, "jia_multi_model")
    assert len([m for m in evidence.models if m.class_name == "MNISTClassifierMLP"]) >= 2
    assert score(rubric, evidence).item("2.3").model_id == "problem2_mlp.ipynb:model"


def test_every_reference_form_reaches_full_marks(graded: Graded, rubric: Rubric) -> None:
    evidence = evidence_of(graded, "reference_solutions")
    forms = {m.file: m for m in evidence.models}
    assert set(forms) == {"problem2_mlp.ipynb", "problem3_cnn.ipynb", "mlp.py", "cnn.py"}
    for model in forms.values():
        key = "mlp" if model.class_name == "MNISTClassifierMLP" else "cnn"
        assert model.trainable_params == rubric.models[key].trainable_params
        one = evidence.model_copy(update={"models": [model]})
        item = "2.3" if key == "mlp" else "3.2"
        assert score(rubric, one).item(item).score == 20, f"{model.file}: {score(rubric, one).item(item).reason}"


def test_weights_are_kept_as_plain_tensors(graded: Graded) -> None:
    import torch

    files = sorted((graded.out / "aditya_singh" / "models").glob("*.safetensors"))
    assert len(files) == 2
    from safetensors.torch import load_file

    state = load_file(str(files[0]))
    assert all(isinstance(t, torch.Tensor) for t in state.values())


def test_report_reads_like_the_graded_pdf(graded: Graded) -> None:
    html = (graded.out / "bella_wrong_hidden" / "report.html").read_text()
    assert "DS5220 Homework 4" in html and "bella_wrong_hidden" in html
    assert 'id="total">40 / 100<' in html
    assert "QUESTION 2" in html and "Architecture differs from the handout" in html
    assert html.count('class="line applied"') >= 3


def test_rescore_changes_scores_without_running_anything(graded: Graded, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    shutil.copytree(graded.out, out, ignore=shutil.ignore_patterns(".work"))
    before = {p: p.read_bytes() for p in out.glob("*/evidence.json")}
    strict = tmp_path / "strict.yaml"
    strict.write_text(RUBRIC.read_text().replace("embedded: {train: 0.96, test: 0.90}",
                                                 "embedded: {train: 0.96, test: 0.99}"))
    assert load_rubric(strict).models["mlp"]
    marks = tmp_path / "marks.yaml"
    marks.write_text('aditya_singh:\n' + "".join(f'  "{i}": [correct]\n' for i in
                                                 ("1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1")))
    done = grader("rescore", "--rubric", str(strict), "--out", str(out), "--marks", str(marks), timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p: p.read_bytes() for p in out.glob("*/evidence.json")} == before
    assert not (out / ".work").exists(), "nothing was executed"
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO((out / "gradebook.csv").read_text()))}
    assert float(rows["aditya_singh"]["2.3"]) == 18  # 0.934 < 0.99 now
    assert float(rows["aditya_singh"]["total"]) == 98 and rows["aditya_singh"]["pending"] == ""


def test_a_second_run_reuses_the_evidence(graded: Graded, cache_dir: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in graded.out.glob("*/evidence.json")}
    done = grader("grade", "submissions/aditya_singh", "submissions/carlos_no_cnn", "--rubric", str(RUBRIC),
                  "--out", str(graded.out), "--cache-dir", str(cache_dir), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "aditya_singh: 45 / 100" in done.stderr and "(reused)" in done.stderr
    assert {p: p.stat().st_mtime_ns for p in graded.out.glob("*/evidence.json")} == stamps


def test_relative_paths_work_from_any_directory(tmp_path: Path, cache_dir: Path, rubric: Rubric) -> None:
    """`make grade` passes `--out reports/`: sandboxes must get absolute paths whatever the cwd."""
    shutil.copytree(ROOT / "tests" / "redteam" / "good_student", tmp_path / "class" / "good_student")
    done = subprocess.run([sys.executable, "-m", "grader", "grade", "class", "--rubric", str(RUBRIC), "--out",
                           "reports", "--cache-dir", str(cache_dir), "--no-pdf"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    evidence = read_evidence(tmp_path / "reports" / "good_student" / "evidence.json")
    assert [f.status for f in evidence.files] == ["completed"]
    assert score(rubric, evidence).item("2.3").score == 20
