"""The rubric file: the seed's items exactly, and an error for each way it can be wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import RUBRIC

from grader.rubric import Rubric, RubricError, load_rubric, parse_rubric

GRADED_PDF_LINES = {
    "1.1": [(0, "Correct"), (-1, "partially correct")],
    "1.2": [(0, "Correct"), (-1, "did not mention internal co-varient shift")],
    "1.3": [(0, "Correct")],
    "1.4": [(0, "Correct"), (-1, "vague explaination")],
    "2.1": [(0, "Correct"), (-3, "Lacks explanation about layers and weights."),
            (-2, "Should use relu as activation unit."), (-2, "Activation unit (relu) not mentioned."),
            (-15, "Missing solution")],
    "2.2": [(0, "Correct"), (-2, "Lacks explanation of the loss by considering different conditions."),
            (-3, "Equation not simplified."), (-2, "Should use relu as activation unit."),
            (-2, "Equation not correct."), (-15, "Missing solution.")],
    "2.3": [(0, "Correct"), (-2, "Low accuracy")],
    "3.1": [(0, "Correct"), (-3, "Configurations not mentioned."), (-15, "Missing solution.")],
    "3.2": [(0, "Correct"), (-20, "Not Done"), (-5, "Test or Train accuracy not satisfactory.")],
    "3.3": [(0, "Correct"), (-5, "Not Done / Fully Incorrect"), (-2, "Calculation of Parameters not shown")],
}


def document() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(RUBRIC.read_text()))


def error_of(doc: dict[str, Any]) -> str:
    with pytest.raises(RubricError) as caught:
        parse_rubric(doc, "hw4.yaml")
    return str(caught.value)


def test_hw4_has_the_graded_pdf_items_points_and_lines(rubric: Rubric) -> None:
    assert rubric.total_points == 100
    assert {q.id: sum(i.points for i in q.items) for q in rubric.questions} == {"1": 10, "2": 50, "3": 40}
    for item in rubric.items():
        original = [(line.points, line.text) for line in item.lines if not line.added]
        assert original == GRADED_PDF_LINES[item.id], item.id
    assert {i.id for i in rubric.items() if i.grading == "auto"} == {"2.3", "3.2", "3.3"}


def test_hw4_models_and_counts(rubric: Rubric) -> None:
    assert rubric.models["mlp"].class_name == "MNISTClassifierMLP"
    for key, count in (("mlp", 101770), ("cnn", 8490)):
        assert rubric.models[key].trainable_params == count == sum(x.params for x in rubric.models[key].layers)


def test_unknown_key_names_its_yaml_path() -> None:
    doc = document()
    doc["questions"][1]["items"][2]["lines"][1]["pointz"] = -2
    message = error_of(doc)
    assert "hw4.yaml: invalid rubric" in message
    assert "questions[1].items[2].lines[1].pointz: unknown key" in message


def test_missing_required_key() -> None:
    doc = document()
    del doc["questions"][0]["items"][0]["points"]
    assert "questions[0].items[0].points: required key is missing" in error_of(doc)


def test_positive_deduction_is_refused() -> None:
    doc = document()
    doc["questions"][0]["items"][0]["lines"][1]["points"] = 1
    assert "questions[0].items[0].lines[1].points: Input should be less than or equal to 0" in error_of(doc)


def test_wrong_schema_version() -> None:
    doc = document()
    doc["schema_version"] = 2
    assert "schema_version: this grader reads schema_version 1, the file says 2" in error_of(doc)


def test_unknown_data_profile() -> None:
    doc = document()
    doc["data_profiles"].append("cifar")
    assert "unknown data profile(s) cifar" in error_of(doc)


def test_thresholds_must_cover_every_profile() -> None:
    doc = document()
    del doc["questions"][1]["items"][2]["lines"][1]["when"]["accuracy_below"]["thresholds"]["full"]
    assert "item 2.3, line 'low_accuracy': no accuracy thresholds for data profile(s) full" in error_of(doc)


def test_condition_needs_exactly_one_kind() -> None:
    doc = document()
    doc["questions"][2]["items"][1]["lines"][1]["when"] = {"model_missing": "cnn", "architecture_mismatch": "cnn"}
    assert "a condition needs exactly one of" in error_of(doc)


def test_undefined_model_and_text_check() -> None:
    doc = document()
    doc["questions"][2]["items"][1]["lines"][1]["when"] = {"model_missing": "rnn"}
    assert "item 3.2, line 'not_done': model 'rnn' is not defined under 'models'" in error_of(doc)
    doc = document()
    doc["questions"][2]["items"][2]["lines"][1]["when"]["text_missing"]["checks"] = ["rnn_total"]
    assert "text check 'rnn_total' is not defined under 'text_checks'" in error_of(doc)


def test_auto_and_manual_items_are_consistent() -> None:
    doc = document()
    doc["questions"][0]["items"][0]["grading"] = "auto"
    assert "an 'auto' item needs at least one line with a 'when' condition" in error_of(doc)
    doc = document()
    doc["questions"][1]["items"][2]["grading"] = "manual"
    assert "a 'manual' item cannot have 'when' conditions" in error_of(doc)


def test_duplicate_ids() -> None:
    doc = document()
    doc["questions"][0]["items"][1]["id"] = "1.1"
    assert "duplicate item ids: 1.1" in error_of(doc)
    doc = document()
    doc["questions"][0]["items"][0]["lines"][1]["id"] = "correct"
    assert "duplicate rubric line ids: correct" in error_of(doc)


def test_bad_regex_and_bad_hint() -> None:
    doc = document()
    doc["questions"][0]["items"][0]["answer"] = "(unclosed"
    assert "questions[0].items[0].answer: not a valid regular expression" in error_of(doc)
    doc = document()
    doc["questions"][0]["items"][1]["hints"][0]["if_missing"] = "nope"
    assert "hint names rubric line 'nope'" in error_of(doc)


def test_text_check_needs_one_form() -> None:
    doc = document()
    doc["text_checks"]["cnn_total"]["any_of"] = [{"numbers": [1]}]
    assert "text_checks.cnn_total: give exactly one of 'numbers' or 'any_of'" in error_of(doc)


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nassignment: [unclosed\n")
    with pytest.raises(RubricError, match=r"bad.yaml: not valid YAML at line 3"):
        load_rubric(bad)


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="must be a YAML mapping"):
        parse_rubric(["a", "b"], "list.yaml")
    with pytest.raises(RubricError, match="cannot read the rubric"):
        load_rubric(tmp_path / "missing.yaml")


def test_rubric_objects_are_frozen(rubric: Rubric) -> None:
    with pytest.raises(Exception, match="frozen"):
        rubric.models["mlp"].trainable_params = 1  # type: ignore[misc]
