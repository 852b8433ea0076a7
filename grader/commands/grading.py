"""Commands that grade: data, grade, rescore, calibrate, rubric check."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from grader.backends import ClusterOptions
from grader.batch import Outcome
from grader.calibrate import CalibrationError, propose, write_thresholds
from grader.collect import Settings
from grader.commands.cluster import cluster_options
from grader.commands.common import (
    EXIT_INCOMPLETE,
    EXIT_INPUT,
    EXIT_OK,
    cache_option,
    err,
    fail,
    load_inputs,
    mapped_errors,
    marks_option,
    mnist_dir_option,
    out,
    out_option,
    profile_option,
    progress_bar,
    rubric_option,
)
from grader.commands.reports import pdf_option, pdf_printer
from grader.data import provision
from grader.execute.gpu import DEVICE_CHOICES, DevicePlan
from grader.execute.limits import GiB, Limits, MiB
from grader.execute.select import SANDBOX_CHOICES
from grader.marks import Marks
from grader.outdir import OutDir
from grader.outputs import Published, publish_class, publish_student, stored_evidence
from grader.pipeline import ClassResult, RunOptions, grade_class
from grader.profiles import DEFAULT_PROFILE, PROFILES
from grader.render.pdf import Printer
from grader.rubric import Rubric, load_rubric


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



@click.command()
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


@click.command()
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
@click.option("--cell-timeout", type=click.FloatRange(min=1), default=None,
              help="Seconds one notebook cell may run before it is interrupted "
                   f"[rubric, else {Limits.cell_timeout_s:g}].")
@click.option("--timeout", "total_timeout", type=click.FloatRange(min=1), default=None,
              help=f"Seconds one notebook or module may run in all [rubric, else {Limits.total_timeout_s:g}].")
@click.option("--memory-gb", type=click.FloatRange(min=1), default=None,
              help=f"Memory limit of each student process, GiB [rubric, else {Limits.memory_bytes / GiB:g}].")
@click.option("--max-processes", type=click.IntRange(min=16), default=None,
              help=f"Processes and threads a sandboxed submission may have [rubric, else {Limits.max_processes}].")
@click.option("--max-file-mb", type=click.FloatRange(min=1), default=None,
              help=f"Largest file a student process may write, MiB [rubric, else {Limits.max_file_bytes / MiB:g}].")
@click.option("--max-output-mb", type=click.FloatRange(min=0.1), default=None,
              help=f"Notebook output kept, MiB [rubric, else {Limits.max_output_bytes / MiB:g}].")
@click.option("--force", is_flag=True, help="Re-run submissions even when stored evidence is up to date.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clean-room measurement.")
@click.option("--data-path", type=click.Choice(["fast", "stock"]), default="fast", show_default=True,
              help="How torchvision's MNIST serves student code: 'fast' from decoded tensors (the same tensors, "
                   "bit for bit, several times faster), 'stock' through PIL as torchvision does.")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
              help="Where student code runs: 'cuda' gives each student a share of one GPU (an error without "
                   "one), 'cpu' hides the GPUs, 'auto' uses them when nvidia-smi sees any. The clean-room "
                   "measurement always runs on the CPU.")
@click.option("--jobs-per-gpu", type=click.IntRange(min=1), default=None,
              help="Students sharing one GPU, each capped at 95%/N of its memory [default: GPU memory / 4 GiB, "
                   "at most the CPU cores per GPU].")
@cluster_options
@pdf_option
def grade(paths: tuple[Path, ...], rubric_path: Path, out_dir: Path, marks_path: Path | None, profile: str,
          mnist_dir: Path | None, cache_dir: Path | None, workers: int | None, threads: int | None,
          sandbox_mode: str, cell_timeout: float | None, total_timeout: float | None, memory_gb: float | None,
          max_processes: int | None, max_file_mb: float | None, max_output_mb: float | None, force: bool,
          seed: int, data_path: str, device: str, jobs_per_gpu: int | None, pdf: bool,
          cluster: ClusterOptions) -> None:
    """Run, measure, score and report on submissions (folders, notebooks, .py modules, or a class folder).

    \b
    Example:
      grader grade submissions/ --rubric rubric/hw4.yaml --out reports/
      grader grade submissions/aditya_singh --rubric rubric/hw4.yaml --out reports/ --marks marks.yaml
    """
    rubric, marks = load_inputs(rubric_path, marks_path)
    limits = Limits.from_rubric(rubric.limits, {
        "cell_timeout_s": cell_timeout, "total_timeout_s": total_timeout, "memory_gb": memory_gb,
        "max_processes": max_processes, "max_file_mb": max_file_mb, "max_output_mb": max_output_mb})
    options = RunOptions(profile=profile, mnist_dir=mnist_dir, cache_dir=cache_dir, sandbox=sandbox_mode,
                         workers=workers, threads=threads, limits=limits, force=force, seed=seed, data_path=data_path,
                         device=device, jobs_per_gpu=jobs_per_gpu, cluster=cluster)
    with pdf_printer(pdf) as printer:
        result = _grade(list(paths), rubric, rubric_path, marks, out_dir, options, printer)
    sys.exit(_summary(result.published, result.outcomes, out_dir))


def _grade(paths: list[Path], rubric: Rubric, rubric_path: Path, marks: Marks | None, out_dir: Path,
           options: RunOptions, printer: Printer | None = None) -> ClassResult:
    """The pipeline with a progress bar: each student's total is printed as it finishes."""
    with progress_bar() as progress:
        task = progress.add_task("grading", total=0)

        def on_start(count: int, settings: Settings, workers: int, devices: DevicePlan) -> None:
            progress.update(task, total=count)
            in_flight = f"at most {options.workers} task(s)" if options.workers else "tasks up to twice its CPUs"
            where = (f"on the Ray cluster at {options.cluster.ray_address}, {in_flight} in flight x "
                     f"{settings.threads} thread(s)" if options.cluster.backend == "ray" else
                     f"{workers} worker(s) x {settings.threads} thread(s), device: {devices.describe()}")
            progress.console.print(
                f"grading {count} submission(s) on '{options.profile}' data, sandbox: {settings.sandbox.name}, {where}")
            if devices.note and options.device == "auto":
                progress.console.print(devices.note)
            if settings.sandbox.trusts_student:
                progress.console.print("[yellow]sandbox: none - student code runs as you and can read the "
                                       "held-out labels and write anywhere you can: use it only for code you trust[/]")

        def on_student(outcome: Outcome, published: Published | None, error: str) -> None:
            total = published.sheet.total_label if published else "report failed"
            progress.console.print(f"  {outcome.student}: {total} ({outcome.status})")
            if published and published.pdf_error:
                progress.console.print(f"  [yellow]{published.pdf_error}[/]")
            if error:
                progress.console.print(f"  [red]{error}[/]")
            progress.advance(task)

        with mapped_errors():
            return grade_class(paths, rubric, rubric_name=str(rubric_path), marks=marks, out_dir=out_dir,
                               options=options, printer=printer, on_start=on_start, on_student=on_student)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@rubric_option
