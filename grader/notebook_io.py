"""Read a student's notebook as Jupyter does: leniently, within bounds, and saying what was repaired.

Jupyter opens (and runs) notebooks that do not match the nbformat schema to the letter: a
markdown cell that still carries the ``outputs`` of the code cell it was, a cell without a
``cell_type``, metadata of the wrong type, duplicate cell ids, the old format 3. So does the
grader: what nbformat can normalise is left to nbformat (format 3 -> 4, missing or duplicate
cell ids, invalid metadata keys); what it cannot and does not affect running the code is
repaired here; every repair is listed for the report. Only what cannot be run is refused, with a
``NotebookError`` naming the file and the place: the JSON line and column, or the schema error
with its cell and field.

Reading is bounded: the file size is capped, and JSON nested deeper than any notebook is
refused after a linear scan, before anything recurses. Nothing but ``NotebookError`` escapes
``read_notebook``.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
import threading
import warnings
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.corpus.words import generate_corpus_id
from nbformat.validator import get_validator, normalize

MAX_NOTEBOOK_BYTES = 50 << 20
MAX_DEPTH = 100  # a notebook is nested a dozen levels; widget and plot JSON in metadata a few dozen
MAX_GUESS_CHARS = 100_000  # source parsed to guess a missing cell_type
_CELL_TYPES = ("code", "markdown", "raw")
_CELL_FIELDS = {
    "code": {"id", "cell_type", "metadata", "source", "outputs", "execution_count"},
    "markdown": {"id", "cell_type", "metadata", "attachments", "source"},
    "raw": {"id", "cell_type", "metadata", "attachments", "source"},
}
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_REDOWNLOAD = "re-download it from Jupyter/Colab (File > Download > .ipynb)"

# The JSON skeleton: strings are skipped (a bracket inside one is text), brackets counted.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")  # +1 / -1 as signed bytes
_QUIET = threading.Lock()  # warning filters and the logger are process-wide: one reader changes them at a time


class NotebookError(ValueError):
    """A notebook that cannot be run; ``problem`` reads after the file name ("broken.ipynb is not ...")."""

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"{file} {problem}")
        self.file = file
        self.problem = problem


@dataclass(frozen=True)
class LenientNotebook:
    notebook: nbformat.NotebookNode  # format 4, valid against nbformat's schema
    repairs: tuple[str, ...] = ()  # what was repaired, for the report ("cell 3: ...")


@dataclass
class _Repairs:
    """Repairs grouped by what was done, so 300 cells without an id make one line."""

    cells: dict[str, list[int]] = field(default_factory=dict)
    notebook: list[str] = field(default_factory=list)

    def cell(self, index: int, what: str) -> None:
        indices = self.cells.setdefault(what, [])
        if index not in indices:
            indices.append(index)

    def note(self, what: str) -> None:
        if what not in self.notebook:
            self.notebook.append(what)

    def lines(self) -> tuple[str, ...]:
        lines = list(self.notebook)
        for what, indices in self.cells.items():
            shown = ", ".join(str(i) for i in indices[:10])
            more = f" and {len(indices) - 10} more" if len(indices) > 10 else ""
            lines.append(f"cell{'s' if len(indices) > 1 else ''} {shown}{more}: {what}")
        return tuple(lines)


def read_notebook(path: Path, name: str | None = None) -> LenientNotebook:
    """The notebook at ``path`` as format 4, with the repairs made; a ``NotebookError`` (only) when it cannot run.

    ``name`` is how messages call the file (default: its name), e.g. its path in the submission.
    """
    shown = name or path.name

    def read() -> LenientNotebook:
        try:
            size = path.stat().st_size
            if size > MAX_NOTEBOOK_BYTES:
                raise NotebookError(shown, f"is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES:,}-byte limit (clear "
                                           "the notebook's outputs and hand it in again)")
            data = path.read_bytes()
        except OSError as error:
            raise NotebookError(shown, f"could not be read ({error.strerror or error}); hand it in again") from None
        return _read(data, shown)

    return _refusing(shown, read)


def read_notebook_bytes(data: bytes, name: str) -> LenientNotebook:
    """As ``read_notebook``, for the file's bytes."""
    return _refusing(name, lambda: _read(data, name))


