"""Student self-check and CI, without a kernel: hints, the public rubric, JSON / JUnit / markdown, the CLI."""

from __future__ import annotations

import itertools
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import RUBRIC
from factories import evidence, model

from grader.cli import EXIT_INPUT, EXIT_USAGE, cli
from grader.data import _spec_of
from grader.evidence import Cell, CellError, ClaimCheck, Evidence, LayerRow, ModelEvidence
from grader.profiles import FAST_PROFILE, PROFILES
from grader.rubric import Rubric, load_rubric, parse_rubric
from grader.score import score
from grader.selfcheck.hints import architecture_hint, read_layers
from grader.selfcheck.render import JSON_SCHEMA, to_json, to_junit, to_markdown
from grader.selfcheck.result import CheckResult, check_result, hidden_counts
from grader.selfcheck.workflow import WorkflowOptions, render_workflow

# --------------------------------------------------------------------------- evidence with real layer tables


def rows(class_name: str, *layers: tuple[str, list[int], int]) -> list[LayerRow]:
    """torchinfo's table: the model row, then its leaves (type, output shape, trainable parameters)."""
    total = sum(params for _, _, params in layers)
    found = [LayerRow(depth=0, type=class_name, name=class_name, output_shape=[1, 10], params=total, leaf=False)]
    found += [LayerRow(depth=1, type=kind, name=kind.lower(), output_shape=shape, params=params, leaf=True)
              for kind, shape, params in layers]
    return found


def mlp(hidden: int = 128, *extra: int, train: float = 0.99, test: float = 0.95, **kwargs: Any) -> ModelEvidence:
    widths = [784, hidden, *extra, 10]
    layers: list[tuple[str, list[int], int]] = [("Flatten", [1, 784], 0)]
    for before, after in itertools.pairwise(widths):
        layers += [("Linear", [1, after], before * after + after), ("ReLU", [1, after], 0)]
    table = rows("MNISTClassifierMLP", *layers[:-1], ("LogSoftmax", [1, 10], 0))
    built = model(params=table[0].params, train=train, test=test, file="hw4_part2.ipynb", **kwargs)
    return built.model_copy(update={"layers": table, "summary_input_shape": [1, 1, 28, 28]})


