"""Commands for students and CI: check a notebook before handing it in; a CI workflow that does it on push."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console

from grader.commands.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_USAGE,
    cache_option,
    err,
    fail,
    load_inputs,
    mapped_errors,
    mnist_dir_option,
    out,
    profile_option,
    write_output,
)
from grader.data import provision
from grader.execute.limits import Limits
from grader.execute.select import SANDBOX_CHOICES, choose_sandbox
from grader.fsutil import atomic_write_text
from grader.profiles import FAST_PROFILE
from grader.selfcheck.render import rich_report, to_json, to_junit, to_markdown
from grader.selfcheck.result import CheckResult, check_result
from grader.selfcheck.run import collect, default_threads, load_one
from grader.selfcheck.workflow import DEFAULT_OUTPUT, TORCH_CPU_INDEX, WorkflowOptions, render_workflow

RUBRIC_FOLDER = Path("rubric")


def default_rubric() -> Path:
    """The only ``*.yaml`` in ``./rubric/``, as a course's starter repository ships it; else a usage error."""
    found = sorted(RUBRIC_FOLDER.glob("*.yaml")) + sorted(RUBRIC_FOLDER.glob("*.yml"))
    if len(found) == 1:
        return found[0]
    said = "none found" if not found else "found " + ", ".join(str(p) for p in found)
    fail(f"give the rubric with --rubric PATH (the default is the only *.yaml in ./{RUBRIC_FOLDER}/: {said})",
         EXIT_USAGE)


def _escape_annotation(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_annotations(result: CheckResult) -> list[str]:
    """Workflow commands that show each failing item on the run's page (GitHub Actions only)."""
    lines = []
    for item in result.failed:
        title = _escape_annotation(f"{item.id} {item.title}: {item.points_label}")
        title = title.replace(":", "%3A").replace(",", "%2C")
        message = _escape_annotation("; ".join(item.fixes) or item.measured)
        lines.append(f"::error title={title}::{message}")
    return lines


def _write_summary(result: CheckResult, summary_path: Path | None) -> None:
    markdown = to_markdown(result)
    if summary_path is not None:
        atomic_write_text(summary_path, markdown)
        return
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub appends what each step writes there
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)


@click.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--rubric", "rubric_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Rubric YAML [default: the only *.yaml in ./rubric/].")
@click.option("--fast", is_flag=True,
              help=f"A first look in about a minute on a laptop CPU: the '{FAST_PROFILE}' data (1,000 training "
                   "digits). Architecture, parameter and text checks are real; accuracy is shown, not scored.")
@profile_option
@mnist_dir_option
@cache_option
@click.option("--sandbox", "sandbox_mode", type=click.Choice(SANDBOX_CHOICES), default="none", show_default=True,
              help="'none': your own notebook runs as you, with time and memory limits only; 'bubblewrap' "
                   "isolates it as 'grader grade' does.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads for your notebook [default: all CPU cores].")
@click.option("--memory-gb", type=click.FloatRange(min=1), default=None,
              help="Memory (address space) limit of the notebook's process, GiB [rubric, else 12].")
@click.option("--ci", is_flag=True,
              help="For CI: plain wide output, no spinner, GitHub annotations for failing items.")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write JUnit XML here: one testcase per automatic item.")
@click.option("--summary", "summary_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a markdown summary here [default: append to $GITHUB_STEP_SUMMARY when it is set].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON on stdout (schema 'grader-check/1', see docs/selfcheck.md) instead "
                   "of the table.")