def _refusing(name: str, read: Callable[[], LenientNotebook]) -> LenientNotebook:
    """Whatever goes wrong reading a student's file becomes a ``NotebookError`` naming it."""
    try:
        return read()
    except NotebookError:
        raise
    except MemoryError:
        raise NotebookError(name, "is too large to read (out of memory); clear its outputs and hand it in "
                                  "again") from None
    except RecursionError:
        raise NotebookError(name, f"is nested too deeply to read; {_REDOWNLOAD}") from None
    except Exception as error:  # a quirk nobody foresaw: the file is refused, never the batch
        said = (str(error).splitlines() or [""])[0][:160]
        raise NotebookError(name, f"could not be read as a notebook ({type(error).__name__}: {said}); "
                                  f"{_REDOWNLOAD}") from None


# --------------------------------------------------------------------------- bytes -> JSON


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """Line and column (1-based, in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _too_deep(data: bytes, limit: int) -> int | None:
    """The byte offset where the JSON nesting first goes past ``limit``, or None. Linear, no recursion."""
    skeleton = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    if len(skeleton) <= limit:
        return None
    if max(itertools.accumulate(array("b", skeleton.translate(_STEP)))) <= limit:
        return None
    depth = 0
    for token in _TOKEN.finditer(data):
        bracket = token.group()
        if bracket.startswith(b'"'):
            continue
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > limit:
            return token.start()
    return 0


def _parse_json(data: bytes, name: str, repairs: _Repairs) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position(data, error.start)
        raise NotebookError(name, f"is not a notebook: not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}, "
                                  f"column {column}); {_REDOWNLOAD}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
        repairs.note("a byte-order mark before the JSON (ignored)")
    deep = _too_deep(data, MAX_DEPTH)
    if deep is not None:
        line, column = _position(data, deep)
        raise NotebookError(name, f"is not a notebook: its JSON is nested more than {MAX_DEPTH} levels deep (at line "
                                  f"{line}, column {column}); {_REDOWNLOAD}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(name, f"is not a notebook: not valid JSON at line {error.lineno}, column {error.colno} "
                                  f"({error.msg}); {_REDOWNLOAD}") from None


# --------------------------------------------------------------------------- JSON -> a notebook that runs


def _read(data: bytes, name: str) -> LenientNotebook:
    repairs = _Repairs()
    raw = _parse_json(data, name, repairs)
    if not isinstance(raw, dict) or ("cells" not in raw and "worksheets" not in raw):
        raise NotebookError(name, "is JSON but not a Jupyter notebook (no 'cells'); hand in the .ipynb file itself")
    major = raw.get("nbformat")
    if major is None:
        major = 3 if "cells" not in raw else 4
        repairs.note(f"no 'nbformat' version: read as format {major}")
    if isinstance(major, bool) or major not in (3, 4):
        shown = str(major)[:20] if isinstance(major, int | float | str) else type(major).__name__
        raise NotebookError(name, f"uses notebook format {shown}; this grader reads formats 3 and 4 (save it from a "
                                  "current Jupyter)")
    with _quiet():
        nb = _upgrade_v3(raw, name, repairs) if major == 3 else raw
        nb["nbformat"] = 4
        minor = _repair_notebook(nb, name, repairs)
        if _mark_cell_ids(nb, minor, repairs) or not _valid(nb, minor):
            _normalize(nb, minor, repairs)
            _repair_against_schema(nb, minor, name, repairs)
        notebook = nbformat.v4.to_notebook_json(nb)
    return LenientNotebook(notebook, repairs.lines())


@contextmanager
def _quiet() -> Iterator[None]:
    """nbformat warns (missing ids) and logs (invalid v3) about what is repaired here: not for the console."""
    from traitlets.log import get_logger

    found = get_logger()
    logger = found.logger if isinstance(found, logging.LoggerAdapter) else found
    with _QUIET:
        disabled = logger.disabled
        logger.disabled = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            logger.disabled = disabled


def _upgrade_v3(raw: dict[str, Any], name: str, repairs: _Repairs) -> dict[str, Any]:
    """Format 3 -> 4 with nbformat's converter, after repairing what would make it fail."""
    worksheets = raw.get("worksheets")
    if not isinstance(worksheets, list) or not all(isinstance(w, dict) for w in worksheets):
        raise NotebookError(name, "is not a runnable notebook: format 3, field 'worksheets' is not a list of objects; "
                                  f"{_REDOWNLOAD}")
    if not isinstance(raw.get("metadata"), dict):
        repairs.note(f"the notebook's metadata {_not_an_object(raw.get('metadata'))} (replaced by {{}})")
        raw["metadata"] = {}
    index = 0
    for sheet, worksheet in enumerate(worksheets):
        cells = worksheet.setdefault("cells", [])
        if not isinstance(cells, list):
            raise NotebookError(name, f"is not a runnable notebook: worksheet {sheet}, field 'cells' is not a list; "
                                      f"{_REDOWNLOAD}")
        for cell in cells:
            if not isinstance(cell, dict):
                raise NotebookError(name, f"is not a runnable notebook: cell {index} is not a JSON object; "
                                          f"{_REDOWNLOAD}")
            if "cell_type" not in cell:
                code = any(key in cell for key in ("input", "outputs", "prompt_number"))
                cell["cell_type"] = "code" if code else "markdown"
                repairs.cell(index, "no cell_type; taken as code because it has input/outputs" if code
                             else "no cell_type; taken as markdown because it has no input")
            if cell["cell_type"] == "code":
                outputs = cell.get("outputs")
                if not isinstance(outputs, list) or not all(
                        isinstance(output, dict) and isinstance(output.get("output_type"), str) for output in outputs):
                    if outputs is not None:
                        repairs.cell(index, "invalid outputs (dropped; the grader runs the cell again)")
                    cell["outputs"] = []
                if cell.get("input") is None:
                    cell["input"] = ""
            if not isinstance(cell.get("metadata", {}), dict):
                repairs.cell(index, f"metadata {_not_an_object(cell['metadata'])} (replaced by {{}})")
                cell["metadata"] = {}
            index += 1
    minor = raw.get("nbformat_minor", 0)
    raw["nbformat"], raw["nbformat_minor"] = 3, minor if isinstance(minor, int) and not isinstance(minor, bool) else 0
    try:
        notebook = nbformat.v3.to_notebook_json(raw)
        upgraded: dict[str, Any] = nbformat.v4.upgrade(notebook, from_version=3, from_minor=raw["nbformat_minor"])
    except Exception as error:
        said = (str(error).splitlines() or [""])[0][:160]
        raise NotebookError(name, f"is a format 3 notebook that nbformat cannot convert to format 4 "
                                  f"({type(error).__name__}: {said}); open it in Jupyter and save it again") from None
    repairs.note("notebook format 3, converted to format 4 by nbformat as Jupyter does")
    return upgraded


