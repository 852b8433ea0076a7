"""Commands for grading in the browser: `grader serve`, `grader marks export/import`, `grader rubric export`."""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime
from pathlib import Path

import click

from grader.commands.common import (
    EXIT_ENVIRONMENT,
    EXIT_INPUT,
    err,
    fail,
    load_inputs,
    mapped_errors,
    out,
    rubric_option,
    write_output,
)
from grader.marks import load_marks
from grader.marks_export import marks_csv, marks_yaml
from grader.marksdb import DB_NAME, SUFFIXES, MarksDB, is_marks_db
from grader.rubric import load_rubric
from grader.rubric_edits import export_rubric

out_dir_argument = click.argument("out_dir", metavar="OUT", type=click.Path(path_type=Path, file_okay=False,
                                                                            exists=True))
db_option = click.option("--db", "db_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
                         help=f"The marks database [default: OUT/{DB_NAME}].")
graded_option = click.option("--out", "out_dir", required=True,
                             type=click.Path(path_type=Path, file_okay=False, exists=True),
                             help=f"The graded class (the --out folder of 'grader grade'), holding {DB_NAME}.")
output_option = click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
                             help="File to write [default: standard output]. An existing file is kept unless --force.")
force_option = click.option("--force", is_flag=True, help="Overwrite --output if it exists.")


def _db(out_dir: Path, db_path: Path | None, *, create: bool = False) -> MarksDB:
    path = db_path or out_dir / DB_NAME
    if not is_marks_db(path):
        fail(f"{path}: a marks database is named *{', *'.join(SUFFIXES)}", EXIT_INPUT)
    with mapped_errors():
        return MarksDB.open(path, create=create)


@click.command()
@out_dir_argument
@rubric_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets a TA team on other machines in (the token protects it).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@db_option
@click.option("--pdf/--no-pdf", "pdf", default=True, show_default=True,
              help="Publishing also prints report.pdf with headless Chromium (skipped when it is missing).")
def serve(out_dir: Path, rubric_path: Path, host: str, port: int, db_path: Path | None, pdf: bool) -> None:
    """Grade the written answers in a browser: question by question, marks saved in OUT/marks.sqlite.

    Prints a URL with a random token (as Jupyter does): open it in a browser, give your name once,
    pick an item and mark answers with the keyboard. 'Publish' re-renders the reports of the
    students whose marks changed. Stop it with Ctrl+C; marks are saved as they are clicked.

    \b
    Example:
      grader serve reports/ --rubric rubric/hw4.yaml
      grader serve reports/ --rubric rubric/hw4.yaml --host 0.0.0.0 --port 8800   # a TA team
    """
    from grader.serve.app import PortInUse, Server, bind
    from grader.serve.security import Keys
    from grader.serve.state import Grading, ServeError

    db = _db(out_dir, db_path, create=True)
    if db.backup is not None:
        err.print(f"{db.path}: migrated to schema version {db.version}; the old file was copied to {db.backup}")
    try:
        with mapped_errors():
            grading = Grading(out_dir, rubric_path, db, pdf=pdf)
    except ServeError as error:
        fail(str(error), EXIT_INPUT)
    try:
        sock = bind(host, port)
    except PortInUse as error:
        fail(str(error), EXIT_ENVIRONMENT)
    except OSError as error:
        fail(str(error), EXIT_ENVIRONMENT)
    server = Server(grading, Keys(), sock)
    grading.warm_up()
    for problem in grading.skipped:
        err.print(f"[yellow]skipped[/] {problem}")
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else None
    out.print(f"grading {grading.rubric.assignment.title}: {len(grading.order)} student(s) from {out_dir}, "
              f"marks in {db.path}", soft_wrap=True)
    if shown:
        err.print("[yellow]listening on every interface[/]: anyone with the URL below can mark; the traffic is not "
                  "encrypted (plain http), so use it on a trusted network")
    out.print(f"open in a browser:\n    {server.url(shown)}", soft_wrap=True)
    out.print("Ctrl+C stops the server; marks are saved as they are clicked.")
    try:
        server.run()
    finally:
        db.close()


