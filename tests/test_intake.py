"""Intake finds each student's gradable files and refuses the rest with a message naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from grader.intake import IntakeError, discover, load_submission


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
    import grader.intake as intake

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
