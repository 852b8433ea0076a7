"""`grader check` end to end: real notebooks, --fast, --ci exit codes, and the CI workflow's own steps.

Each test runs notebooks (about a minute each with --fast on an idle core); they are marked slow.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, RUBRIC

from grader.cli import EXIT_INCOMPLETE, EXIT_OK

pytestmark = pytest.mark.slow
GRADER = Path(sys.executable).parent / "grader"


@dataclass(frozen=True)
class Checked:
    returncode: int
    result: dict[str, Any]
    stderr: str
    junit: ET.Element
    summary: str
    wall_s: float


def run_check(target: Path, tmp: Path, cache_dir: Path, *extra: str) -> Checked:
    junit, summary = tmp / "junit.xml", tmp / "summary.md"
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache_dir)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    started = time.monotonic()
    done = subprocess.run([str(GRADER), "check", str(target), "--rubric", str(RUBRIC), "--ci", "--json", "--junit",
                           str(junit), "--summary", str(summary), *extra], capture_output=True, text=True,
                          env=env, timeout=1800, check=False)
    wall = time.monotonic() - started
    print(f"grader check {target.name} {' '.join(extra)}: {wall:.1f} s wall")  # shown with -s
    return Checked(done.returncode, json.loads(done.stdout), done.stderr, ET.parse(junit).getroot(),
                   summary.read_text(), wall)


@pytest.fixture(scope="module")
def seed_fast(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Checked:
    return run_check(ROOT / "submissions" / "aditya_singh", tmp_path_factory.mktemp("seed"), cache_dir, "--fast")


@pytest.fixture(scope="module")
def bella_fast(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Checked:
    return run_check(ROOT / "submissions" / "bella_wrong_hidden", tmp_path_factory.mktemp("bella"), cache_dir, "--fast")


def test_fast_check_of_the_seed_notebooks_passes(seed_fast: Checked) -> None:
    assert seed_fast.returncode == EXIT_OK, seed_fast.stderr[-2000:]
    result = seed_fast.result
    assert result["passed"] and result["profile"] == {**result["profile"], "name": "embedded-fast", "fast": True,
                                                      "accuracy_scored": False}
    assert [(item["id"], item["points"]) for item in result["items"]] == [("2.3", 20), ("3.2", 20), ("3.3", 5)]
    for item in result["items"][:2]:
        assert re.search(r"accuracy: train 0\.\d{3}, test 0\.\d{3} \(500 held-out digits\) \(not scored\)",
                         item["measured"])
        assert item["not_scored"] and "not scored on 'embedded-fast' data" in item["not_scored"][0]
    assert "sandbox: none" in seed_fast.stderr and "a fast first look, accuracy not scored" in seed_fast.stderr
    assert seed_fast.junit.get("failures") == "0" and seed_fast.junit.get("tests") == "3"
    assert seed_fast.summary.startswith("## :white_check_mark: grader check")


def test_fast_check_of_bella_names_the_hidden_layer(bella_fast: Checked) -> None:
    assert bella_fast.returncode == EXIT_INCOMPLETE
    item = bella_fast.result["items"][0]
    assert item["id"] == "2.3" and item["points"] == 15 and not item["passed"]
    assert item["fixes"] == ["your MNISTClassifierMLP has 203,530 trainable parameters; expected 101,770: "
                             "the hidden layer is 256 wide, the handout says 128"]
    failure = bella_fast.junit.find("./testsuite/testcase[@name='2.3 MLP implementation, training and accuracy']"
                                    "/failure")
    assert failure is not None and "hidden layer is 256 wide" in (failure.text or "")
    assert "| :x: 2.3" in bella_fast.summary
    assert [i["id"] for i in bella_fast.result["items"] if not i["passed"]] == ["2.3"]


def test_the_table_for_a_person(tmp_path: Path, cache_dir: Path) -> None:
    """Without --json: the rich table on stdout, a single notebook, its missing CNN explained."""
    env = {**os.environ, "GRADER_CACHE_DIR": str(cache_dir), "COLUMNS": "160"}
    done = subprocess.run([str(GRADER), "check", str(ROOT / "submissions" / "bella_wrong_hidden" / "hw4_part3.ipynb"),
                           "--rubric", str(RUBRIC), "--fast"], capture_output=True, text=True, env=env, timeout=1800,
                          check=False)
    assert done.returncode == EXIT_INCOMPLETE
    text = done.stdout
    assert "FAIL 2.3" in text and "no MNISTClassifierMLP was found after running your notebook(s)" in text
    assert "PASS 3.2" in text and "Manual items 1.1" in text and "This rubric has no hidden checks." in text
    assert "NOT scored" in text


# --------------------------------------------------------------------------- the generated workflow, run locally


def _expression_default(value: str) -> str:
    """``${{ vars.X || 'default' }}`` where no repository variable is set: the default."""
    match = re.fullmatch(r"\$\{\{\s*vars\.\w+\s*\|\|\s*'((?:[^']|'')*)'\s*\}\}", value)
    return match.group(1).replace("''", "'") if match else value


def test_the_ci_workflow_steps_run_and_fail_on_bella(tmp_path: Path, cache_dir: Path) -> None:
    repo = tmp_path / "student-repo"
    (repo / "rubric").mkdir(parents=True)
    shutil.copy(RUBRIC, repo / "rubric" / "hw4.yaml")
    for notebook in (ROOT / "submissions" / "bella_wrong_hidden").glob("*.ipynb"):
        shutil.copy(notebook, repo / notebook.name)
    subprocess.run([str(GRADER), "ci-template", "--fast"], cwd=repo, check=True, capture_output=True)
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "grader.yml").read_text())
    job = workflow["jobs"]["check"]
    github = tmp_path / "github"
    github.mkdir()
    files = {name: github / name for name in ("path", "env", "summary.md")}
    for path in files.values():
        path.write_text("")
    env = {
        "HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
        "GITHUB_PATH": str(files["path"]), "GITHUB_ENV": str(files["env"]),
        "GITHUB_STEP_SUMMARY": str(files["summary.md"]), "GITHUB_ACTIONS": "true", "CI": "true",
        "GRADER_VENV": sys.prefix,  # the install step finds a grader there, as on a cache hit
        "GRADER_CACHE_DIR": str(cache_dir),
        **{key: _expression_default(str(value)) for key, value in job["env"].items()},
    }
    ran = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        path_entries = [line for line in files["path"].read_text().splitlines() if line]
        step_env = {**env, "PATH": ":".join([*reversed(path_entries), env["PATH"]])}
        step_env.update(line.split("=", 1) for line in files["env"].read_text().splitlines() if "=" in line)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
                              env=step_env, capture_output=True, text=True, timeout=1800, check=False)
        ran.append((step.get("name", step["run"][:30]), done.returncode))
        if done.returncode != 0:
            break
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert ran == [("Install the grader", 0), ("Provision MNIST (offline, from the digits the grader ships)", 0),
                   ("Check the notebooks", EXIT_INCOMPLETE)], ran
    assert "::error title=2.3 MLP implementation%2C training and accuracy%3A 15 / 20::" in done.stdout
    summary = files["summary.md"].read_text()
    assert summary.startswith("## :x: grader check") and "| :x: 2.3" in summary
    assert "the hidden layer is 256 wide, the handout says 128" in summary
    junit = ET.parse(repo / "grader-junit.xml").getroot()
    assert junit.get("failures") == "1"
