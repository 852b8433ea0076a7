"""The marks database: schema, WAL, append-only history, versions, conflicts, migrations, bad files, export/import."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, RUBRIC

from grader.cli import EXIT_ENVIRONMENT, EXIT_INPUT, cli
from grader.marks import Mark, Marks, MarksError, load_marks, parse_csv_marks, parse_yaml_marks
from grader.marks_export import marks_csv, marks_yaml
from grader.marksdb import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Change,
    Conflict,
    MarksDB,
    MarksDbError,
    MarksDbLocked,
    NothingToUndo,
    create_at_version,
)
from grader.rubric import Rubric, load_rubric, parse_rubric
from grader.rubric_edits import RubricEdit, RubricEditError, apply_edits, export_rubric

CLASS = ROOT / "tests" / "data" / "class"

# every shape a mark can take, with text that CSV and YAML must both carry unchanged
MARKS = {
    "ana": {"1.1": Mark(("correct",)),
            "1.2": Mark(("no_covariate_shift",), "no mention of \"internal\" covariate shift, see p. 2; ok?"),
            "2.1": Mark(("lacks_layers_weights", "relu_not_mentioned"), "two issues:\nlayers, and ReLU — ünïcödé"),
            "2.3": Mark(("correct",), "checked by hand", override=True)},
    "bo, jr": {"1.3": Mark(()), "1.4": Mark((), "full marks, said in a comment"), "3.2": Mark(("not_done",), "",
                                                                                          override=True)},
}


def marks() -> Marks:
    return Marks(by_student={student: dict(items) for student, items in MARKS.items()}, source="test")


@pytest.fixture
def db(tmp_path: Path) -> MarksDB:
    database = MarksDB.open(tmp_path / "marks.sqlite")
    yield database
    database.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_database_is_versioned_wal_and_ours(db: MarksDB) -> None:
    connection = raw(db.path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == db.version
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    assert {"events", "current_marks", "rubric_edits", "conflicts", "publications", "meta"} <= tables
    assert db.backup is None


def test_every_change_is_an_appended_row_and_history_cannot_be_rewritten(db: MarksDB) -> None:
    db.set_mark("ana", "1.2", Mark(("correct",)), who="alice", expected_version=0)
    db.set_mark("ana", "1.2", Mark(("no_covariate_shift",), "why"), who="bob", expected_version=1)
    db.set_mark("ana", "1.2", None, who="alice", expected_version=2)
    history = db.history(student="ana", item="1.2")
    assert [(e.who, e.action, e.version) for e in history] == [("alice", "mark", 1), ("bob", "mark", 2),
                                                                ("alice", "clear", 3)]
    assert history[1].before == Mark(("correct",)) and history[1].after == Mark(("no_covariate_shift",), "why")
    assert history[2].after is None and all(e.at for e in history)
    assert db.state("ana", "1.2").mark is None and db.marks().by_student == {}  # cleared: pending again
    connection = raw(db.path)
    for statement in ("UPDATE events SET who = 'mallory'", "DELETE FROM events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute(statement)
    assert len(db.history()) == 3


def test_a_mark_saved_over_a_newer_one_is_a_conflict_and_is_kept(db: MarksDB) -> None:
    db.set_mark("ana", "1.2", Mark(("correct",)), who="alice", expected_version=0)
    with pytest.raises(Conflict) as caught:  # bob saw version 0 as well
        db.set_mark("ana", "1.2", Mark(("no_covariate_shift",)), who="bob", expected_version=0)
    assert caught.value.current.who == "alice" and caught.value.current.version == 1
    assert db.state("ana", "1.2").mark == Mark(("correct",))  # alice's mark was not overwritten
    [kept] = db.open_conflicts(student="ana", item="1.2")
    assert kept["who"] == "bob" and kept["mark"] == Mark(("no_covariate_shift",))  # bob's attempt was not lost
    db.set_mark("ana", "1.2", Mark(("no_covariate_shift",)), who="bob", expected_version=1)  # bob resolves
    db.resolve_conflicts("ana", "1.2", "bob")
    assert db.open_conflicts() == [] and db.state("ana", "1.2").version == 2
    # the same mark saved twice from a stale page is no conflict and writes nothing
    assert db.set_mark("ana", "1.2", Mark(("no_covariate_shift",)), who="alice", expected_version=1).version == 2


def test_group_changes_apply_where_versions_match(db: MarksDB) -> None:
    db.set_mark("bo", "1.3", Mark(("correct",)), who="alice")
    applied, conflicts = db.apply([Change("ana", "1.3", Mark(("correct",)), 0),
                                   Change("bo", "1.3", Mark(()), 0),
                                   Change("cy", "1.3", Mark(("correct",)), 0)], who="bob", action="group")
    assert [s.student for s in applied] == ["ana", "cy"] and [c.current.student for c in conflicts] == ["bo"]
    assert {e.action for e in db.history(item="1.3") if e.who == "bob"} == {"group"}


def test_undo_walks_back_through_changes(db: MarksDB) -> None:
    db.set_mark("ana", "1.1", Mark(("correct",)), who="alice")
    db.set_mark("ana", "1.1", Mark(("partially_correct",)), who="alice")
    assert db.undo("ana", "1.1", who="alice").mark == Mark(("correct",))
    assert db.undo("ana", "1.1", who="alice").mark is None
    with pytest.raises(NothingToUndo):
        db.undo("ana", "1.1", who="alice")
    assert [e.action for e in db.history()] == ["mark", "mark", "undo", "undo"]  # undo appends too


def test_migration_from_version_1_keeps_every_row_and_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "marks.sqlite"
    create_at_version(path, 1)
    connection = raw(path)
    insert = ("INSERT INTO events (at, who, student, item, action, lines_before, lines_after, comment_after, "
              "override_after) VALUES (?, ?, ?, ?, 'mark', ?, ?, ?, 0)")
    connection.execute(insert, ("t1", "alice", "ana", "1.2", None, '["correct"]', ""))
    connection.execute(insert, ("t2", "bob", "ana", "1.2", '["correct"]', '["no_covariate_shift"]', "late"))
    connection.execute(insert, ("t3", "alice", "bo", "1.1", None, '["correct"]', ""))
    connection.close()
    db = MarksDB.open(path)
    assert db.version == SCHEMA_VERSION and db.backup is not None and db.backup.exists()
    assert raw(db.backup).execute("PRAGMA user_version").fetchone()[0] == 1  # the copy is the old file
    assert raw(db.backup).execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
    assert [(e.student, e.version) for e in db.history()] == [("ana", 1), ("ana", 2), ("bo", 1)]
    assert db.marks().by_student == {"ana": {"1.2": Mark(("no_covariate_shift",), "late")},
                                     "bo": {"1.1": Mark(("correct",))}}
    db.set_mark("ana", "1.2", Mark(("correct",)), who="carol", expected_version=2)  # works on the new schema
    db.close()
    assert MarksDB.open(path).backup is None  # nothing left to migrate


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_corrupt_file_is_refused_and_kept(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "marks.sqlite"
    path.write_bytes(content)
    with pytest.raises(MarksDbError, match="left as it is"):
        MarksDB.open(path)
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["marks.sqlite"]


def test_another_applications_database_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "marks.sqlite"
    connection = raw(path)
    connection.execute("CREATE TABLE photos (id INTEGER, name TEXT)")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(MarksDbError, match="another application"):
        MarksDB.open(path)
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "marks.sqlite"
    MarksDB.open(path).close()
    raw(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(MarksDbError, match="newer grader"):
        MarksDB.open(path)


def test_a_database_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "marks.sqlite"
    MarksDB.open(path).close()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)"), str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        db = MarksDB.open(path, timeout_s=0.3)
        with pytest.raises(MarksDbLocked, match="locked by another process"):
            db.set_mark("ana", "1.2", Mark(("correct",)), who="alice")
        assert db.state("ana", "1.2").version == 0  # WAL: reading still works; nothing was written
        result = CliRunner().invoke(cli, ["marks", "import", str(_marks_file(tmp_path)), "--out", str(tmp_path),
                                          "--rubric", str(RUBRIC)])
        assert result.exit_code == EXIT_ENVIRONMENT and "locked by another process" in result.output
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    db.set_mark("ana", "1.2", Mark(("correct",)), who="alice")  # free again
    assert db.state("ana", "1.2").version == 1


def test_a_committed_mark_survives_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "marks.sqlite"
    code = ("import os, sys; from pathlib import Path; from grader.marks import Mark; from grader.marksdb import "
            "MarksDB; db = MarksDB.open(Path(sys.argv[1])); db.set_mark('ana', '1.2', Mark(('correct',)), "
            "who='alice'); os._exit(9)")  # no close, no checkpoint: killed right after the commit
    assert subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=False).returncode == 9
    assert MarksDB.open(path).marks().by_student == {"ana": {"1.2": Mark(("correct",))}}


def _marks_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.yaml"
    path.write_text('ana:\n  "1.2": [correct]\n')
    return path


def test_export_then_load_gives_the_same_marks(rubric: Rubric) -> None:
    order = [item.id for item in rubric.items()]
    assert parse_yaml_marks(marks_yaml(marks(), order), "x").by_student == MARKS
    assert parse_csv_marks(marks_csv(marks(), order), "x").by_student == MARKS


def test_import_export_round_trip_through_the_database(tmp_path: Path, rubric: Rubric, db: MarksDB) -> None:
    source = tmp_path / "source.yaml"
    source.write_text(marks_yaml(marks()))
    assert db.import_marks(load_marks(source, rubric), who="import") == (7, 0)
    assert db.import_marks(load_marks(source, rubric), who="import") == (0, 7)  # again: nothing changes
    assert db.marks().by_student == MARKS
    for suffix, render in ((".yaml", marks_yaml), (".csv", marks_csv)):
        exported = tmp_path / f"exported{suffix}"
        exported.write_text(render(db.marks()))
        assert load_marks(exported, rubric).by_student == MARKS
        again = MarksDB.open(tmp_path / f"again{suffix}.sqlite")
        again.import_marks(load_marks(exported, rubric), who="import")
        assert again.marks().by_student == MARKS and render(again.marks()) == exported.read_text()
    assert load_marks(db.path, rubric).by_student == MARKS  # --marks marks.sqlite


def test_marks_export_and_import_commands(tmp_path: Path) -> None:
    source = tmp_path / "source.csv"
    source.write_text(marks_csv(marks()))
    runner = CliRunner()
    result = runner.invoke(cli, ["marks", "import", str(source), "--out", str(tmp_path), "--rubric", str(RUBRIC),
                                 "--who", "priya"])
    assert result.exit_code == 0 and "7 mark(s) changed" in result.output, result.output
    assert {e.who for e in MarksDB.open(tmp_path / "marks.sqlite").history()} == {"priya"}
    for name in ("out.yaml", "out.csv"):
        result = runner.invoke(cli, ["marks", "export", "--out", str(tmp_path), "--rubric", str(RUBRIC),
                                     "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert load_marks(tmp_path / name, load_rubric(RUBRIC)).by_student == MARKS
    result = runner.invoke(cli, ["marks", "export", "--out", str(tmp_path), "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == EXIT_INPUT and "exists" in result.output
    stdout = runner.invoke(cli, ["marks", "export", "--out", str(tmp_path)]).output
    assert yaml.safe_load(stdout)["ana"]["1.1"] == ["correct"]


def test_bad_database_files_exit_with_the_input_code(tmp_path: Path) -> None:
    (tmp_path / "marks.sqlite").write_bytes(b"garbage" * 200)
    for args in (["marks", "export", "--out", str(tmp_path)],
                 ["rescore", "--rubric", str(RUBRIC), "--out", str(tmp_path), "--marks",
                  str(tmp_path / "marks.sqlite"), "--no-pdf"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == EXIT_INPUT and "not a usable marks database" in result.output, result.output
        assert "Traceback" not in result.output
    assert (tmp_path / "marks.sqlite").read_bytes() == b"garbage" * 200


def test_marks_referring_to_a_line_the_rubric_lost_are_an_error(tmp_path: Path, rubric: Rubric) -> None:
    db = MarksDB.open(tmp_path / "marks.sqlite")
    db.set_mark("ana", "1.2", Mark(("no_covariate_shift",)), who="alice")
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(RUBRIC.read_text().replace(
        "          - {id: no_covariate_shift, text: did not mention internal co-varient shift, points: -1}\n", "")
        .replace("        hints:\n          - keywords: [covariate shift, co-variate shift, covariant shift, "
                 "co-varient shift, co-variant shift]\n            if_missing: no_covariate_shift\n", ""))
    with pytest.raises(MarksError, match=r"ana, item 1\.2: unknown rubric line\(s\) no_covariate_shift.*rubric line "
                                         "this rubric does not have"):
        load_marks(db.path, load_rubric(smaller))
    assert db.marks().by_student == {"ana": {"1.2": Mark(("no_covariate_shift",))}}


def test_rubric_edits_apply_export_and_rescore(tmp_path: Path, rubric: Rubric) -> None:
    db = MarksDB.open(tmp_path / "marks.sqlite")
    db.add_rubric_edit("1.2", "no_covariate_shift", "edit", "did not mention internal covariate shift", -2,
                       who="alice")
    db.add_rubric_edit("1.2", "wrong_formula", "add", "Normalisation formula wrong", -1, who="alice")
    db.set_mark("ana", "1.2", Mark(("no_covariate_shift", "wrong_formula")), who="alice")
    edited = apply_edits(rubric, db.rubric_edits())
    assert [(line.id, line.points) for line in edited.item("1.2").lines] == [
        ("correct", 0), ("no_covariate_shift", -2), ("wrong_formula", -1)]
    text = export_rubric(RUBRIC.read_text(), db.rubric_edits(), header="exported")
    exported = parse_rubric(yaml.safe_load(text))
    assert exported == edited and apply_edits(exported, db.rubric_edits()) == edited  # idempotent
    assert text.startswith("# exported\n")
    # --marks marks.sqlite applies the database's rubric changes: the added line is known
    assert load_marks(db.path, edited).for_student("ana")["1.2"].lines == ("no_covariate_shift", "wrong_formula")
    with pytest.raises(RubricEditError, match="points must be 0 or negative"):
        apply_edits(rubric, [RubricEdit("1.2", "x", "add", "bonus", 1)])
    with pytest.raises(RubricEditError, match=r"refers to item '9\.9', which the rubric does not have"):
        apply_edits(rubric, [RubricEdit("9.9", "x", "add", "line", -1)])
    output = tmp_path / "hw4-graded.yaml"
    result = CliRunner().invoke(cli, ["rubric", "export", "--rubric", str(RUBRIC), "--out", str(tmp_path),
                                      "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert load_rubric(output) == edited and "Normalisation formula wrong" in output.read_text()
    result = CliRunner().invoke(cli, ["rubric", "export", "--rubric", str(RUBRIC), "--out", str(tmp_path),
                                      "-o", str(RUBRIC)])
    assert result.exit_code == EXIT_INPUT and "is the rubric itself" in result.output


def test_rescore_reads_the_database(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    for student in ("aditya_singh", "bella_wrong_hidden"):
        (out / student).mkdir(parents=True)
        shutil.copy(CLASS / student / "evidence.json", out / student / "evidence.json")
    db = MarksDB.open(out / "marks.sqlite")
    db.add_rubric_edit("1.2", "no_covariate_shift", "edit", "did not mention internal covariate shift", -2, who="a")
    db.set_mark("bella_wrong_hidden", "1.2", Mark(("no_covariate_shift",), "see lecture 5"), who="alice")
    db.close()
    result = CliRunner().invoke(cli, ["rescore", "--rubric", str(RUBRIC), "--out", str(out), "--marks",
                                      str(out / "marks.sqlite"), "--no-pdf"])
    assert result.exit_code == 0, result.output
    report = (out / "bella_wrong_hidden" / "report.html").read_text()
    assert "TA comment: see lecture 5" in report and "did not mention internal covariate shift" in report
    assert "1 / 3" in report  # -2 after the rubric change
