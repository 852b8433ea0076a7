"""TA marks in SQLite (``OUT/marks.sqlite``): every change is an appended row; current marks derive from it.

- ``events``: one row per change of one student's mark on one item: who, when, the mark before and
  after (rubric line ids as a JSON list, comment, override; ``NULL`` lines after = cleared, pending
  again), the action (``mark``, ``clear``, ``undo``, ``group``, ``import``) and a ``version`` that
  counts the changes of that student and item. Triggers refuse UPDATE and DELETE: nothing is lost.
- ``current_marks``: a view, the latest event of each student and item.
- ``rubric_edits``: rubric lines added or changed while grading (``grader.rubric_edits``).
- ``conflicts``: marks a TA tried to save over another TA's newer mark (kept, shown, resolved).
- ``publications``: which score sheets were last rendered (what "publish" re-renders).

Writers compare and append in one ``BEGIN IMMEDIATE`` transaction: a mark is saved only if the
student and item are still at the version the TA saw, else ``Conflict`` says who changed it.
The file is in WAL mode with ``synchronous=FULL`` (a committed mark survives a crash), carries an
application id and a schema version (``PRAGMA user_version``); an older schema is migrated after a
copy of the file is made, and a corrupt, foreign or newer file is refused and left as it is.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.marks import Mark, Marks, MarksError, validate_marks
from grader.rubric import Rubric
from grader.rubric_edits import EditAction, RubricEdit, apply_edits

APPLICATION_ID = 0x47524D4B  # "GRMK" in the SQLite header: this file holds grader marks
SCHEMA_VERSION = 2
DB_NAME = "marks.sqlite"
SUFFIXES = (".sqlite", ".sqlite3", ".db")

_NO_CHANGES = """
CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the marks history is append-only'); END;
CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, 'the marks history is append-only'); END;
"""

# MIGRATIONS[n] takes a database from version n - 1 to n; a new file runs them all.
MIGRATIONS: dict[int, str] = {
    1: f"""
PRAGMA application_id = {APPLICATION_ID};
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('application', 'grader marks');
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    student TEXT NOT NULL,
    item TEXT NOT NULL,
    action TEXT NOT NULL,
    lines_before TEXT, comment_before TEXT, override_before INTEGER,
    lines_after TEXT, comment_after TEXT, override_after INTEGER
);
CREATE INDEX events_student_item ON events (student, item, id);
{_NO_CHANGES.format(table="events")}
""",
    # 2: a version per student and item (compare-and-append), undo, rubric edits, conflicts, publications
    2: f"""
DROP TRIGGER events_append_only_update;
ALTER TABLE events ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN undoes INTEGER REFERENCES events (id);
UPDATE events SET version = (SELECT COUNT(*) FROM events AS e
                             WHERE e.student = events.student AND e.item = events.item AND e.id <= events.id);
CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the marks history is append-only'); END;
CREATE UNIQUE INDEX events_version ON events (student, item, version);
CREATE VIEW current_marks AS
    SELECT e.* FROM events AS e
    JOIN (SELECT student, item, MAX(version) AS version FROM events GROUP BY student, item) AS latest
    USING (student, item, version);
CREATE TABLE rubric_edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, who TEXT NOT NULL,
    item TEXT NOT NULL, line TEXT NOT NULL, action TEXT NOT NULL CHECK (action IN ('add', 'edit')),
    text TEXT NOT NULL, points REAL NOT NULL CHECK (points <= 0)
);
{_NO_CHANGES.format(table="rubric_edits")}
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, who TEXT NOT NULL, student TEXT NOT NULL, item TEXT NOT NULL,
    expected_version INTEGER NOT NULL, found_version INTEGER NOT NULL,
    lines TEXT, comment TEXT, override INTEGER,
    resolved_by INTEGER REFERENCES events (id)
);
CREATE TABLE publications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, who TEXT NOT NULL, student TEXT NOT NULL, fingerprint TEXT NOT NULL
);
CREATE INDEX publications_student ON publications (student, id);
{_NO_CHANGES.format(table="publications")}
""",
}


class MarksDbError(ValueError):
    """The marks database cannot be used: not SQLite, another application's, corrupt, or newer than this grader."""


class MarksDbLocked(MarksDbError):
    """Another process holds a lock on the marks database for longer than the timeout."""


class NothingToUndo(MarksDbError):
    """The student's item has no change left to undo."""


@dataclass(frozen=True)
class MarkState:
    """The current mark of one student and item; ``version`` 0 and no ``mark``: never marked."""

    student: str
    item: str
    version: int = 0
    mark: Mark | None = None
    who: str = ""
    at: str = ""


@dataclass(frozen=True)
class Event:
    id: int
    at: str
    who: str
    student: str
    item: str
    action: str
    version: int
    before: Mark | None
    after: Mark | None
    undoes: int | None = None


