"""Scoring is a pure function of rubric, evidence and marks: specified here without any kernel."""

from __future__ import annotations

import re

import pytest
from factories import CALCULATION, evidence, markdown, model

from grader.marks import Mark
from grader.rubric import Rubric
from grader.score import score


def applied(sheet, item_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.id for line in sheet.item(item_id).lines if line.applied]


def test_correct_models_get_full_automatic_marks_with_reasons(rubric: Rubric) -> None:
    sheet = score(rubric, evidence())
    assert sheet.item("2.3").score == 20 and applied(sheet, "2.3") == ["correct"]
    assert sheet.item("3.2").score == 20 and applied(sheet, "3.2") == ["correct"]
    assert sheet.item("3.3").score == 5
    reason = sheet.item("3.2").reason
    assert "CNN has 8,490 trainable parameters" in reason
    assert re.search(r"measured accuracy: train 0\.950 >= 0\.\d\d, test 0\.930 >= 0\.\d\d \(embedded data\)", reason)


def test_manual_items_without_marks_are_pending_and_the_total_says_so(rubric: Rubric) -> None:
    sheet = score(rubric, evidence())
    assert sheet.pending_items == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1"]
    assert sheet.total == 45
    assert sheet.total_label == "45 / 100 (pending: 1.1, 1.2, 1.3, 1.4, 2.1, 2.2, 3.1)"
    assert sheet.item("1.2").score is None


def test_marks_fill_manual_items(rubric: Rubric) -> None:
    marks = {item: Mark(lines=("correct",)) for item in ("1.1", "1.3", "1.4", "2.1", "2.2", "3.1")}
    marks["1.2"] = Mark(lines=("no_covariate_shift",), comment="no covariate shift")
    sheet = score(rubric, evidence(), marks)
    assert sheet.pending_items == []
    assert sheet.item("1.2").score == 2 and sheet.item("1.2").comment == "no covariate shift"
    assert sheet.total == 99
    assert sheet.total_label == "99 / 100"


def test_wrong_hidden_size_is_an_architecture_deduction(rubric: Rubric) -> None:
    wide = model(params=203530, rows=[("MNISTClassifierMLP", 0, 203530, False), ("Linear", 1, 200960, True),
                                      ("Linear", 1, 2570, True)])
    sheet = score(rubric, evidence([wide, model("CNN", 8490, file="problem3_cnn.ipynb")]))
    assert applied(sheet, "2.3") == ["architecture"]
    assert sheet.item("2.3").score == 15
    assert "MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770" in sheet.item("2.3").reason


def test_missing_cnn_is_not_done_and_suppresses_other_lines(rubric: Rubric) -> None:
    sheet = score(rubric, evidence([model()]))
    assert applied(sheet, "3.2") == ["not_done"]
    assert sheet.item("3.2").score == 0
    assert "no CNN (nor any model with 8,490 trainable parameters)" in sheet.item("3.2").reason
    assert "found: MNISTClassifierMLP (101,770 parameters)" in sheet.item("3.2").reason


@pytest.mark.parametrize(("train", "test", "deducted"), [(0.99, 0.95, False), (0.99, 0.80, True), (0.60, 0.95, True)])
def test_low_accuracy_on_either_split_is_deducted(rubric: Rubric, train: float, test: float, deducted: bool) -> None:
    sheet = score(rubric, evidence([model(train=train, test=test), model("CNN", 8490, file="problem3_cnn.ipynb")]))
    assert ("low_accuracy" in applied(sheet, "2.3")) is deducted
    assert sheet.item("2.3").score == (18 if deducted else 20)


def test_thresholds_follow_the_data_profile(rubric: Rubric) -> None:
    """0.93 test accuracy is fine on the embedded digits but low on real MNIST."""
    models = [model(train=0.99, test=0.93), model("CNN", 8490, file="problem3_cnn.ipynb")]
    assert score(rubric, evidence(models, profile="embedded")).item("2.3").score == 20
    full = score(rubric, evidence(models, profile="full"))
    assert full.item("2.3").score == 18
    assert "test 0.930 < 0.94 (full data)" in full.item("2.3").reason