@profile_option
@click.option("--margin", type=click.FloatRange(min=0, max=0.5), default=0.03, show_default=True,
              help="Subtracted from the lowest measured accuracy.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the calibration runs keep their evidence [default: reports/calibration-PROFILE].")
@click.option("--write", is_flag=True, help="Write the proposed thresholds into the rubric file.")
@mnist_dir_option
@cache_option
@click.option("--sandbox", "sandbox_mode", type=click.Choice(SANDBOX_CHOICES), default="bubblewrap",
              show_default=True, help="Isolation for the calibration runs (see 'grader grade --help').")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Submissions graded in parallel.")
def calibrate(paths: tuple[Path, ...], rubric_path: Path, profile: str, margin: float, out_dir: Path | None,
              write: bool, mnist_dir: Path | None, cache_dir: Path | None, sandbox_mode: str,
              workers: int | None) -> None:
    """Propose accuracy thresholds for a data profile from submissions that deserve full marks.

    \b
    Example:
      grader calibrate reference_solutions submissions/aditya_singh --rubric rubric/hw4.yaml --profile embedded
    """
    rubric, _ = load_inputs(rubric_path, None)
    out_dir = out_dir or Path("reports") / f"calibration-{profile}"
    options = RunOptions(profile=profile, mnist_dir=mnist_dir, cache_dir=cache_dir, sandbox=sandbox_mode,
                         workers=workers, limits=Limits.from_rubric(rubric.limits))
    published = _grade(list(paths), rubric, rubric_path, None, out_dir, options).published
    for item in published:
        for file in item.evidence.files:
            if file.status != "completed":
                err.print(f"[yellow]not used for calibration:[/] {item.evidence.student}/{file.path} ended "
                          f"'{file.status}': {file.message}")
    try:
        proposals = propose(rubric, [p.evidence for p in published], profile, margin)
    except CalibrationError as error:
        fail(str(error), EXIT_INCOMPLETE)
    table = Table(title=f"Thresholds for '{profile}' (lowest measured - {margin:g})", title_justify="left")
    for column in ("model", "measured (student: train / test)", "proposed train / test", "rubric now"):
        table.add_column(column)
    for proposal in proposals:
        measured = "\n".join(f"{m.model_id.split(':')[0]} ({m.student}): {m.train:.3f} / {m.test:.3f}"
                             for m in proposal.measurements)
        now = f"{proposal.current_train} / {proposal.current_test}"
        table.add_row(proposal.model, measured, f"{proposal.train:.2f} / {proposal.test:.2f}", now)
    out.print(table)
    if write:
        try:
            write_thresholds(rubric_path, proposals)
        except CalibrationError as error:
            fail(str(error), EXIT_INPUT)
        out.print(f"wrote the '{profile}' thresholds into {rubric_path}; run 'grader rescore' to apply them")
    else:
        out.print("pass --write to put them into the rubric")