@click.pass_context
def check(ctx: click.Context, path: Path, rubric_path: Path | None, fast: bool, profile: str, mnist_dir: Path | None,
          cache_dir: Path | None, sandbox_mode: str, threads: int | None, memory_gb: float | None, ci: bool,
          junit_path: Path | None, summary_path: Path | None, as_json: bool) -> None:
    """Check your notebook(s) against the public part of the rubric before handing them in.

    Runs the notebook(s) at PATH (a notebook, or the folder holding your notebooks) on the
    embedded MNIST digits, measures the trained models the way the instructor's grader does, and
    scores the automatic items. Manual items (graded by a TA) and hidden checks are not scored
    here; the output says which and how many. Exit code 0: every automatic item passes; 1: some
    fall short (or the notebooks could not be run).

    \b
    Example:
      grader check . --fast                          # a first look (about a minute)
      grader check hw4_part2.ipynb --rubric rubric/hw4.yaml
      grader check . --ci --junit grader-junit.xml   # in CI
    """
    if fast and ctx.get_parameter_source("profile") == ParameterSource.COMMANDLINE and profile != FAST_PROFILE:
        fail(f"--fast uses the '{FAST_PROFILE}' data; leave out --profile {profile}", EXIT_USAGE)
    profile = FAST_PROFILE if fast else profile
    rubric_path = rubric_path or default_rubric()
    rubric, _ = load_inputs(rubric_path, None)
    with mapped_errors():
        submission = load_one(path)
        dataset = provision(profile, cache_dir, mnist_dir)
        sandbox = choose_sandbox(sandbox_mode)
    limits = Limits.from_rubric(rubric.limits, {"memory_gb": memory_gb})
    threads = threads or default_threads()
    names = ", ".join(f.relative for f in submission.files)
    err.print(f"checking {names} on '{profile}' data with {rubric_path} ({threads} thread(s))"
              + (": a fast first look, accuracy not scored" if fast else ""))
    if sandbox.name == "none":
        err.print("sandbox: none - your own code runs as you on this machine, with time and memory limits only "
                  "(--sandbox bubblewrap isolates it)")
    started = time.monotonic()
    if ci or as_json or not err.is_terminal:
        evidence = collect(submission, rubric, dataset=dataset, sandbox=sandbox, limits=limits, threads=threads,
                           cache_dir=cache_dir)
    else:
        with err.status("running your notebook(s) and measuring the trained models..."):
            evidence = collect(submission, rubric, dataset=dataset, sandbox=sandbox, limits=limits, threads=threads,
                               cache_dir=cache_dir)
    result = check_result(rubric, evidence, rubric_name=str(rubric_path), fast=fast)
    code = EXIT_OK if result.passed else EXIT_INCOMPLETE
    if as_json:
        click.echo(json.dumps(to_json(result, code), indent=2))
    else:
        console = Console(highlight=False, width=max(out.width, 160)) if ci else out
        console.print(rich_report(result))
        console.print(f"checked in {time.monotonic() - started:.0f} s")
    if ci and os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(result):
            click.echo(line)
    if junit_path is not None:
        atomic_write_text(junit_path, to_junit(result))
    _write_summary(result, summary_path)
    sys.exit(code)


@click.command("ci-template")
@click.option("-o", "--output", "output", default=DEFAULT_OUTPUT, show_default=True,
              help="Where to write the workflow ('-' for stdout).")
@click.option("--rubric", "rubric", default=None,
              help="The rubric's path inside the student repository [default: the only *.yaml in ./rubric/].")
@click.option("--path", "check_path", default=".", show_default=True,
              help="What the workflow checks, inside the repository (a folder or a notebook).")
@click.option("--python", "python", default="3.11", show_default=True, help="Python version of the CI job.")
@click.option("--grader-spec", default=None,
              help="What the job pip-installs as the grader, e.g. git+https://github.com/COURSE/grader@v0.1.0 "
                   "[default: grader==THIS VERSION]; a repository variable GRADER_PIP_SPEC overrides it.")
@click.option("--torch-index", default=TORCH_CPU_INDEX, show_default=True,
              help="Package index for torch/torchvision (CPU wheels); '' for PyPI.")
@click.option("--fast", is_flag=True, help="Run 'grader check --fast' in CI (accuracy not scored).")
@click.option("--force", is_flag=True, help="Overwrite an existing workflow file.")
def ci_template(output: str, rubric: str | None, check_path: str, python: str, grader_spec: str | None,
                torch_index: str, fast: bool, force: bool) -> None:
    """Write a GitHub Actions workflow that runs 'grader check --ci' on every push of a student repository.

    The job installs the grader (pip, torch==2.14.1 torchvision==0.29.1), caches its venv (keyed on
    the Python and grader versions) and the MNIST data ($GRADER_CACHE_DIR), and fails when an
    automatic item falls short; the job summary shows the table.

    \b
    Example:
      grader ci-template                                   # writes .github/workflows/grader.yml
      grader ci-template --grader-spec git+https://github.com/COURSE/grader@v0.1.0 --fast
    """
    options = WorkflowOptions(rubric=rubric or default_rubric().as_posix(), path=check_path, python=python,
                              torch_index=torch_index, fast=fast,
                              **({"grader_spec": grader_spec} if grader_spec else {}))
    write_output(render_workflow(options), None if output == "-" else Path(output), force=force,
                 exists_code=EXIT_USAGE,
                 done=f"commit it, and each push runs 'grader check --ci' on {check_path} with {options.rubric}")