def test_a_model_that_could_not_be_measured_fails_the_accuracy_line(rubric: Rubric) -> None:
    sheet = score(rubric, evidence([model(), model("CNN", 8490, file="problem3_cnn.ipynb", measured=False)]))
    assert "accuracy_not_satisfactory" in applied(sheet, "3.2")
    assert "could not be measured" in sheet.item("3.2").reason


def test_a_renamed_class_is_found_by_its_parameter_count(rubric: Rubric) -> None:
    sheet = score(rubric, evidence([model("TwoLayerNet"), model("CNN", 8490, file="problem3_cnn.ipynb")]))
    assert sheet.item("2.3").score == 20
    assert "TwoLayerNet" in sheet.item("2.3").reason and "no class named MNISTClassifierMLP" in sheet.item("2.3").reason


def test_the_best_of_several_instances_counts(rubric: Rubric) -> None:
    untrained = model(train=0.1, test=0.1, variable="model_untrained")
    trained = model(train=0.99, test=0.95, variable="model")
    sheet = score(rubric, evidence([untrained, trained, model("CNN", 8490, file="problem3_cnn.ipynb")]))
    assert sheet.item("2.3").score == 20
    assert sheet.item("2.3").model_id == "problem2_mlp.ipynb:model"


@pytest.mark.parametrize(
    ("text", "expected_lines", "points"),
    [
        (CALCULATION, ["correct"], 5),
        ("CNN has 8,490 parameters and the MLP 101,770.", ["calculation_not_shown"], 3),
        ("CNN: 5x5x1x10 = 250 (+10), 5x5x10x20 = 5000 (+20), 320x10 = 3200 (+10): 8490. "
         "MLP: 784x128 = 100352 (+128), 128x10 = 1280 (+10): 101770", ["correct"], 5),
        ("CNN 260 + 5,020 + 3,210 = 8,490; MLP 100,480 + 1,290 = 101,770", ["correct"], 5),
        ("CNN 100{,}352 + 1{,}280 ... $8{,}490$ and $101{,}770$ with 250 5{,}000 3{,}200", ["correct"], 5),
        ("I did not count them.", ["not_done"], 0),
    ],
)
def test_parameter_count_text(rubric: Rubric, text: str, expected_lines: list[str], points: int) -> None:
    sheet = score(rubric, evidence(cells=[markdown(0, text)]))
    assert applied(sheet, "3.3") == expected_lines
    assert sheet.item("3.3").score == points


def test_ta_override_of_an_automatic_item(rubric: Rubric) -> None:
    marks = {"3.2": Mark(lines=("correct",), override=True, comment="ran on TA laptop")}
    sheet = score(rubric, evidence([model()]), marks)
    assert sheet.item("3.2").score == 20
    assert sheet.item("3.2").source == "override"


def test_scoring_is_pure(rubric: Rubric) -> None:
    ev = evidence()
    before = ev.model_dump_json()
    assert score(rubric, ev) == score(rubric, ev)
    assert ev.model_dump_json() == before


def test_hidden_items_can_be_left_out(rubric: Rubric) -> None:
    import yaml
    from conftest import RUBRIC

    from grader.rubric import parse_rubric

    document = yaml.safe_load(RUBRIC.read_text())
    document["questions"][2]["items"][2]["hidden"] = True  # 3.3
    hidden = parse_rubric(document)
    assert [i.id for i in score(hidden, evidence(), include_hidden=False).items()][-1] == "3.2"
    assert score(hidden, evidence()).item("3.3").score == 5


def test_a_frozen_or_hidden_extra_layer_is_an_architecture_mismatch(rubric: Rubric) -> None:
    """The trainable count comes from the student's own code; the grader also counts the tensor values itself."""
    tampered = model()
    tampered.parameter_elements = 109620
    sheet = score(rubric, evidence([tampered, model("CNN", 8490, file="problem3_cnn.ipynb")]))
    assert applied(sheet, "2.3") == ["architecture"]
    assert "saved tensors hold 109,620 parameter values, of which 101,770 are reported trainable" in \
        sheet.item("2.3").reason
