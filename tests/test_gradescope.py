"""Gradescope results.json: the official autograder format, one test per rubric item, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from grader.evidence import read_evidence
from grader.marks import Mark
from grader.render.gradescope import render_results, results
from grader.rubric import Rubric
from grader.score import score

DATA = Path(__file__).parent / "data"
SCHEMA = json.loads((DATA / "gradescope_results.schema.json").read_text())
STUDENTS = sorted(path.parent.name for path in (DATA / "class").glob("*/evidence.json"))


def validate(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)


def build(rubric: Rubric, student: str, marks: dict[str, Mark] | None = None) -> dict[str, Any]:
    evidence = read_evidence(DATA / "class" / student / "evidence.json")
    text = render_results(rubric, evidence, score(rubric, evidence, marks), rubric_name="rubric/hw4.yaml")
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.mark.parametrize("student", STUDENTS)
def test_every_student_validates_against_the_spec(rubric: Rubric, student: str) -> None:
    validate(build(rubric, student))


def test_one_test_per_item_with_scores_and_status(rubric: Rubric) -> None:
    document = build(rubric, "bella_wrong_hidden")
    tests = {test["number"]: test for test in document["tests"]}
    assert list(tests) == [item.id for item in rubric.items()]
    assert document["score"] == 40
    mlp = tests["2.3"]
    assert (mlp["score"], mlp["max_score"], mlp["status"]) == (15, 20, "failed")
    assert "[x] -5 pts  Architecture differs" in mlp["output"] and "203,530 trainable parameters" in mlp["output"]
    assert "Measured: class MNISTClassifierMLP" in mlp["output"]
    assert tests["3.2"]["status"] == "passed" and tests["3.2"]["score"] == 20
    assert tests["2.3"]["name"] == "2.3 MLP implementation, training and accuracy"
    assert tests["2.3"]["tags"] == ["question 2", "auto"]


def test_pending_manual_items_say_so(rubric: Rubric) -> None:
    document = build(rubric, "aditya_singh")
    pending = next(test for test in document["tests"] if test["number"] == "1.2")
    assert "score" not in pending and "status" not in pending and pending["max_score"] == 3
    assert pending["output"].startswith("Pending: this written answer is graded by a TA")
    assert "pending" in pending["tags"]
    assert "Pending TA marks: 1.1, 1.2, 1.3, 1.4, 2.1, 2.2, 3.1" in document["output"]
    validate(document)


def test_marked_items_are_scored(rubric: Rubric) -> None:
    marks = {"1.2": Mark(lines=("no_covariate_shift",), comment="say 'internal covariate shift'")}
    document = build(rubric, "aditya_singh", marks)
    test = next(test for test in document["tests"] if test["number"] == "1.2")
    assert (test["score"], test["status"]) == (2, "failed")
    assert "TA comment: say 'internal covariate shift'" in test["output"]
    assert document["score"] == 47
    validate(document)


def test_extra_data_carries_the_provenance(rubric: Rubric) -> None:
    document = build(rubric, "dana_raises_midway")
    extra = document["extra_data"]
    evidence = read_evidence(DATA / "class" / "dana_raises_midway" / "evidence.json")
    assert extra["submission_sha256"] == evidence.submission_sha256
    assert extra["environment"]["torch"] == evidence.environment.torch and extra["environment"]["sandbox"]
    assert extra["data"]["profile"] == "embedded" and extra["rubric"] == "rubric/hw4.yaml"
    assert [f["path"] for f in extra["files"]] == [f.path for f in evidence.files]
    assert document["execution_time"] == round(evidence.duration_s)
    assert document["visibility"] == "visible" and document["stdout_visibility"] == "hidden"


def test_schema_rejects_what_gradescope_would(rubric: Rubric) -> None:
    document = build(rubric, "aditya_singh")
    for broken in ({**document, "tests": [{**document["tests"][0], "status": "ok"}]},
                   {**document, "visibility": "public"},
                   {**document, "tests": [{**document["tests"][0], "number": 1.1}]},
                   {key: value for key, value in document.items() if key != "score"}):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_output_is_deterministic(rubric: Rubric) -> None:
    evidence = read_evidence(DATA / "class" / "hana_fake_accuracy" / "evidence.json")
    sheet = score(rubric, evidence)
    assert render_results(rubric, evidence, sheet, rubric_name="r") == render_results(rubric, evidence, sheet,
                                                                                      rubric_name="r")
    assert results(rubric, evidence, sheet, rubric_name="r")["score"] == sheet.total