def cnn(channels: int = 10, kernel: int = 5, train: float = 0.95, test: float = 0.93) -> ModelEvidence:
    side1 = 28 - kernel + 1
    side2 = side1 // 2 - 4
    flat = 20 * (side2 // 2) ** 2
    table = rows("CNN", ("Conv2d", [1, channels, side1, side1], kernel * kernel * channels + channels),
                 ("Conv2d", [1, 20, side2, side2], 25 * channels * 20 + 20), ("Dropout2d", [1, 20, side2, side2], 0),
                 ("Linear", [1, 10], flat * 10 + 10))
    built = model("CNN", table[0].params, train, test, file="hw4_part3.ipynb")
    return built.model_copy(update={"layers": table, "summary_input_shape": [1, 1, 28, 28]})


def bella() -> Evidence:
    return evidence([mlp(256), cnn()], student="bella_wrong_hidden")


# --------------------------------------------------------------------------- hints


def test_layer_shapes_are_read_from_the_table() -> None:
    assert [layer.label() for layer in read_layers(mlp(256))] == ["Linear(784->256)", "Linear(256->10)"]
    assert [layer.label() for layer in read_layers(cnn())] == ["Conv2d(1->10, 5x5)", "Conv2d(10->20, 5x5)",
                                                               "Linear(320->10)"]


def test_a_wider_hidden_layer_is_said_in_plain_words(rubric: Rubric) -> None:
    hint = architecture_hint(rubric.models["mlp"], mlp(256))
    assert hint == ("your MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770: "
                    "the hidden layer is 256 wide, the handout says 128")


def test_an_extra_layer_is_named(rubric: Rubric) -> None:
    hint = architecture_hint(rubric.models["mlp"], mlp(128, 64))
    assert "it has 3 layers with parameters, the handout's has 2" in hint
    assert "Linear 2 has 64 outputs, the handout says 10" in hint
    assert "an extra Linear(64->10) that the handout does not have" in hint


@pytest.mark.parametrize(("channels", "kernel", "said"), [
    (16, 5, "Conv2d 1 has 16 output channels, the handout says 10 (so Conv2d 2 takes 16 too)"),
    (10, 3, "Conv2d 1 has a 3x3 kernel, the handout's is 5x5"),
])
def test_convolution_differences(rubric: Rubric, channels: int, kernel: int, said: str) -> None:
    hint = architecture_hint(rubric.models["cnn"], cnn(channels, kernel))
    assert said in hint, hint


def test_hints_come_from_the_rubric_not_the_assignment(rubric: Rubric) -> None:
    """A rubric whose handout MLP is 64 wide: the same evidence now reads 'the handout says 64'."""
    document = yaml.safe_load(RUBRIC.read_text())
    document["models"]["mlp"].update(trainable_params=784 * 64 + 64 + 64 * 10 + 10,
                                     layers=[{"type": "Linear", "params": 784 * 64 + 64},
                                             {"type": "Linear", "params": 64 * 10 + 10}])
    other = parse_rubric(document)
    hint = architecture_hint(other.models["mlp"], mlp(128))
    assert hint.endswith("the hidden layer is 128 wide, the handout says 64")


# --------------------------------------------------------------------------- what a check scores


def test_a_correct_submission_passes_every_automatic_item(rubric: Rubric) -> None:
    result = check_result(rubric, evidence([mlp(), cnn()]), rubric_name="rubric/hw4.yaml")
    assert [item.id for item in result.items] == ["2.3", "3.2", "3.3"]
    assert result.passed and (result.points, result.max_points) == (45, 45)
    assert [item.id for item in result.manual] == ["1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "3.1"]
    assert result.accuracy_scored and "scored against the rubric's thresholds for 'embedded'" in \
        result.accuracy_sentence()


def test_the_wrong_hidden_size_fails_23_with_the_fix(rubric: Rubric) -> None:
    result = check_result(rubric, bella())
    item = result.items[0]
    assert item.id == "2.3" and not item.passed and item.points_label == "15 / 20"
    assert [d.line for d in item.deductions] == ["architecture"]
    assert item.fixes == ("your MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770: "
                          "the hidden layer is 256 wide, the handout says 128",)
    assert "Linear(784->256)" in item.measured and "203,530 parameters" in item.measured
    assert not result.passed and [i.id for i in result.failed] == ["2.3"]


def test_missing_model_and_text_hints(rubric: Rubric) -> None:
    cells = [Cell(index=3, cell_type="code", source="x", status="error",
                  error=CellError(ename="NameError", evalue="\x1b[31mname 'CNN' is not defined\x1b[0m"))]
    result = check_result(rubric, evidence([mlp()], cells=cells))
    by_id = {item.id: item for item in result.items}
    assert by_id["3.2"].points == 0
    assert by_id["3.2"].fixes[0].startswith("no CNN was found after running your notebook(s) (found "
                                            "MNISTClassifierMLP (101,770 parameters)); name the class CNN")
    assert "problem2_mlp.ipynb cell 3 raised NameError: name 'CNN' is not defined" in by_id["3.2"].fixes[0]
    assert "if it is in another notebook, check the folder that holds both" in by_id["3.2"].fixes[0]
    assert by_id["3.3"].fixes[0].startswith("write the CNN's parameter count, 8,490 (8,490 not found in the "
                                            "markdown, code or printed outputs)")


def test_low_accuracy_says_what_was_measured_and_the_handouts_settings(rubric: Rubric) -> None:
    result = check_result(rubric, evidence([mlp(test=0.5), cnn()]))
    fix = result.items[0].fixes[0]
    assert fix.startswith("train 0.990 >= 0.96, test 0.500 < 0.90 (embedded data): the handout trains for 10 epochs "
                          "with batch size 64 and learning rate 0.01")


def test_a_test_accuracy_claimed_above_the_measurement_is_pointed_out(rubric: Rubric) -> None:
    claimed = evidence([mlp(test=0.5), cnn()])
    claimed.files[0].claim_checks = [ClaimCheck(split="test", claimed=0.97, measured=0.5, difference=0.47,
                                                model_id="hw4_part2.ipynb:model", consistent=False, note="")]
    fix = check_result(rubric, claimed).items[0].fixes[0]
    assert "your notebook reports test accuracy 0.970 but the grader measured 0.500" in fix


def test_fast_profile_shows_accuracy_without_scoring_it(rubric: Rubric) -> None:
    low = evidence([mlp(train=0.5, test=0.4), cnn(train=0.3, test=0.2)], profile=FAST_PROFILE)
    result = check_result(rubric, low, fast=True)
    assert result.passed and not result.accuracy_scored
    mlp_item = result.items[0]
    assert "accuracy: train 0.500, test 0.400 (500 held-out digits) (not scored)" in mlp_item.measured
    assert mlp_item.not_scored == ("not scored on 'embedded-fast' data: Low accuracy (-2)",)
    assert "accuracy is shown but NOT scored" in result.accuracy_sentence()
    # architecture is real on the fast profile
    assert not check_result(rubric, evidence([mlp(256), cnn()], profile=FAST_PROFILE), fast=True).passed


def hidden_rubric() -> Rubric:
    document = yaml.safe_load(RUBRIC.read_text())
    items = document["questions"][2]["items"]
    items[2]["hidden"] = True  # 3.3 as a hidden item
    items[1]["lines"].append({"id": "secret_width", "text": "SECRET hidden line", "points": -3, "hidden": True,
                              "when": {"architecture_mismatch": "cnn"}})
    return parse_rubric(document)


def test_hidden_items_and_lines_are_counted_never_run_or_shown() -> None:
    rubric = hidden_rubric()
    assert hidden_counts(rubric) == (1, 1)
    wrong_cnn = evidence([mlp(), cnn(16)])
    assert "secret_width" in [line.id for line in score(rubric, wrong_cnn).item("3.2").lines if line.applied]
    public = score(rubric, wrong_cnn, include_hidden=False)
    assert "secret_width" not in [line.id for line in public.item("3.2").lines]
    assert "3.3" not in [item.id for item in public.items()]
    result = check_result(rubric, wrong_cnn)
    assert [item.id for item in result.items] == ["2.3", "3.2"]
    assert result.items[1].points == 15  # the architecture line only, not the hidden -3
    assert result.hidden_sentence() == ("1 hidden item and 1 hidden rubric line are not run or shown here; "
                                        "the instructor's grading applies them.")
    rendered = json.dumps(to_json(result, 1)) + to_junit(result) + to_markdown(result)
    for secret in ("SECRET", "secret_width", "3.3", "Parameter counts"):
        assert secret not in rendered


# --------------------------------------------------------------------------- renderings


def test_junit_has_one_testcase_per_automatic_item_and_failures_with_reasons(rubric: Rubric) -> None:
    broken = bella()
    broken.problems.append("clean room said \x1b[31mred\x1b[0m and \x00 nul")
    root = ET.fromstring(to_junit(check_result(rubric, broken, rubric_name="rubric/hw4.yaml")))
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert [case.get("name") for case in cases] == ["2.3 MLP implementation, training and accuracy",
                                                    "3.2 CNN implementation, training and accuracy",
                                                    "3.3 Parameter counts of both networks"]
    failure = cases[0].find("failure")
    assert failure is not None and cases[1].find("failure") is None
    assert failure.get("message") == "15 / 20: Architecture differs from the handout (layers or parameter count) (-5)"
    assert "the hidden layer is 256 wide, the handout says 128" in (failure.text or "")
    properties = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert properties["profile"] == "embedded" and properties["hidden_checks"] == "0"
    assert "clean room said red and  nul" in (root.find("./testsuite/system-out").text or "")  # type: ignore[union-attr]


def test_markdown_summary(rubric: Rubric) -> None:
    text = to_markdown(check_result(rubric, bella(), rubric_name="rubric/hw4.yaml"))
    assert text.startswith("## :x: grader check: DS5220 Homework 4: 40 / 45 automatic points (1 automatic item(s) "
                           "fall short)")
    row = next(line for line in text.splitlines() if line.startswith("| :x: 2.3"))
    assert "| 15 / 20 |" in row and "Linear(784-&gt;256)" in row and "hidden layer is 256 wide" in row
    assert "Manual items 1.1, 1.2, 1.3, 1.4, 2.1, 2.2, 3.1 (55 points) are graded by a TA later" in text
    assert "| :white_check_mark: 3.2" in text


def test_markdown_escapes_what_a_student_wrote(rubric: Rubric) -> None:
    odd = evidence([mlp(), cnn()], cells=[Cell(index=1, cell_type="code", source="x", status="error",
                                               error=CellError(ename="E", evalue="a | b <script>"))])
    text = to_markdown(check_result(rubric, odd))
    assert "a \\| b &lt;script&gt;" in text and "<script>" not in text


def test_json_schema(rubric: Rubric) -> None:
    document = json.loads(json.dumps(to_json(check_result(rubric, bella(), rubric_name="rubric/hw4.yaml"), 1)))
    assert set(document) == {"schema", "grader_version", "assignment", "rubric", "student", "profile", "sandbox",
                             "passed", "exit_code", "points", "max_points", "items", "manual_items", "hidden",
                             "files", "notes", "duration_s"}
    assert document["schema"] == JSON_SCHEMA == "grader-check/1"
    assert document["passed"] is False and document["exit_code"] == 1
    assert document["profile"] == {"name": "embedded", "fast": False, "accuracy_scored": True,
                                   "description": "test data"}
    item = document["items"][0]
    assert set(item) == {"id", "title", "passed", "points", "max_points", "measured", "fixes", "advice",
                         "deductions", "not_scored"}
    assert item["deductions"][0]["line"] == "architecture" and item["deductions"][0]["points"] == -5
    assert document["manual_items"][0] == {"id": "1.1", "title": "Invariances captured by CNNs", "points": 2}
    assert document["hidden"] == {"items": 0, "lines": 0}
    assert document["files"] == [{"path": "problem2_mlp.ipynb", "status": "completed"}]


def test_a_check_that_could_not_run_fails(rubric: Rubric) -> None:
    failed = evidence([]).model_copy(update={"status": "error", "problems": ["internal grader error: boom"]})
    result: CheckResult = check_result(rubric, failed)
    assert not result.passed and result.notes[0] == "internal grader error: boom"


# --------------------------------------------------------------------------- the --fast profile


def test_fast_profile_is_small_and_leaves_the_others_untouched() -> None:
    spec = PROFILES[FAST_PROFILE]
    assert spec.train_per_class == 100 and "accuracy is shown but not scored" in spec.description
    assert list(PROFILES)[:3] == ["embedded", "embedded-60k", "full"]
    for name in ("embedded", "embedded-60k", "full"):
        assert "train_per_class" not in _spec_of(name), "older profiles' manifests must stay byte-identical"


def test_fast_profile_files(cache_dir: Path) -> None:
    from grader.data import provision
    from grader.idx import read_labels

    dataset = provision(FAST_PROFILE, cache_dir)
    assert dataset.manifest["sizes"] == {"public_train": 1000, "public_test": 500, "eval_train": 1000,
                                         "eval_test": 500, "eval_holdout": 500}
    labels = read_labels(dataset.public_dir / "MNIST/raw/train-labels-idx1-ubyte")
    assert sorted(set(labels.tolist())) == list(range(10)) and (labels == 3).sum() == 100
    embedded = provision("embedded", cache_dir)
    assert dataset.manifest["sha256"]["labels/holdout-labels-idx1-ubyte"] == \
        embedded.manifest["sha256"]["labels/holdout-labels-idx1-ubyte"]


def test_the_hw4_rubric_calibrates_no_fast_thresholds() -> None:
    assert FAST_PROFILE not in load_rubric(RUBRIC).data_profiles


# --------------------------------------------------------------------------- the CLI (no notebook runs)


def test_check_refuses_what_is_not_a_notebook(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    result = CliRunner().invoke(cli, ["check", str(tmp_path / "notes.txt"), "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "not a notebook (.ipynb)" in result.output
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "nothing to check" in result.output


def test_check_refuses_a_folder_with_a_virtual_environment(tmp_path: Path) -> None:
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "holds a Python virtual environment (venv)" in result.output


def test_check_needs_a_rubric_when_there_is_no_rubric_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hw.ipynb").write_text("{}")
    result = CliRunner().invoke(cli, ["check", "hw.ipynb"])
    assert result.exit_code == EXIT_USAGE and "give the rubric with --rubric PATH" in result.output


def test_fast_and_another_profile_exclude_each_other() -> None:
    result = CliRunner().invoke(cli, ["check", str(RUBRIC.parent.parent / "submissions" / "aditya_singh"), "--fast",
                                      "--profile", "full", "--rubric", str(RUBRIC)])
    assert result.exit_code == EXIT_USAGE and "--fast uses the 'embedded-fast' data" in result.output


# --------------------------------------------------------------------------- the CI workflow


def workflow(**options: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(render_workflow(WorkflowOptions(rubric="rubric/hw4.yaml", **options)))
    return document


def test_the_workflow_installs_caches_and_checks() -> None:
    document = workflow()
    job = document["jobs"]["check"]
    steps = job["steps"]
    caches = [step["with"] for step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert [cache["path"] for cache in caches] == ["~/.grader-venv", "~/.cache/grader"]
    assert "steps.python.outputs.python-version" in caches[0]["key"] and "grader-0.1.0" in caches[0]["key"]
    scripts = [step["run"] for step in steps if "run" in step]
    assert "pip\" install --quiet torch==2.14.1 torchvision==0.29.1" in scripts[0]
    assert "grader check \"$GRADER_CHECK_PATH\" --rubric \"$GRADER_RUBRIC\" --ci" in scripts[-1]
    assert not any("${{" in script for script in scripts), "run: scripts take settings from the environment only"
    assert job["env"]["GRADER_RUBRIC"] == "rubric/hw4.yaml" and job["env"]["GRADER_CHECK_OPTIONS"] == ""
    assert document[True] is not None  # `on:` (YAML 1.1 reads the key as true)


def test_the_workflow_quotes_what_it_is_given() -> None:
    env = workflow(grader_spec="grader @ git+https://x/y.git@v1 # it's", fast=True)["jobs"]["check"]["env"]
    assert env["GRADER_PIP_SPEC"] == "${{ vars.GRADER_PIP_SPEC || 'grader @ git+https://x/y.git@v1 # it''s' }}"
    assert env["GRADER_CHECK_OPTIONS"] == "--fast" and env["GRADER_PROFILE"] == FAST_PROFILE


def test_ci_template_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rubric").mkdir()
    (tmp_path / "rubric" / "hw4.yaml").write_text(RUBRIC.read_text())
    runner = CliRunner()
    result = runner.invoke(cli, ["ci-template"])
    assert result.exit_code == 0, result.output
    written = tmp_path / ".github" / "workflows" / "grader.yml"
    assert yaml.safe_load(written.read_text())["jobs"]["check"]["env"]["GRADER_RUBRIC"] == "rubric/hw4.yaml"
    again = runner.invoke(cli, ["ci-template"])
    assert again.exit_code == EXIT_USAGE and "pass --force" in again.output
    assert runner.invoke(cli, ["ci-template", "--force", "--fast"]).exit_code == 0
    printed = runner.invoke(cli, ["ci-template", "-o", "-"])
    assert printed.exit_code == 0 and printed.output.startswith("# GitHub Actions workflow written by")


def test_summary_defaults_to_the_github_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      rubric: Rubric) -> None:
    from grader.commands.check import _write_summary

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    _write_summary(check_result(rubric, bella()), None)
    text = summary.read_text()
    assert text.startswith("earlier step\n## :x: grader check") and "2.3" in text
    assert os.environ["GITHUB_STEP_SUMMARY"] == str(summary)