@click.command()
@rubric_option
@out_option
@marks_option
@pdf_option
def rescore(rubric_path: Path, out_dir: Path, marks_path: Path | None, pdf: bool) -> None:
    """Score and render again from stored evidence: no notebook is run.

    Use it after editing the rubric (thresholds, lines) or the TA marks.

    \b
    Example:
      grader rescore --rubric rubric/hw4.yaml --out reports/ --marks marks.yaml
    """
    rubric, marks = load_inputs(rubric_path, marks_path)
    out = OutDir(out_dir)
    stored = stored_evidence(out)
    if not stored:
        fail(f"{out_dir}: no */evidence.json found; run 'grader grade' first", EXIT_INPUT)
    published = []
    with pdf_printer(pdf) as printer:
        for path, evidence, problem in stored:
            if evidence is None:
                err.print(f"[red]skipped[/] {problem}")
                continue
            if evidence.profile not in rubric.data_profiles:
                err.print(f"[red]skipped[/] {path}: data profile {evidence.profile!r} is not in the rubric")
                continue
            try:
                published.append(publish_student(out, rubric, str(rubric_path), evidence, marks, printer=printer))
            except Exception as error:  # one student's report must not stop the others
                err.print(f"[red]{evidence.student}: the report could not be written: {error!r}[/]")
                continue
            if published[-1].pdf_error:
                err.print(f"[yellow]{published[-1].pdf_error}[/]")
    publish_class(out, rubric, marks, rubric_name=str(rubric_path), published=published)
    code = _summary(published, {}, out_dir)
    if any(evidence is None for _, evidence, _ in stored):
        code = code or EXIT_INCOMPLETE
    sys.exit(code)


@click.command("check")
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


