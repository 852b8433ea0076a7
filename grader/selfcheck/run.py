"""Collect the evidence of one student's notebooks for a self-check: the same flow as ``grader grade``.

The path is one submission: a notebook, a module, or a folder whose notebooks (in sub-folders
too) are checked together, so a repository root works. The work happens in a temporary
directory that is removed afterwards; nothing is written beside the student's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import traceback
from pathlib import Path

from grader.batch import failure_evidence
from grader.collect import Settings, collect_evidence, training_plan
from grader.data import DataSet
from grader.evidence import Evidence
from grader.execute.sandbox import Limits, Sandbox
from grader.execute.workdir import install_runtime
from grader.intake import GRADABLE, IntakeError, Submission, load_submission
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
    if not submission.files:
        said = "; ".join(submission.problems) or "no notebook (.ipynb) or module (.py) found"
        raise IntakeError(f"{path}: nothing to check: {said}")
    return submission


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def _remove(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_dir() and not item.is_symlink():
            item.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def collect(submission: Submission, rubric: Rubric, *, dataset: DataSet, sandbox: Sandbox, limits: Limits,
            threads: int, seed: int = 0) -> Evidence:
    """Run and measure the submission once, in a temporary work dir; never raises for the student's code."""
    work_root = Path(tempfile.mkdtemp(prefix="grader-check-"))
    try:
        settings = Settings(dataset=dataset, work_root=work_root, runtime=install_runtime(work_root / "runtime"),
                            sandbox=sandbox, limits=limits, plan=training_plan(rubric), threads=threads, seed=seed)
        try:
            return collect_evidence(submission, settings)
        except Exception as error:  # a grader bug: say so in the result rather than a traceback
            detail = traceback.format_exc(limit=6)
            return failure_evidence(submission, settings, f"internal grader error: {error!r}\n{detail}")
    finally:
        _remove(work_root)
