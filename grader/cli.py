"""The ``grader`` command line: the table of contents. Each command lives in ``grader.commands``; what they
share (exit codes, consoles, options) in ``grader.commands.common``; the work itself in ``grader.pipeline``."""

from __future__ import annotations

from typing import Any

import click

from grader import __version__
from grader.commands import check, cluster, grading, reports, serve
from grader.commands.common import (  # re-exported: the exit codes are part of the CLI's interface
    EXIT_ENVIRONMENT,
    EXIT_INCOMPLETE,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_USAGE,
)

__all__ = ["EXIT_ENVIRONMENT", "EXIT_INCOMPLETE", "EXIT_INPUT", "EXIT_OK", "EXIT_USAGE", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="grader")
def cli() -> None:
    """Grade deep-learning homework notebooks: sandboxed runs, clean-room measurement, YAML rubrics."""


@click.group()
def marks() -> None:
    """TA marks for the written answers (manual rubric items).

    \b
    Example:
      grader marks template --rubric rubric/hw4.yaml --out reports/ -o marks.yaml
    """


@click.group()
def rubric() -> None:
    """Inspect rubric files, and export the line changes made while grading."""


for command in (grading.data, grading.grade, grading.rescore, grading.calibrate, check.check, check.ci_template,
                serve.serve, cluster.slurm_template, marks, rubric):
    cli.add_command(command)
for command in (reports.template, serve.marks_export, serve.marks_import):
    marks.add_command(command)
for command in (grading.rubric_check, serve.rubric_export):
    rubric.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="grader")


if __name__ == "__main__":  # pragma: no cover
    main()