def _guess_cell_type(cell: dict[str, Any]) -> tuple[str, str]:
    """A cell without ``cell_type``: what it was, and why we think so."""
    if "outputs" in cell or "execution_count" in cell:
        return "code", "because it has outputs/execution_count"
    if "attachments" in cell:
        return "markdown", "because it has attachments"
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) and all(isinstance(s, str) for s in source) else source
    if not isinstance(text, str) or not text.strip():
        return "markdown", "because it is empty"
    if len(text) > MAX_GUESS_CHARS:
        return "markdown", "because it is too long to tell (text is never run)"
    python = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("!", "%")))
    try:
        ast.parse(python)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "markdown", "because its source is not Python"
    if not any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines()):
        return "markdown", "because it holds only '#' lines (headings or comments)"
    return "code", "because its source is Python"


def _not_an_object(value: Any) -> str:
    if value is None:
        return "missing"
    kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"was {kinds.get(type(value), type(value).__name__)}, not an object"


def _repair_notebook(nb: dict[str, Any], name: str, repairs: _Repairs) -> int:
    """Structural repairs nbformat has no function for; returns the minor version to validate against."""
    if not isinstance(nb.get("metadata"), dict):
        repairs.note(f"the notebook's metadata {_not_an_object(nb.get('metadata'))} (replaced by {{}})")
        nb["metadata"] = {}
    cells = nb.get("cells")
    if not isinstance(cells, list):
        raise NotebookError(name, f"is not a runnable notebook: field 'cells' is not a list; {_REDOWNLOAD}")
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise NotebookError(name, f"is not a runnable notebook: cell {index} is not a JSON object; {_REDOWNLOAD}")
        _repair_cell(index, cell, repairs)
    minor = nb.get("nbformat_minor")
    has_ids = any("id" in cell for cell in cells)
    if isinstance(minor, bool) or not isinstance(minor, int) or minor < 0:
        minor = 5 if has_ids else 4
        repairs.note(f"no valid 'nbformat_minor': read as format 4.{minor}")
    elif minor < 5 and has_ids:
        minor = 5
        repairs.note("cell ids in a format 4.4 (or older) notebook: read as format 4.5")
    nb["nbformat_minor"] = minor
    return minor


