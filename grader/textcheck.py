"""Find numbers a student wrote (8,490 / 8490 / 8 490 / **8,490**) in their markdown, code or outputs."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from grader.evidence import Evidence
from grader.rubric import Scope, TextCheck

GRADER_PSEUDO_CELL = "# [grader]"


@functools.cache
def number_pattern(number: int) -> re.Pattern[str]:
    """``number`` with optional thousands separators (comma, space, thin space, apostrophe)."""
    digits = str(number)
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    body = r"[,\u2009\u202f' ]?".join(groups)
    return re.compile(rf"(?<![\d])(?<!\d[.,]){body}(?![\d])(?![.,]\d)")


@dataclass(frozen=True)
class Passage:
    where: str  # "problem3_cnn.ipynb, cell 42 (markdown)"
    text: str


def passages(evidence: Evidence, scope: tuple[Scope, ...]) -> list[Passage]:
    found = []
    for file in evidence.files:
        for cell in file.cells:
            if cell.cell_type == "markdown" and "markdown" in scope:
                found.append(Passage(f"{file.path}, cell {cell.index} (markdown)", cell.source))
            if cell.cell_type == "code" and "code" in scope and not cell.source.startswith(GRADER_PSEUDO_CELL):
                label = "code" if file.kind == "notebook" else "module source"
                where = f"{file.path}, cell {cell.index} ({label})" if file.kind == "notebook" else f"{file.path}"
                found.append(Passage(where, cell.source))
            if cell.cell_type == "code" and "outputs" in scope and cell.output_text:
                found.append(Passage(f"{file.path}, cell {cell.index} (output)", cell.output_text))
    return found


@dataclass(frozen=True)
class TextResult:
    found: bool
    detail: str
    where: tuple[str, ...]


_LATEX_SEPARATOR = re.compile(r"\{,\}|\\[,;!: ]")


def _plain(text: str) -> str:
    """LaTeX thousands separators (``100{,}352``, ``100\\,352``) as plain text."""
    return _LATEX_SEPARATOR.sub(lambda m: "," if m.group(0) == "{,}" else "", text)


def _locate(number: int, texts: list[Passage]) -> list[str]:
    pattern = number_pattern(number)
    return [p.where for p in texts if pattern.search(_plain(p.text))]


def evaluate(check: TextCheck, evidence: Evidence) -> TextResult:
    texts = passages(evidence, check.scope)
    sets = [check.numbers] if check.numbers else [s.numbers for s in check.any_of]
    best_missing: list[int] | None = None
    for numbers in sets:
        located = {n: _locate(n, texts) for n in numbers}
        missing = [n for n, where in located.items() if not where]
        if not missing:
            where = tuple(sorted({w for ws in located.values() for w in ws}))
            shown = ", ".join(f"{n:,}" for n in numbers)
            return TextResult(True, f"found {shown} in {'; '.join(where[:3])}", where)
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    assert best_missing is not None
    shown = ", ".join(f"{n:,}" for n in best_missing)
    return TextResult(False, f"{shown} not found in the {' or '.join(check.scope)}", ())