@click.command("export")
@graded_option
@db_option
@click.option("--rubric", "rubric_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Check the marks against this rubric (with the database's rubric changes) and list items in its "
                   "order.")
@click.option("--format", "file_format", type=click.Choice(["yaml", "csv"]), default=None,
              help="Marks file format [default: from --output's suffix, else yaml].")
@output_option
@force_option
def marks_export(out_dir: Path, db_path: Path | None, rubric_path: Path | None, file_format: str | None,
                 output: Path | None, force: bool) -> None:
    """Write the current marks of the database as a marks file (the YAML or CSV that --marks reads).

    \b
    Example:
      grader marks export --out reports/ -o marks.yaml
      grader marks export --out reports/ --format csv -o marks.csv
    """
    db = _db(out_dir, db_path)
    order: list[str] = []
    with db, mapped_errors():
        current = db.marks()
        if rubric_path is not None:
            rubric_, _ = load_inputs(rubric_path, db.path)
            order = [item.id for item in rubric_.items()]
    kind = file_format or ("csv" if output and output.suffix.lower() == ".csv" else "yaml")
    count = sum(len(items) for items in current.by_student.values())
    header = (f"TA marks exported from {db.path} by 'grader marks export' at "
              f"{datetime.now(UTC).isoformat(timespec='seconds')}: {count} mark(s)")
    text = marks_csv(current, order) if kind == "csv" else marks_yaml(current, order, header=header)
    write_output(text, output, force=force, exists_code=EXIT_INPUT,
                 done=f"{count} mark(s) of {len(current.by_student)} student(s)")


@click.command("import")
@click.argument("marks_file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@graded_option
@rubric_option
@db_option
@click.option("--who", default=None, help="Name recorded with the imported marks [default: import:FILE (USER)].")
def marks_import(marks_file: Path, out_dir: Path, rubric_path: Path, db_path: Path | None, who: str | None) -> None:
    """Read a marks file (YAML or CSV) into the database: each mark in it replaces the current one.

    Items the file does not mention keep their marks; every change is kept in the history.

    \b
    Example:
      grader marks import marks.yaml --out reports/ --rubric rubric/hw4.yaml
    """
    db = _db(out_dir, db_path, create=True)
    with db, mapped_errors():
        rubric_, _ = load_inputs(rubric_path, db.path)
        incoming = load_marks(marks_file, rubric_)
        changed, unchanged = db.import_marks(incoming, who=who or f"import:{marks_file.name} ({getpass.getuser()})")
    out.print(f"imported {marks_file} into {db.path}: {changed} mark(s) changed, {unchanged} unchanged", soft_wrap=True)


@click.command("export")
@rubric_option
@graded_option
@db_option
@output_option
@force_option
def rubric_export(rubric_path: Path, out_dir: Path, db_path: Path | None, output: Path | None, force: bool) -> None:
    """Write the rubric with the line changes made while grading (the rubric file itself is never edited).

    \b
    Example:
      grader rubric export --rubric rubric/hw4.yaml --out reports/ -o rubric/hw4-graded.yaml
    """
    if output is not None and output.resolve() == rubric_path.resolve() and not force:
        fail(f"{output} is the rubric itself; write a new file (or pass --force to replace it)", EXIT_INPUT)
    db = _db(out_dir, db_path)
    with db, mapped_errors():
        edits = db.rubric_edits()
        load_rubric(rubric_path)
        header = "\n".join([
            f"{rubric_path} with {len(edits)} rubric change(s) made while grading ({db.path}),",
            f"written by 'grader rubric export' at {datetime.now(UTC).isoformat(timespec='seconds')}.",
            "The original file's comments are not kept. Changes:",
            *(f"  {edit.describe()} (by {edit.who}, {edit.at[:19]})" for edit in edits)])
        text = export_rubric(rubric_path.read_text(encoding="utf-8"), edits, header=header, source=str(rubric_path))
    write_output(text, output, force=force, exists_code=EXIT_INPUT, done=f"{len(edits)} change(s) applied")
