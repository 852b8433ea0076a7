"""Intake finds each student's gradable files and refuses the rest with a message naming the file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

import grader.intake as intake
from grader.intake import IntakeError, Refusal, discover, load_submission
from grader.notebook_io import NotebookError, read_notebook, read_notebook_bytes
from grader.rubric import Rubric


def notebook(path: Path, source: str = "print(1)") -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_a_class_folder_holds_student_folders_and_single_files(tmp_path: Path) -> None:
    notebook(tmp_path / "class" / "ana" / "problem2.ipynb")
    notebook(tmp_path / "class" / "ana" / "problem3.ipynb")
    (tmp_path / "class" / "ben").mkdir()
    (tmp_path / "class" / "ben" / "hw4.py").write_text("import torch\n")
    notebook(tmp_path / "class" / "cat.ipynb")
    submissions = discover([tmp_path / "class"])
    assert [(s.student, [f.relative for f in s.files]) for s in submissions] == [
        ("ana", ["problem2.ipynb", "problem3.ipynb"]), ("ben", ["hw4.py"]), ("cat", ["cat.ipynb"])]
    assert all(len(s.sha256) == 64 for s in submissions)


def test_a_helper_module_imported_by_a_notebook_is_support_not_a_submission(tmp_path: Path) -> None:
    notebook(tmp_path / "ana" / "main.ipynb", "from models import CNN\n!pip install x\n")
    (tmp_path / "ana" / "models.py").write_text("class CNN: pass\n")
    submission = load_submission(tmp_path / "ana")
    assert [f.relative for f in submission.files] == ["main.ipynb"]
    assert [p.name for p in submission.support] == ["models.py"]


def test_the_hash_changes_with_any_file(tmp_path: Path) -> None:
    notebook(tmp_path / "ana" / "a.ipynb")
    first = load_submission(tmp_path / "ana").sha256
    (tmp_path / "ana" / "notes.txt").write_text("x")
    assert load_submission(tmp_path / "ana").sha256 != first


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.ipynb", b"{not json", "broken.ipynb: refused: broken.ipynb is not a notebook: not valid JSON"),
        ("data.ipynb", json.dumps({"a": 1}).encode(), "is JSON but not a Jupyter notebook"),
        ("old.ipynb", json.dumps({"nbformat": 2, "cells": []}).encode(), "uses notebook format 2"),
        ("empty.ipynb", json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}).encode(),
         "has no code cells"),
        ("latin.py", "x = 'é'\n".encode("latin-1"), "latin.py is not UTF-8 text"),
    ],
)
def test_bad_files_are_refused_with_the_file_and_the_problem(tmp_path: Path, name: str, content: bytes,
                                                            message: str) -> None:
    notebook(tmp_path / "ana" / "good.ipynb")
    (tmp_path / "ana" / name).write_bytes(content)
    submission = load_submission(tmp_path / "ana")
    assert [f.relative for f in submission.files] == ["good.ipynb"]
    assert any(message in str(refusal) for refusal in submission.refused), submission.refused


def test_symlinks_and_odd_names_are_refused(tmp_path: Path) -> None:
    notebook(tmp_path / "ana" / "good.ipynb")
    os.symlink("/etc/passwd", tmp_path / "ana" / "passwd.py")
    (tmp_path / "ana" / "we\nird.py").write_text("x = 1\n")
    refused = [str(r) for r in load_submission(tmp_path / "ana").refused]
    assert any("passwd.py: refused: symbolic links are not accepted" in r for r in refused)
    assert any("we\\nird.py: refused: the file name has characters other than" in r for r in refused), refused


def test_oversized_files_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake, "MAX_FILE_BYTES", 100)
    notebook(tmp_path / "ana" / "big.ipynb", "x = 1  # " + "a" * 200)
    submission = load_submission(tmp_path / "ana")
    assert submission.files == [] and "over the 100-byte limit" in submission.refused[0].reason


def test_a_local_mnist_copy_is_ignored(tmp_path: Path) -> None:
    notebook(tmp_path / "ana" / "a.ipynb")
    (tmp_path / "ana" / "data" / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "ana" / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"x")
    assert load_submission(tmp_path / "ana").support == []


def test_command_line_paths_that_are_not_submissions(tmp_path: Path) -> None:
    with pytest.raises(IntakeError, match="no such file or directory"):
        discover([tmp_path / "missing"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IntakeError, match=r"notes.txt: not a notebook \(.ipynb\) or a Python module"):
        discover([tmp_path / "notes.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(IntakeError, match="holds no student folders, notebooks or modules"):
        discover([tmp_path / "empty"])


# --------------------------------------------------------------------------- notebooks Jupyter opens are graded

QUIRKS = Path(__file__).parent / "data" / "jupyter_quirks"


@pytest.mark.parametrize(
    ("name", "repairs"),
    [
        ("markdown_with_outputs.ipynb", ["cell 0: a markdown cell carried outputs (dropped)"]),
        ("markdown_with_execution_count.ipynb", ["cell 0: a markdown cell carried execution_count (dropped)"]),
        ("changed_cell_type.ipynb", ["cell 0: a markdown cell carried outputs/execution_count (dropped)",
                                     "cell 1: a code cell lacked outputs/execution_count (added empty)"]),
        ("no_cell_type.ipynb", ["cell 1: no cell_type; taken as code because its source is Python",
                                "cell 2: no cell_type; taken as markdown because its source is not Python",
                                "cell 3: no cell_type; taken as code because it has outputs/execution_count"]),
        ("bad_markdown_metadata.ipynb", ["cell 0: metadata was a list, not an object (replaced by {})",
                                         "cell 1: attachments was a string, not an object (dropped)",
                                         "cell 2: invalid markdown cell metadata tags (nbformat dropped it)"]),
        ("cell_ids.ipynb", ["cell 1: cell id 'same' used twice (nbformat replaced it)",
                            "cell 2: an invalid cell id (nbformat replaced it)",
                            "cell 3: no cell id (nbformat added one)"]),
        ("v3_notebook.ipynb", ["notebook format 3, converted to format 4 by nbformat as Jupyter does"]),
    ],
)
def test_a_notebook_jupyter_opens_is_accepted_and_its_repairs_are_noted(tmp_path: Path, name: str,
                                                                        repairs: list[str]) -> None:
    shutil.copy(QUIRKS / name, tmp_path / name)
    submission = load_submission(tmp_path / name)
    assert submission.refused == []
    assert [(f.relative, list(f.repairs)) for f in submission.files] == [(name, repairs)]
    read = read_notebook(tmp_path / name)
    nbformat.validate(read.notebook)  # what the runner gets is a valid format-4 notebook
    assert read.repairs == tuple(repairs)
    assert any(cell.cell_type == "code" and "print(" in cell.source for cell in read.notebook.cells)


def test_a_cell_without_cell_type_is_run_when_it_is_code() -> None:
    cells = read_notebook(QUIRKS / "no_cell_type.ipynb").notebook.cells
    assert [(cell.cell_type, cell.source) for cell in cells] == [
        ("markdown", "# Problem 2"), ("code", "x = 1 + 1\nprint(x)"),
        ("markdown", "The model overfits after epoch 5, so we stop early."), ("code", "print(x * 2)")]
    assert cells[1].outputs == [] and cells[1].execution_count is None


def test_a_valid_notebook_needs_no_repair(tmp_path: Path) -> None:
    read = read_notebook(notebook(tmp_path / "good.ipynb"))
    assert read.repairs == () and read.notebook.cells[0].source == "print(1)"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_json.ipynb", "not_json.ipynb: refused: not_json.ipynb is not a notebook: not valid JSON at line 5, "
                           "column 4 (Expecting ',' delimiter); re-download it"),
        ("not_a_notebook.ipynb", "not_a_notebook.ipynb is JSON but not a Jupyter notebook (no 'cells')"),
        ("deeply_nested.ipynb", "deeply_nested.ipynb is not a notebook: its JSON is nested more than 100 levels "
                                "deep (at line 1, column 131)"),
        ("source_not_text.ipynb", "source_not_text.ipynb is not a runnable notebook: cell 0, field 'source': 42 is "
                                  "not valid under any of the given schemas"),
    ],
)
def test_a_notebook_that_cannot_run_is_refused_saying_what_is_wrong_where(tmp_path: Path, name: str,
                                                                          message: str) -> None:
    notebook(tmp_path / "ana" / "good.ipynb")
    shutil.copy(QUIRKS / name, tmp_path / "ana" / name)
    submission = load_submission(tmp_path / "ana")
    assert [f.relative for f in submission.files] == ["good.ipynb"]
    assert [r.path for r in submission.refused] == [name]
    assert message in str(submission.refused[0]), submission.refused


def test_text_that_is_not_utf8_is_refused_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "latin.ipynb").write_bytes(b'{\n "cells": ["caf\xe9"]}')
    with pytest.raises(NotebookError, match=r"latin.ipynb is not a notebook: not UTF-8 text \(byte 0xe9 at line 2, "
                                            r"column 16\)"):
        read_notebook(tmp_path / "latin.ipynb")


@pytest.mark.parametrize(
    "document",
    [
        {"cells": 5, "nbformat": 4},
        {"cells": [5], "nbformat": 4, "nbformat_minor": 4},
        {"cells": [], "nbformat": "4"},
        {"cells": [{"cell_type": "code", "source": ["x", 1]}], "nbformat": 4, "nbformat_minor": 4},
        {"cells": [{"cell_type": None, "source": "x = 1", "id": ["x"], "metadata": {"tags": [1, 1]}}],
         "nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": 3}, "extra": True},
        {"cells": [{"cell_type": "code", "source": "x = 1", "outputs": [5, {"output_type": "nope"}]}],
         "nbformat": 4, "nbformat_minor": 5},
        {"worksheets": 3, "nbformat": 3},
        {"worksheets": [{"cells": [{"cell_type": "code", "outputs": [5], "input": 7}, 4]}], "nbformat": 3},
        {"worksheets": [{"cells": [{"input": "x = 1"}, {"source": "text", "metadata": []}]}], "nbformat": 3},
        [1, 2],
        "a string",
    ],
)
def test_nothing_but_a_refusal_comes_out_of_a_bad_file(document: object) -> None:
    try:
        read = read_notebook_bytes(json.dumps(document).encode(), "odd.ipynb")
    except NotebookError as error:
        assert str(error).startswith("odd.ipynb ") and error.problem
    else:
        nbformat.validate(read.notebook)


def test_a_bad_file_never_ends_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """5,000-deep JSON, a 5,000-term expression, an unreadable folder: each one student's result."""
    (tmp_path / "class" / "deep").mkdir(parents=True)
    (tmp_path / "class" / "deep" / "hw.ipynb").write_text('{"cells": ' + "[" * 5000 + "]" * 5000 + "}")
    notebook(tmp_path / "class" / "long" / "hw.ipynb",
             "from helpers import f\nx = " + " + ".join(["1"] * 5000) + "\n")
    (tmp_path / "class" / "long" / "helpers.py").write_text("def f(): pass\n")
    notebook(tmp_path / "class" / "locked" / "hw.ipynb")
    notebook(tmp_path / "class" / "zoe" / "hw.ipynb")
    walk = intake._walk

    def unreadable(root: Path, refused: list[Refusal]) -> list[Path]:
        if root.name == "locked":
            raise PermissionError(13, "Permission denied", str(root))
        return walk(root, refused)

    monkeypatch.setattr(intake, "_walk", unreadable)
    submissions = {s.student: s for s in discover([tmp_path / "class"])}
    assert sorted(submissions) == ["deep", "locked", "long", "zoe"]
    assert "nested more than 100 levels deep" in submissions["deep"].refused[0].reason
    assert [f.relative for f in submissions["long"].files] == ["hw.ipynb"]  # it runs; the cell fails there
    assert submissions["locked"].files == []
    assert "could not be read (PermissionError" in submissions["locked"].problems[0]
    assert [f.relative for f in submissions["zoe"].files] == ["hw.ipynb"]


