"""Commands about reports and TA marks: `grader marks template`; the `--pdf/--no-pdf` option of grade/rescore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import click

from grader.commands.common import EXIT_INPUT, err, fail, load_inputs, out, rubric_option
from grader.fsutil import atomic_write_text
from grader.marks_template import TemplateFormat, render_template
from grader.outputs import stored_evidence
from grader.render.pdf import Printer, find_browser

pdf_option = click.option(
    "--pdf/--no-pdf", "pdf", default=True, show_default=True,
    help="Also print each report to report.pdf with headless Chromium (skipped, with a note, when it is missing).")


@contextmanager
def pdf_printer(pdf: bool) -> Iterator[Printer | None]:
    """A Chromium to print the reports with (one for the whole run), or None; says once why PDFs are skipped."""
    browser = find_browser() if pdf else None
    if pdf and browser is None:
        err.print("[yellow]Chromium was not found: report.pdf is skipped[/] (install chromium, set "
                  "$GRADER_CHROMIUM, or pass --no-pdf)")
    if browser is None:
        yield None
        return
    with Printer(browser) as printer:
        yield printer


@click.command("template")
@rubric_option
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="The graded class: the --out folder of 'grader grade' (students from */evidence.json).")
@click.option("--format", "file_format", type=click.Choice(["yaml", "csv"]), default=None,
              help="Marks file format [default: from --output's suffix, else yaml].")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File to write [default: standard output]. An existing file is kept unless --force.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists (it may hold a TA's marks).")
def template(rubric_path: Path, out_dir: Path, file_format: str | None, output: Path | None, force: bool) -> None:
    """Write a marks file to fill in: each student, each manual item with its rubric lines and hints.

    Loaded as it is, the file marks nothing (every item stays pending); keyword hints from the
    rubric are shown as suggestions and never applied. Fill in the rubric line ids, then run
    'grader rescore --marks FILE'.

    \b
    Example:
      grader marks template --rubric rubric/hw4.yaml --out reports/ -o marks.yaml
      grader marks template --rubric rubric/hw4.yaml --out reports/ --format csv -o marks.csv
    """
    rubric, _ = load_inputs(rubric_path, None)
    kind = cast(TemplateFormat, file_format or ("csv" if output and output.suffix.lower() == ".csv" else "yaml"))
    if output is not None and output.exists() and not force:
        fail(f"{output} exists (it may hold marks already); choose another name or pass --force", EXIT_INPUT)
    evidences = []
    for path, evidence, problem in stored_evidence(out_dir):
        if evidence is None:
            err.print(f"[red]skipped[/] {problem}")
        elif evidence.profile not in rubric.data_profiles:
            err.print(f"[red]skipped[/] {path}: data profile {evidence.profile!r} is not in the rubric")
        else:
            evidences.append(evidence)
    if not evidences:
        fail(f"{out_dir}: no */evidence.json found; run 'grader grade' first", EXIT_INPUT)
    text = render_template(rubric, evidences, kind, rubric_name=str(rubric_path), source=str(out_dir))
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write_text(output, text)
    manual = sum(1 for item in rubric.items() if item.grading == "manual")
    out.print(f"wrote {output}: {len(evidences)} student(s) x {manual} manual item(s); fill it in, then run "
              f"'grader rescore --rubric {rubric_path} --out {out_dir} --marks {output}'")
