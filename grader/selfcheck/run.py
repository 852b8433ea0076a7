"""Collect the evidence of one student's notebooks for a self-check: the same flow as ``grader grade``.

The path is one submission: a notebook, a module, or a folder whose notebooks (in sub-folders
too) are checked together, so a repository root works. The work happens in a temporary
directory that is removed afterwards; nothing is written beside the student's files.
"""

from __future__ import annotations

import os
from pathlib import Path

from grader.data import DataSet
from grader.evidence import Evidence
from grader.execute.limits import Limits
from grader.execute.sandbox import Sandbox
from grader.intake import GRADABLE, IntakeError, Refusal, Submission, load_submission
from grader.pipeline import check_one
from grader.rubric import Rubric


def load_one(path: Path) -> Submission:
    """The submission at ``path``; an IntakeError when there is nothing to check there."""
    path = path.resolve()
    if path.is_file() and path.suffix not in GRADABLE:
        raise IntakeError(f"{path}: not a notebook (.ipynb) or a Python module (.py)")
    if path.is_dir():
        venvs = sorted(config.parent.relative_to(path).as_posix() for pattern in ("pyvenv.cfg", "*/pyvenv.cfg")
                       for config in path.glob(pattern) if not config.parent.name.startswith("."))
        if venvs:  # its thousands of .py files would be run as modules
            raise IntakeError(f"{path}: holds a Python virtual environment ({', '.join(venvs)}); check the folder "
                              "that holds your notebooks, or one notebook, instead")
    submission = load_submission(path)
    if not submission.files and submission.refused:  # say what is wrong with which file, not "nothing found"
        said = "; ".join([*submission.problems, *(_refused(refusal) for refusal in submission.refused)])
        raise IntakeError(f"{path}: cannot be checked: {said}")
    if not submission.files:
        said = "; ".join(submission.problems) or "no notebook (.ipynb) or module (.py) found"
        raise IntakeError(f"{path}: nothing to check: {said}")
    return submission


def _refused(refusal: Refusal) -> str:
    """``broken.ipynb is not a notebook: not valid JSON at line 5, column 4 (...)``: the file, then its problem."""
    reason = refusal.reason.removeprefix("refused: ")
    return reason if reason.startswith(refusal.path) else f"{refusal.path}: {reason}"


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def collect(submission: Submission, rubric: Rubric, *, dataset: DataSet, sandbox: Sandbox, limits: Limits,
            threads: int, seed: int = 0, cache_dir: Path | None = None) -> Evidence:
    """Run and measure the submission once, in a temporary work dir; never raises for the student's code."""
    return check_one(submission, rubric, dataset=dataset, sandbox=sandbox, limits=limits, threads=threads, seed=seed,
                     cache_dir=cache_dir)