def test_running_out_of_memory_or_stack_on_a_file_refuses_the_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import grader.notebook_io as notebook_io

    notebook(tmp_path / "ana" / "a.ipynb")
    for error, said in ((MemoryError(), "is too large to read (out of memory)"),
                        (RecursionError(), "is nested too deeply to read"),
                        (KeyError("cells"), "could not be read as a notebook (KeyError: 'cells')")):
        def fail(data: bytes, name: str, error: BaseException = error) -> None:
            raise error

        monkeypatch.setattr(notebook_io, "_read", fail)
        submission = load_submission(tmp_path / "ana")
        assert submission.files == [] and f"refused: a.ipynb {said}" in submission.refused[0].reason


def test_the_report_notes_the_repairs(rubric: Rubric) -> None:
    from factories import evidence

    from grader.render.html import render_report
    from grader.score import score

    record = evidence()
    record.files[0].repairs = ["cell 3: a markdown cell carried outputs (dropped)"]
    html = render_report(rubric, record, score(rubric, record), rubric_name="rubric/hw4.yaml")
    run = html[html.index('<section class="run"'):]
    assert "Read leniently, as Jupyter opens it: cell 3: a markdown cell carried outputs (dropped)" in run


# --------------------------------------------------------------------------- grader check on a broken notebook


def test_check_says_what_is_wrong_with_which_file(tmp_path: Path) -> None:
    from grader.selfcheck.run import load_one

    shutil.copy(QUIRKS / "not_json.ipynb", tmp_path / "hw4.ipynb")
    with pytest.raises(IntakeError) as raised:
        load_one(tmp_path)
    assert "nothing to check" not in str(raised.value)
    assert ": cannot be checked: hw4.ipynb is not a notebook: not valid JSON at line 5, column 4" in str(raised.value)


def test_the_check_command_prints_the_problem_and_exits_3(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from conftest import RUBRIC

    from grader.cli import EXIT_INPUT, cli

    shutil.copy(QUIRKS / "not_json.ipynb", tmp_path / "hw4.ipynb")
    for path in (tmp_path, tmp_path / "hw4.ipynb"):
        result = CliRunner().invoke(cli, ["check", str(path), "--rubric", str(RUBRIC)])
        assert result.exit_code == EXIT_INPUT, result.output
        assert "hw4.ipynb is not a notebook: not valid JSON at line 5, column 4" in " ".join(result.output.split())