def _repair_cell(index: int, cell: dict[str, Any], repairs: _Repairs) -> None:
    kind = cell.get("cell_type")
    typed = "cell_type" in cell
    if kind not in _CELL_TYPES:
        if not typed:
            kind, why = _guess_cell_type(cell)
            repairs.cell(index, f"no cell_type; taken as {kind} {why}")
        elif isinstance(kind, str) and kind.strip().lower() in _CELL_TYPES:
            repairs.cell(index, f"cell_type {kind!r} read as {kind.strip().lower()!r}")
            kind = kind.strip().lower()
        elif kind in ("heading", "html"):
            repairs.cell(index, f"a format 3 {kind} cell, read as markdown")
            kind = "markdown"
        else:
            repairs.cell(index, f"unknown cell_type {str(kind)[:30]!r}: kept as raw text, not run")
            kind = "raw"
        cell["cell_type"] = kind
    if cell.get("source") is None:
        cell["source"] = ""
        repairs.cell(index, "no source (taken as empty)")
    if not isinstance(cell.get("metadata"), dict):
        repairs.cell(index, f"metadata {_not_an_object(cell.get('metadata'))} (replaced by {{}})")
        cell["metadata"] = {}
    if kind == "code":
        lacking = [key for key in ("outputs", "execution_count") if key not in cell]
        if lacking and typed:
            repairs.cell(index, f"a code cell lacked {'/'.join(lacking)} (added empty)")
        if not isinstance(cell.setdefault("outputs", []), list):
            cell["outputs"] = []
            repairs.cell(index, "outputs that are not a list (dropped)")
        count = cell.setdefault("execution_count", None)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            cell["execution_count"] = None
            repairs.cell(index, "an invalid execution_count (dropped)")
    else:
        carried = [key for key in ("outputs", "execution_count") if key in cell]
        if carried:
            repairs.cell(index, f"a {kind} cell carried {'/'.join(carried)} (dropped)")
        if "attachments" in cell and not isinstance(cell["attachments"], dict):
            repairs.cell(index, f"attachments {_not_an_object(cell['attachments'])} (dropped)")
            del cell["attachments"]
    extra = [key for key in cell if key not in _CELL_FIELDS[kind]]
    for key in extra:
        del cell[key]
    extra = sorted(str(key) for key in extra if key not in ("outputs", "execution_count"))
    if extra:
        repairs.cell(index, f"field(s) a {kind} cell does not have: {', '.join(extra)[:80]} (dropped)")


def _mark_cell_ids(nb: dict[str, Any], minor: int, repairs: _Repairs) -> bool:
    """Note the cell ids nbformat's normalisation will add or replace (an invalid one is removed for it)."""
    if minor < 5:
        return False
    seen: set[str] = set()
    marked = False
    for index, cell in enumerate(nb["cells"]):
        if "id" not in cell:
            repairs.cell(index, "no cell id (nbformat added one)")
        elif not isinstance(cell["id"], str) or not _CELL_ID.match(cell["id"]):
            repairs.cell(index, "an invalid cell id (nbformat replaced it)")
            del cell["id"]
        elif cell["id"] in seen:
            repairs.cell(index, f"cell id {cell['id'][:40]!r} used twice (nbformat replaced it)")
        else:
            seen.add(cell["id"])
            continue
        marked = True
    return marked


def _valid(nb: dict[str, Any], minor: int) -> bool:
    validator = get_validator(4, minor)
    if validator is None:
        return False
    try:
        validator.validate(nb)
    except Exception:
        return False
    return True


def _normalize(nb: dict[str, Any], minor: int, repairs: _Repairs) -> None:
    """nbformat's normalisation: missing and duplicate cell ids, invalid metadata keys; notes what it dropped."""
    before = (set(nb["metadata"]), [set(cell["metadata"]) for cell in nb["cells"]])
    try:
        _, normalized = normalize(nb, version=4, version_minor=minor, strip_invalid_metadata=True)
    except Exception:  # what nbformat cannot normalise is repaired (or refused) against the schema below
        return
    nb.clear()
    nb.update(normalized)
    dropped = sorted(str(key) for key in before[0] - set(nb["metadata"]))
    if dropped:
        repairs.note(f"invalid notebook metadata {', '.join(dropped)[:80]} (nbformat dropped it)")
    for index, (keys, cell) in enumerate(zip(before[1], nb["cells"], strict=True)):
        lost = sorted(str(key) for key in keys - set(cell["metadata"]))
        if lost:
            repairs.cell(index, f"invalid {cell['cell_type']} cell metadata {', '.join(lost)[:80]} (nbformat dropped "
                                "it)")