class Conflict(Exception):
    """Another change reached this student and item first: ``current`` is what it is now."""

    def __init__(self, current: MarkState, attempted: Mark | None, expected_version: int) -> None:
        super().__init__(f"{current.student}, item {current.item}: changed by {current.who or 'someone'} "
                         f"(version {current.version}; you edited version {expected_version})")
        self.current = current
        self.attempted = attempted
        self.expected_version = expected_version


@dataclass(frozen=True)
class Change:
    """One mark to write: ``expected_version`` is the version the TA saw (None: write whatever is there)."""

    student: str
    item: str
    mark: Mark | None
    expected_version: int | None = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_marks_db(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def _lines(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))


def _mark(lines: str | None, comment: str | None, override: int | None) -> Mark | None:
    parsed = _lines(lines)
    return None if parsed is None else Mark(lines=parsed, comment=comment or "", override=bool(override))


def _columns(mark: Mark | None) -> tuple[str | None, str | None, int | None]:
    if mark is None:
        return None, None, None
    return json.dumps(list(mark.lines)), mark.comment, int(mark.override)


def _state(row: sqlite3.Row) -> MarkState:
    return MarkState(row["student"], row["item"], row["version"],
                     _mark(row["lines_after"], row["comment_after"], row["override_after"]), row["who"], row["at"])


def _event(row: sqlite3.Row) -> Event:
    return Event(row["id"], row["at"], row["who"], row["student"], row["item"], row["action"], row["version"],
                 _mark(row["lines_before"], row["comment_before"], row["override_before"]),
                 _mark(row["lines_after"], row["comment_after"], row["override_after"]), row["undoes"])


