"""Intake: find the submissions under the given paths, check each file, hash them.

A submission is one student's folder (notebooks and/or .py modules, any names) or a single
file. A class directory is a folder of student folders. Files that cannot be graded are
refused with a message naming the file and the problem; a student with nothing gradable is
still reported (status ``invalid``), never silently dropped.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nbformat

from grader.fsutil import sha256_file, sha256_tree
from grader.notebook_io import NotebookError, read_notebook
from grader.outdir import student_ids

MAX_FILE_BYTES = 50 << 20
MAX_SUBMISSION_FILES = 200
GRADABLE = {".ipynb": "notebook", ".py": "module"}
IGNORED_DIRS = {"__pycache__", ".ipynb_checkpoints", ".git", "__MACOSX", ".grader"}
_SAFE_NAME = re.compile(r"^[\w][\w .,()+@=-]*$")
_STUDENT_ID = re.compile(r"^[\w][\w.@-]*$")


class IntakeError(ValueError):
    """A path given on the command line is not a submission or a class of submissions."""


@dataclass(frozen=True)
class SubmissionFile:
    path: Path
    relative: str
    kind: Literal["notebook", "module"]
    sha256: str
    repairs: tuple[str, ...] = ()  # what was repaired to read the notebook as Jupyter does (notebook_io)


@dataclass(frozen=True)
class Refusal:
    path: str  # relative to the submission
    reason: str  # "refused: ..." with what to do

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Submission:
    student: str
    root: Path  # the folder (or, for a single file, its parent)
    files: list[SubmissionFile] = field(default_factory=list)  # run and graded
    support: list[Path] = field(default_factory=list)  # copied beside them (helper modules, data files)
    refused: list[Refusal] = field(default_factory=list)  # files that cannot be graded, and why
    problems: list[str] = field(default_factory=list)  # problems with the submission as a whole
    sha256: str = ""

    @property
    def copied(self) -> list[Path]:
        return sorted({f.path for f in self.files} | set(self.support))


@dataclass(frozen=True)
class _NotebookCheck:
    problem: str | None  # why it cannot be run, else None
    repairs: tuple[str, ...] = ()
    imports: frozenset[str] = frozenset()


def _check_notebook(path: Path, relative: str) -> _NotebookCheck:
    """Read the notebook leniently (as Jupyter opens it): why it cannot be run, or the repairs and its imports."""
    try:
        read = read_notebook(path, relative)
    except NotebookError as error:
        return _NotebookCheck(error.problem)
    if not any(cell.cell_type == "code" and cell.source.strip() for cell in read.notebook.cells):
        return _NotebookCheck("has no code cells (an empty notebook)")
    return _NotebookCheck(None, read.repairs, frozenset(_imports_of_notebook(read.notebook)))


def _check_module(path: Path) -> str | None:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text; save it as UTF-8"
    return None


def _imports_of_notebook(notebook: nbformat.NotebookNode) -> set[str]:
    names: set[str] = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        python = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%"))]
        try:
            trees = [ast.parse("\n".join(python))]
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # not Python, or too deeply nested to parse
            trees = _import_lines(python)
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
    return names


def _import_lines(lines: list[str]) -> list[ast.Module]:
    """The one-line imports of a cell that does not parse as a whole (a syntax error, a 5,000-term expression)."""
    trees = []
    for line in lines:
        if line.startswith(("import ", "from ")) and len(line) < 1000:
            try:
                trees.append(ast.parse(line))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
    return trees


def _refusal(path: Path, relative: Path) -> str | None:
    """Why this path cannot be accepted, or None."""
    if path.is_symlink():
        return "refused: symbolic links are not accepted in a submission (hand in the file itself)"
    if path.is_dir():
        return None
    if not path.is_file():
        return "refused: not a regular file"
    if not all(_SAFE_NAME.match(part) for part in relative.parts):
        return ("refused: the file name has characters other than letters, digits, spaces and .,()+@=-_ ; "
                "rename it")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return (f"refused: {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit (clear the notebook's outputs "
                "and hand it in again)")
    return None


def _walk(root: Path, refused: list[Refusal]) -> list[Path]:
    found: list[Path] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in IGNORED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] == "data":
            continue  # a local MNIST copy: the grader provides data/
        reason = _refusal(path, relative)
        if reason:
            refused.append(Refusal(ascii(str(relative))[1:-1][:120], reason))
        elif path.is_file():
            found.append(path)
    if len(found) > MAX_SUBMISSION_FILES:
        refused.append(Refusal(".", f"refused: only the first {MAX_SUBMISSION_FILES} files are accepted"))
    return found[:MAX_SUBMISSION_FILES]


def load_submission(path: Path) -> Submission:
    """One student: a folder or a single notebook/module file. Never raises for what the student handed in:
    a file that cannot be read is refused, a folder that cannot be read is a problem of the submission."""
    try:
        return _load_submission(path)
    except Exception as error:  # an unreadable folder, out of memory, ...: this student's result, not the batch's
        said = (str(error).splitlines() or [""])[0][:160]
        single = path.is_file() or path.is_symlink()
        student = student_ids([path.stem if single else path.name])[0]
        return Submission(student=student, root=path.parent if single else path, problems=[
            f"{path.name!r} could not be read ({type(error).__name__}: {said}); check the files' permissions and "
            "hand them in again"])


def _load_submission(path: Path) -> Submission:
    refused: list[Refusal] = []
    if path.is_file() or path.is_symlink():
        root, student = path.parent, path.stem
        reason = _refusal(path, Path(path.name))
        candidates = [] if reason else [path]
        if reason:
            refused.append(Refusal(ascii(path.name)[1:-1], reason))
    else:
        root, student = path, path.name
        candidates = _walk(path, refused)
    submission = Submission(student=student, root=root, refused=refused)
    if not _STUDENT_ID.match(student):
        submission.problems.append(f"{path.name!r}: the folder name is not a usable student id "
                                   "(letters, digits and ._@- only)")
        submission.student = student_ids([student])[0]
    notebooks = {candidate: _check_notebook(candidate, candidate.relative_to(root).as_posix())
                 for candidate in candidates if candidate.suffix == ".ipynb"}
    imported = set().union(*(check.imports for check in notebooks.values()))
    for candidate in candidates:
        relative = candidate.relative_to(root).as_posix()
        kind = GRADABLE.get(candidate.suffix)
        if kind is None or (kind == "module" and candidate.stem in imported):
            submission.support.append(candidate)  # data, images, helper modules the notebook imports
            continue
        repairs: tuple[str, ...] = ()
        try:
            if kind == "notebook":
                problem, repairs = notebooks[candidate].problem, notebooks[candidate].repairs
            else:
                problem = _check_module(candidate)
            sha256 = "" if problem else sha256_file(candidate)
        except Exception as error:  # unreadable (permissions, I/O error, memory): this file is refused
            problem = f"could not be read ({type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]})"
        if problem:
            submission.refused.append(Refusal(relative, f"refused: {relative} {problem}"))
            continue
        submission.files.append(SubmissionFile(candidate, relative, kind, sha256, repairs))  # type: ignore[arg-type]
    if submission.files or submission.support:
        submission.sha256 = sha256_tree(root, submission.copied)
    return submission


def _has_gradable_files(path: Path) -> bool:
    try:
        return any(p.suffix in GRADABLE for p in path.iterdir() if p.is_file() or p.is_symlink())
    except OSError:  # an unreadable student folder: load_submission reports it
        return False


def _is_class_folder(path: Path) -> bool:
    """A class folder has student sub-folders; a student folder has the gradable files itself."""
    subfolders = [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()
                  and p.name not in IGNORED_DIRS and not p.name.startswith((".", "_")) and p.name != "data"]
    return any(_has_gradable_files(folder) for folder in subfolders) or not _has_gradable_files(path)


def discover(paths: list[Path]) -> list[Submission]:
    """Expand command-line paths into submissions, in a stable order."""
    submissions: list[Submission] = []
    for path in paths:
        if not path.exists():
            raise IntakeError(f"{path}: no such file or directory")
        if path.is_file():
            if path.suffix not in GRADABLE:
                raise IntakeError(f"{path}: not a notebook (.ipynb) or a Python module (.py)")
            submissions.append(load_submission(path))
        elif not _is_class_folder(path):
            submissions.append(load_submission(path))
        else:
            folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
            singles = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in GRADABLE)
            if not folders and not singles:
                raise IntakeError(f"{path}: holds no student folders, notebooks or modules")
            submissions.extend(load_submission(p) for p in [*folders, *singles])
    # folder names: unique by construction, never a class file's name (grader.outdir)
    for submission, student in zip(submissions, student_ids(s.student for s in submissions), strict=True):
        if student != submission.student:
            submission.problems.append(f"graded as {student!r}: the name {submission.student!r} is taken by "
                                       "another submission or by the grader's own files")
            submission.student = student
    return submissions