def _schema_errors(nb: dict[str, Any], minor: int) -> list[tuple[tuple[Any, ...], Any]]:
    """Schema errors as (path in the notebook, error); a cell's errors against its own cell type."""
    if _valid(nb, minor):
        return []
    validator = get_validator(4, minor, name="jsonschema")
    if validator is None:
        return [((), f"no schema for notebook format 4.{minor}")]
    found: list[tuple[tuple[Any, ...], Any]] = []
    for error in itertools.islice(validator.iter_errors(nb), 1000):
        path = tuple(error.absolute_path)
        if len(path) == 2 and path[0] == "cells" and error.validator == "oneOf":
            kind = nb["cells"][path[1]].get("cell_type")
            refs = [option.get("$ref") for option in error.schema.get("oneOf", [])]
            wanted = f"#/definitions/{kind}_cell"
            own = [sub for sub in error.context or [] if wanted in refs and sub.schema_path
                   and sub.schema_path[0] == refs.index(wanted)]
            if own:
                found += [(tuple(sub.absolute_path), sub) for sub in own]
                continue
        found.append((path, error))
    return found


def _place(path: tuple[Any, ...]) -> str:
    if len(path) >= 2 and path[0] == "cells":
        where = f"cell {path[1]}"
        if len(path) >= 3:
            where += f", field '{path[2]}'" + "".join(f"[{part!r}]" for part in path[3:6])
        return where
    if path:
        return f"field '{path[0]}'" + "".join(f"[{part!r}]" for part in path[1:4])
    return "the notebook"


def _fix(nb: dict[str, Any], path: tuple[Any, ...], error: Any, repairs: _Repairs) -> bool:
    """Repair one schema error that does not affect running the code; False when it does."""
    if path[:1] == ("metadata",):
        if len(path) == 1:
            nb["metadata"] = {}
        else:
            nb["metadata"].pop(path[1], None)
        repairs.note(f"invalid notebook metadata {path[1]!r} (dropped)" if len(path) > 1
                     else "the notebook's metadata was invalid (replaced by {})")
        return True
    if not path and error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(key) for key in nb if key not in allowed)
        for key in extra:
            del nb[key]
        repairs.note(f"top-level field(s) a notebook does not have: {', '.join(extra)[:80]} (dropped)")
        return bool(extra)
    if len(path) < 3 or path[0] != "cells":
        return False
    index, key = path[1], path[2]
    cell = nb["cells"][index]
    if key == "metadata":
        if len(path) == 3:
            cell["metadata"] = {}
        else:
            cell["metadata"].pop(path[3], None)
        repairs.cell(index, f"invalid metadata {path[3]!r} (dropped)" if len(path) > 3
                     else "invalid metadata (replaced by {})")
    elif key == "outputs" and cell["cell_type"] == "code":
        cell["outputs"] = []
        repairs.cell(index, "invalid outputs (dropped; the grader runs the cell again)")
    elif key == "execution_count" and cell["cell_type"] == "code":
        cell["execution_count"] = None
        repairs.cell(index, "an invalid execution_count (dropped)")
    elif key == "attachments":
        cell.pop("attachments", None)
        repairs.cell(index, "invalid attachments (dropped)")
    elif key == "id":
        cell["id"] = generate_corpus_id()
        repairs.cell(index, "an invalid cell id (replaced)")
    else:
        return False
    return True


def _refuse(name: str, path: tuple[Any, ...], error: Any) -> NotebookError:
    message = (str(getattr(error, "message", error)).splitlines() or [""])[0][:160]
    return NotebookError(name, f"is not a runnable notebook: {_place(path)}: {message}; {_REDOWNLOAD}")


def _repair_against_schema(nb: dict[str, Any], minor: int, name: str, repairs: _Repairs) -> None:
    """Validate; repair what does not affect running the code; refuse the rest with the error and its place."""
    for _ in range(10):
        errors = _schema_errors(nb, minor)
        if not errors:
            return
        for path, error in errors:  # repairs never move a cell, so each path still points where it did
            try:
                fixed = _fix(nb, path, error, repairs)
            except (KeyError, IndexError, TypeError, AttributeError):
                fixed = False
            if not fixed:
                raise _refuse(name, path, error)
    errors = _schema_errors(nb, minor)
    if errors:
        raise _refuse(name, *errors[0])