class MarksDB:
    """The marks database of one class; safe to share between threads (one connection per thread)."""

    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.backup: Path | None = None  # the copy made before a migration, if one was made
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = True, timeout_s: float = 5.0) -> MarksDB:
        """Open (creating when ``create``) and migrate; ``MarksDbError`` when the file cannot be used."""
        if not path.exists() and not create:
            raise MarksDbError(f"{path}: no marks database here (grader serve creates it)")
        if path.is_dir():
            raise MarksDbError(f"{path}: is a folder, not a marks database")
        db = cls(path, timeout_s)
        db._prepare()
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as error:
            raise MarksDbError(f"{self.path}: cannot open the marks database ({error})") from None
        connection.row_factory = sqlite3.Row
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            with self._translated():
                connection.execute("PRAGMA synchronous = FULL")
                connection.execute("PRAGMA foreign_keys = ON")
            self._local.connection = connection
            with self._lock:
                self._all.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            for connection in self._all:
                connection.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> MarksDB:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise MarksDbLocked(
                    f"{self.path}: the marks database is locked by another process (another 'grader serve' or "
                    f"'grader marks import'?) and stayed locked for {self.timeout_s:g} s; nothing was written. "
                    "Try again, or stop the other process.") from None
            raise MarksDbError(f"{self.path}: {error}") from None
        except sqlite3.DatabaseError as error:
            raise MarksDbError(f"{self.path}: not a usable marks database ({error}); the file was left as it is. "
                               "Move it away to start a new one, or restore a backup.") from None

    def _prepare(self) -> None:
        connection = self._connect()
        try:
            with self._translated():
                version = self._identify(connection)
                if version > SCHEMA_VERSION:
                    raise MarksDbError(f"{self.path}: written by a newer grader (schema version {version}; this "
                                       f"grader reads up to {SCHEMA_VERSION}); the file was left as it is")
                if version < SCHEMA_VERSION:
                    if version > 0:
                        self.backup = self._copy(connection, version)
                    self._migrate(connection, version)
                if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()

    def _identify(self, connection: sqlite3.Connection) -> int:
        """The schema version; raises for a corrupt file or another application's."""
        application = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if application != APPLICATION_ID and (application != 0 or tables):
            raise MarksDbError(f"{self.path}: an SQLite file of another application (application id {application:#x}"
                               f", tables: {', '.join(tables) or 'none'}), not grader marks; it was left as it is. "
                               "Move it away or choose another file.")
        if application == APPLICATION_ID:
            check = connection.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise MarksDbError(f"{self.path}: the marks database is damaged ({check}); it was left as it is. "
                                   "Restore a backup (marks.sqlite.v*.bak) or run 'sqlite3 marks.sqlite .recover'.")
        return int(version)

    def _copy(self, connection: sqlite3.Connection, version: int) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = self.path.with_name(f"{self.path.name}.v{version}-{stamp}.bak")
        copy = sqlite3.connect(target)
        try:
            connection.backup(copy)
        finally:
            copy.close()
        return target

    def _migrate(self, connection: sqlite3.Connection, version: int) -> None:
        for number in range(version + 1, SCHEMA_VERSION + 1):
            # one transaction per step: a crash leaves the file at the previous version
            connection.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number};\n"
                                     "COMMIT;")

    @property
    def version(self) -> int:
        with self._translated():
            return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    # -- reading ---------------------------------------------------------------

    def _rows(self, sql: str, parameters: Iterable[object] = ()) -> list[sqlite3.Row]:
        with self._translated():
            return self._connection().execute(sql, tuple(parameters)).fetchall()

    def current(self, *, student: str | None = None, item: str | None = None) -> dict[tuple[str, str], MarkState]:
        """The latest state of every (student, item) ever marked (cleared ones have ``mark`` None)."""
        where, parameters = [], []
        for column, value in (("student", student), ("item", item)):
            if value is not None:
                where.append(f"{column} = ?")
                parameters.append(value)
        sql = "SELECT * FROM current_marks" + (" WHERE " + " AND ".join(where) if where else "")
        return {(row["student"], row["item"]): _state(row) for row in self._rows(sql, parameters)}

    def state(self, student: str, item: str) -> MarkState:
        return self.current(student=student, item=item).get((student, item), MarkState(student, item))

    def marks(self) -> Marks:
        """The current marks, as ``grader.marks.load_marks`` gives them (cleared items left out)."""
        marks = Marks(source=str(self.path))
        for (student, item), state in sorted(self.current().items()):
            if state.mark is not None:
                marks.by_student.setdefault(student, {})[item] = state.mark
        return marks

    def history(self, *, student: str | None = None, item: str | None = None) -> list[Event]:
        where = " AND ".join(f"{c} = ?" for c, v in (("student", student), ("item", item)) if v is not None)
        parameters = [v for v in (student, item) if v is not None]
        return [_event(row) for row in self._rows(
            "SELECT * FROM events" + (f" WHERE {where}" if where else "") + " ORDER BY id", parameters)]

    def last_change(self) -> int:
        """The id of the latest event (0 for none): a cheap "has anything changed" stamp."""
        return int(self._rows("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])

    # -- writing ---------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._translated():
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @staticmethod
    def _current_in(connection: sqlite3.Connection, student: str, item: str) -> MarkState:
        row = connection.execute("SELECT * FROM events WHERE student = ? AND item = ? ORDER BY version DESC LIMIT 1",
                                 (student, item)).fetchone()
        return _state(row) if row else MarkState(student, item)

    @staticmethod
    def _append(connection: sqlite3.Connection, before: MarkState, after: Mark | None, who: str, action: str,
                undoes: int | None = None) -> MarkState:
        at = now()
        cursor = connection.execute(
            "INSERT INTO events (at, who, student, item, action, lines_before, comment_before, override_before, "
            "lines_after, comment_after, override_after, version, undoes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (at, who, before.student, before.item, action, *_columns(before.mark), *_columns(after),
             before.version + 1, undoes))
        del cursor
        return MarkState(before.student, before.item, before.version + 1, after, who, at)

    def apply(self, changes: list[Change], *, who: str, action: str = "mark") -> tuple[list[MarkState], list[Conflict]]:
        """Write ``changes`` in one transaction; those whose version moved on are returned as conflicts (and kept).

        A change to the mark that is already there writes nothing (its state is returned as it is).
        """
        applied: list[MarkState] = []
        conflicts: list[Conflict] = []
        with self._write() as connection:
            for change in changes:
                current = self._current_in(connection, change.student, change.item)
                stale = change.expected_version is not None and current.version != change.expected_version
                if stale and current.mark != change.mark:
                    connection.execute(
                        "INSERT INTO conflicts (at, who, student, item, expected_version, found_version, lines, "
                        "comment, override) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (now(), who, change.student, change.item, change.expected_version, current.version,
                         *_columns(change.mark)))
                    conflicts.append(Conflict(current, change.mark, int(change.expected_version or 0)))
                    continue
                if current.mark == change.mark:
                    applied.append(current)
                    continue
                applied.append(self._append(connection, current, change.mark, who,
                                            "clear" if change.mark is None else action))
        return applied, conflicts

    def set_mark(self, student: str, item: str, mark: Mark | None, *, who: str, expected_version: int | None = None,
                 action: str = "mark") -> MarkState:
        """Write one mark (None: clear it, pending again); ``Conflict`` if ``expected_version`` is not current."""
        applied, conflicts = self.apply([Change(student, item, mark, expected_version)], who=who, action=action)
        if conflicts:
            raise conflicts[0]
        return applied[0]

    def undo(self, student: str, item: str, *, who: str, expected_version: int | None = None) -> MarkState:
        """Revert the latest change of this student and item not yet undone (repeat to go further back)."""
        with self._write() as connection:
            current = self._current_in(connection, student, item)
            if expected_version is not None and current.version != expected_version:
                raise Conflict(current, None, expected_version)
            row = connection.execute(
                "SELECT * FROM events WHERE student = ? AND item = ? AND action != 'undo' AND id NOT IN "
                "(SELECT undoes FROM events WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1",
                (student, item)).fetchone()
            if row is None:
                raise NothingToUndo(f"{student}, item {item}: nothing to undo")
            target = _event(row)
            return self._append(connection, current, target.before, who, "undo", undoes=target.id)

    def import_marks(self, marks: Marks, *, who: str) -> tuple[int, int]:
        """Set every mark of ``marks`` (other items are left alone): (changed, unchanged)."""
        changes = [Change(student, item, mark) for student, items in sorted(marks.by_student.items())
                   for item, mark in sorted(items.items())]
        before = self.current()
        applied, _ = self.apply(changes, who=who, action="import")
        changed = sum(1 for state in applied if before.get((state.student, state.item)) != state)
        return changed, len(applied) - changed

    # -- conflicts ----------------------------------------------------------------

    def open_conflicts(self, *, student: str | None = None, item: str | None = None) -> list[dict[str, object]]:
        where = ["resolved_by IS NULL"] + [f"{c} = ?" for c, v in (("student", student), ("item", item)) if v]
        parameters = [v for v in (student, item) if v]
        rows = self._rows(f"SELECT * FROM conflicts WHERE {' AND '.join(where)} ORDER BY id", parameters)
        return [{"id": row["id"], "at": row["at"], "who": row["who"], "student": row["student"], "item": row["item"],
                 "expected_version": row["expected_version"], "found_version": row["found_version"],
                 "mark": _mark(row["lines"], row["comment"], row["override"])} for row in rows]

    def resolve_conflicts(self, student: str, item: str, who: str) -> None:
        """Mark this student's and item's conflicts of ``who`` as resolved by the latest event."""
        with self._write() as connection:
            latest = connection.execute("SELECT MAX(id) FROM events WHERE student = ? AND item = ?",
                                        (student, item)).fetchone()[0]
            connection.execute("UPDATE conflicts SET resolved_by = ? WHERE student = ? AND item = ? AND who = ? AND "
                               "resolved_by IS NULL", (latest, student, item, who))

    # -- rubric edits and publications ----------------------------------------------

    def add_rubric_edit(self, item: str, line: str, action: EditAction, text: str, points: float, *,
                        who: str) -> RubricEdit:
        at = now()
        with self._write() as connection:
            cursor = connection.execute(
                "INSERT INTO rubric_edits (at, who, item, line, action, text, points) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at, who, item, line, action, text, float(points)))
        return RubricEdit(item, line, action, text, float(points), int(cursor.lastrowid or 0), at, who)

    def rubric_edits(self) -> list[RubricEdit]:
        return [RubricEdit(row["item"], row["line"], row["action"], row["text"], row["points"], row["id"], row["at"],
                           row["who"]) for row in self._rows("SELECT * FROM rubric_edits ORDER BY id")]

    def published(self) -> dict[str, str]:
        """Student -> fingerprint of the score sheet last rendered for them."""
        rows = self._rows("SELECT student, fingerprint FROM publications WHERE id IN "
                          "(SELECT MAX(id) FROM publications GROUP BY student)")
        return {row["student"]: row["fingerprint"] for row in rows}

    def record_published(self, fingerprints: dict[str, str], *, who: str) -> None:
        at = now()
        with self._write() as connection:
            connection.executemany("INSERT INTO publications (at, who, student, fingerprint) VALUES (?, ?, ?, ?)",
                                   [(at, who, student, value) for student, value in sorted(fingerprints.items())])


def create_at_version(path: Path, version: int) -> None:
    """A new database at an older schema ``version`` (for migration tests)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        for number in range(1, version + 1):
            connection.executescript(f"BEGIN;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number};\nCOMMIT;")
    finally:
        connection.close()


def db_rubric(rubric: Rubric, path: Path) -> Rubric:
    """``rubric`` with the line changes made while grading that the database at ``path`` holds."""
    with MarksDB.open(path, create=False) as db:
        return apply_edits(rubric, db.rubric_edits(), source=str(path))


def load_db_marks(path: Path, rubric: Rubric) -> Marks:
    """The current marks of the database, checked against ``rubric`` (with the database's rubric changes)."""
    with MarksDB.open(path, create=False) as db:
        marks = db.marks()
    try:
        validate_marks(marks, rubric)
    except MarksError as error:
        raise MarksError(f"{error}. The marks refer to a rubric line this rubric does not have: pass the rubric "
                         "they were made with (or the one 'grader rubric export' writes); nothing was changed"
                         ) from None
    return marks
