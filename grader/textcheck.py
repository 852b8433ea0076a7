"""Find the numbers a student wrote (parameter counts, per-layer calculations) in their notebooks.

A rubric text check (``text_checks`` in the rubric) lists numbers that must appear in the
student's text. This module reads the text the way a TA would and says where each number was
found, or, when it was not, what was looked for, where, and which places come close.

Where (the check's ``scope``)
    ``markdown``: markdown cells. ``code``: code cells, comments included (a module's source).
    ``outputs``: what code cells printed, except "summaries". ``summaries``: the output of a cell
    that has torch count the parameters: a cell that calls ``summary(...)`` (torchsummary,
    torchinfo) or ``numel()``, or a function of the same file that does, or whose output is a
    summary table (``Total params: ...``). A count torch printed is not a count the student wrote:
    the handout's template prints ``summary(model)`` in both notebooks, so reading summaries would
    find 8,490 in every notebook, answered or not. The grader's own training cells of a ``.py``
    module are never read.

What counts as the number N (say 101,770)
    * the digits with no separator or the same separator between every group of three:
      ``101770``, ``101,770``, ``101 770`` (space, no-break or thin space), ``101'770``, and in
      markdown and code (not in printed output, where Python writes decimals like ``8.490``)
      ``101.770``. LaTeX separators are read as separators: ``101{,}770``, ``101\\,770``,
      ``101~770``; ``\\num{101770}``, ``$101,770$``, ``**101,770**``, ``*101,770*``, ``_101,770_``,
      a table cell ``| 101,770 |`` and a code comment ``# 101770`` are all the plain number.
      The number must stand alone: not inside a longer number (``1,101,770``, ``0.101770``) nor
      glued to letters (``a101770``, ``101770params``); such a place is named in the reason of a
      failed check, so that a TA can override in one step.
    * a rounded or scaled form with a suffix K/k/thousand or M/million, or in scientific notation
      (``1.0177e5``, ``1.0177 \\times 10^{5}``, ``1.0177·10⁵``): it counts when it is N exactly, or
      when it has at least 3 significant digits and equals N rounded *or truncated* to its last
      digit: ``~101K``, ``102K``, ``1.02e5`` and ``0.102M`` count for 101,770; ``8.49k`` counts for
      8,490 but ``8.5K`` (2 digits) does not. A bare number is never rounded: ``100`` or
      ``100,000`` do not count for 100,352.
    * an arithmetic expression that evaluates to N: ``784*128 + 128``, ``5 × 5 × 10 × 20 + 20``,
      ``(5 \\times 5 \\times 1 + 1) \\cdot 10``, ``5x5x1x10`` (``x`` between numbers),
      ``5^2 * 10``, ``5**2*10``. Student text is never run: expressions are tokenized here
      (integers, ``+ - * ^ **``, parentheses; ``× · ⋅ \\times \\cdot x`` mean ``*``) and evaluated
      by a small parser with bounds (at most 120 tokens, exponents up to 64, values up to 10^18).
      An expression ends at anything else (``=``, a word, a newline), so ``5*5*1*10 = 250`` gives
      250 and 250; ``250 (+10)`` is 260. A chain of sums also gives each run of consecutive terms
      (from a term added, not subtracted), so ``5*5*1*10 + 10 + 5*5*10*20 + 20`` gives the
      per-layer 260 and 5,020 as well as the total. An exponent of something that is not a number
      is a shape, not a count: ``\\mathbb{R}^{128 \\times 784}`` is not read as 100,352 (but
      ``W1: 128 × 784`` is).

Whose numbers
    The rubric's numbers (the handout's network) always count. With ``or_student_total: cnn`` a
    check also accepts the trainable parameter count of the student's own model matched for the
    rubric model ``cnn``; with ``or_student_layers: cnn`` it also accepts the per-layer counts of
    that model (every layer with parameters, each as weights plus biases, or each as weights
    alone). The caller passes the matched models (``grader.score`` matches them); the reason says
    which one was found.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from grader.evidence import Evidence, FileEvidence, ModelEvidence
from grader.rubric import Scope, TextCheck

GRADER_PSEUDO_CELL = "# [grader]"
SCOPE_WORDS: dict[str, str] = {"markdown": "markdown", "code": "code", "outputs": "printed outputs",
                               "summaries": "parameter summaries printed by torch"}
ALL_SCOPES: tuple[Scope, ...] = ("markdown", "code", "outputs", "summaries")
MAX_PLACES = 3  # places named per kind in a reason
MIN_SIGNIFICANT = 3  # digits a rounded form (101K, 1.02e5) needs

# --------------------------------------------------------------------------- where


@dataclass(frozen=True)
class Passage:
    where: str  # "problem3_cnn.ipynb, cell 42 (markdown)": the label the report links to a cell
    text: str
    scope: Scope = "markdown"


_TOOL_CALL = re.compile(r"\bnumel\s*\(|\bsummary\s*\(")
_SUMMARY_TABLE = re.compile(r"^\s*(?:Total|Trainable) params\s*:|Layer \(type", re.MULTILINE)
_DEF = re.compile(r"^([ \t]*)def\s+(\w+)\s*\(", re.MULTILINE)
_LAMBDA = re.compile(r"\b(\w+)\s*=\s*lambda\b[^\n]*\bnumel\s*\(")


def _counting_functions(file: FileEvidence) -> set[str]:
    """Names of the functions of ``file`` that have torch count parameters (``count_parameters``)."""
    names = set()
    for cell in file.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        for match in _DEF.finditer(source):
            indent = len(match.group(1))
            end = len(source)
            for line in re.finditer(r"^([ \t]*)\S", source[match.end():], re.MULTILINE):
                if len(line.group(1)) <= indent and line.start() > 0:
                    end = match.end() + line.start()
                    break
            if _TOOL_CALL.search(source[match.end():end]):
                names.add(match.group(2))
        names.update(m.group(1) for m in _LAMBDA.finditer(source))
    return names


def _is_summary(source: str, output: str, counting: set[str]) -> bool:
    if _TOOL_CALL.search(source) or _SUMMARY_TABLE.search(output):
        return True
    return bool(counting) and re.search(rf"\b(?:{'|'.join(map(re.escape, sorted(counting)))})\s*\(", source) is not None


def passages(evidence: Evidence, scope: tuple[Scope, ...]) -> list[Passage]:
    """The texts a check with this scope reads, in file and cell order."""
    found = []
    for file in evidence.files:
        counting = _counting_functions(file) if {"outputs", "summaries"} & set(scope) else set()
        for cell in file.cells:
            if cell.cell_type == "markdown" and "markdown" in scope:
                found.append(Passage(f"{file.path}, cell {cell.index} (markdown)", cell.source, "markdown"))
            if cell.cell_type != "code" or cell.source.startswith(GRADER_PSEUDO_CELL):
                continue
            if "code" in scope:
                where = f"{file.path}, cell {cell.index} (code)" if file.kind == "notebook" else file.path
                found.append(Passage(where, cell.source, "code"))
            if cell.output_text:
                kind: Scope = "summaries" if _is_summary(cell.source, cell.output_text, counting) else "outputs"
                if kind in scope:
                    found.append(Passage(f"{file.path}, cell {cell.index} (output)", cell.output_text, kind))
    return found


# --------------------------------------------------------------------------- reading numbers

_SEPARATORS = ",'\u2009\u202f\u00a0 "
_GROUP_SEPARATORS = ",'\u2009\u202f"  # separators that cannot also separate two numbers in a list

_NORMALIZE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"&(?:nbsp|#160);"), "\u00a0"),
    (re.compile(r"&(?:thinsp|#8201|#8239);"), "\u2009"),
    (re.compile(r"&times;"), "×"),
    (re.compile(r"&(?:middot|sdot);"), "·"),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"(?<=\d)(?:\\[,;:! ]|~)(?=\d)"), ""),  # 101\,770, 101~770
    (re.compile(r"\\[,;:! ]"), " "),
    (re.compile(r"\\(?:times|cdot|ast)(?![A-Za-z])"), "*"),
    (re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr)(?![A-Za-z])"), ""),
    (re.compile(r"\^\{([^{}]{1,12})\}"), r"^(\1)"),
    (re.compile("[×✕⨉·⋅∙∗]"), "*"),
    (re.compile("\u2212"), "-"),
    (re.compile(r"(?<=[\d)])[ \t]*[xX][ \t]*(?=[\d(])"), "*"),  # 5x5x1x10, 128 x 784
    # a number wrapped in markdown emphasis: **8,490**, *8490*, __8490__, _8490_
    (re.compile(r"(?<![\w*])(\*\*|\*|__|_)(\d(?:[\d,.'\u2009\u202f\u00a0 ]*\d)?)\1(?![\w*])"), r"\2"),
]


def normalize(text: str) -> str:
    """The text with LaTeX, HTML and markdown spellings of numbers and operators made plain."""
    for pattern, replacement in _NORMALIZE:
        text = pattern.sub(replacement, text)
    return text


def _groups(number: int) -> list[str]:
    digits = str(number)
    head = len(digits) % 3 or 3
    return [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]


@functools.cache
def number_pattern(number: int, dots: bool = True) -> re.Pattern[str]:
    """``number`` as digits, with no separator or the same one between all groups of three."""
    digits = str(number)
    groups = _groups(number)
    alternatives = [digits]
    if len(groups) > 1:
        separator = "[" + re.escape(_SEPARATORS + ("." if dots else "")) + "]"
        alternatives.append(groups[0] + f"(?P<sep>{separator})" + "(?P=sep)".join(groups[1:]))
    body = "|".join(alternatives)
    return re.compile(rf"(?<![^\W_])(?<!\d\.)(?:{body})(?![^\W_])(?!\.\d)")


def _group_continuation(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is the middle of a longer grouped number (the 770 of 101,770)."""
    before = text[max(0, start - 2) : start]
    if len(before) == 2 and before[0].isdigit() and before[1] in _GROUP_SEPARATORS:
        head = re.match(r"\d+", text[start:end])
        if head and len(head.group(0)) == 3:
            return True
    after = text[end : end + 5]
    return len(after) >= 4 and after[0] in _GROUP_SEPARATORS and after[1:4].isdigit() and not after[4:5].isdigit()


def _literal(number: int, text: str, dots: bool) -> str | None:
    for match in number_pattern(number, dots).finditer(text):
        if not _group_continuation(text, match.start(), match.end()):
            return match.group(0)
    return None


_SCALED = re.compile(
    r"(?<![^\W_])(?<!\d[.,])(?P<m>\d+(?:\.\d+)?)[ \u00a0]?(?P<suffix>[kK]|thousand|[mM]|million)(?![^\W_])")
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SCIENTIFIC = re.compile(
    r"(?<![^\W_])(?<!\d[.,])(?P<m>\d+(?:\.\d+)?)\s*(?:[eE](?P<e1>[+-]?\d{1,2})"
    r"|\*\s*10\s*(?:\^|\*\*)\s*\(?\s*(?P<e2>[+-]?\d{1,2})\s*\)?|\*\s*10(?P<e3>[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]{1,2}))(?![^\W_])")


@dataclass(frozen=True)
class Scaled:
    """A rounded or scaled number as written: ``8.49K`` is value 8490, 3 significant digits, last digit 10s."""

    value: Decimal
    significant: int
    quantum: int  # exponent of the last written digit's place
    text: str


def _scaled(mantissa: str, exponent: int, text: str) -> Scaled:
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    significant = len(mantissa.replace(".", "").lstrip("0")) or 1
    return Scaled(Decimal(mantissa).scaleb(exponent), significant, exponent - decimals, text)


def _approximates(written: Scaled, number: int) -> bool:
    if written.value == number:
        return True
    if written.significant < MIN_SIGNIFICANT:
        return False
    quantum = Decimal(1).scaleb(written.quantum)
    exact = Decimal(number)
    try:
        return written.value in (exact.quantize(quantum, ROUND_HALF_UP), exact.quantize(quantum, ROUND_DOWN))
    except InvalidOperation:  # more digits than a parameter count has
        return False


# -- arithmetic expressions ----------------------------------------------------

MAX_TOKENS = 120
MAX_VALUE = 10**18
MAX_EXPONENT = 64

_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?P<sep>[,'\u2009\u202f])\d{3}(?!\d)(?:(?P=sep)\d{3}(?!\d))*|\d+)"
    r"|(?P<dec>\.\d)"
    r"|(?P<pow>\*\*|\^)"
    r"|(?P<op>[-+*])"
    r"|(?P<open>\()"
    r"|(?P<close>\))"
    r"|(?P<space>[ \t\u00a0\u2009\u202f]+)"
    r"|(?P<word>[^\W\d_]+)"
    r"|(?P<other>[^\w \t\u00a0\u2009\u202f()*^+\-.]+|.)",
    re.DOTALL,
)


@dataclass
class _Token:
    kind: str  # num, pow, op, open, close
    text: str
    start: int
    end: int
    value: int = 0


def _runs(text: str) -> Iterator[list[_Token]]:
    """Maximal stretches of numbers, operators and parentheses; anything else ends a stretch."""
    run: list[_Token] = []
    previous = ""
    matches = _TOKEN.finditer(text)
    match = next(matches, None)
    while match is not None:
        following = next(matches, None)  # read one ahead, never the whole text at once
        kind = match.lastgroup or "other"
        if kind == "num":
            glued = previous == "word" or (following is not None and following.lastgroup in ("word", "dec"))
            if previous == "dec" or glued or (run and run[-1].kind == "num"):
                kind = "other"  # 2 of Conv2d, 0177 of 1.0177, digits of 1e5
        previous = match.lastgroup or "other"
        if kind in ("num", "pow", "op", "open", "close"):
            token = _Token(kind, match.group(0), match.start(), match.end())
            if kind == "num":
                token.value = int(re.sub(r"\D", "", token.text))
            run.append(token)
        elif kind != "space":
            if run:
                yield run
            run = []
        match = following
    if run:
        yield run


def _segments(run: list[_Token]) -> Iterator[list[_Token]]:
    """A run split where two operands touch (``250 (+10)`` is 250 and +10), trimmed of dangling operators."""
    segment: list[_Token] = []
    for i, token in enumerate(run):
        if segment and segment[-1].kind in ("num", "close") and token.kind in ("num", "open") and not (
                token.kind == "open" and i + 1 < len(run) and run[i + 1].text in ("+", "-")):  # 250 (+10) adds
            yield from _trimmed(segment)
            segment = []
        segment.append(token)
    yield from _trimmed(segment)


def _trimmed(segment: list[_Token]) -> Iterator[list[_Token]]:
    if segment and segment[0].text == "^":
        return  # an exponent of something else: the shape in R^{128 x 784} is not a count
    while segment and (segment[0].kind in ("pow", "close") or (segment[0].kind == "op" and segment[0].text == "*")):
        segment = segment[1:]
    while segment and segment[-1].kind in ("pow", "op", "open"):
        segment = segment[:-1]
    if segment and len(segment) <= MAX_TOKENS:
        yield segment


class _Invalid(Exception):
    pass


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary ('*' unary)*; unary := ('+'|'-') unary | power;
    power := atom (('^'|'**') unary)?; atom := number | '(' expr ')'."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _Invalid
        self.at += 1
        return token

    def chain(self, nested: bool = False) -> list[tuple[int, int, int, int]]:
        """An additive chain: (sign, value, first token, last token) of each term; ends at ')' when nested."""
        terms = []
        sign = 1
        while True:
            first = self.at
            value = self.term()
            terms.append((sign, value, first, self.at - 1))
            token = self.peek()
            if token is None or (nested and token.kind == "close"):
                return terms
            if token.kind == "open":  # 250 (+10): the bracket holds a signed term
                sign = 1
                continue
            if token.kind != "op" or token.text == "*":
                raise _Invalid
            self.take()
            sign = 1 if token.text == "+" else -1

    def term(self) -> int:
        value = self.unary()
        while (token := self.peek()) is not None and token.kind == "op" and token.text == "*":
            self.take()
            value = _bounded(value * self.unary())
        return value

    def unary(self) -> int:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in ("+", "-"):
            self.take()
            return -self.unary() if token.text == "-" else self.unary()
        return self.power()

    def power(self) -> int:
        base = self.atom()
        token = self.peek()
        if token is not None and token.kind == "pow":
            self.take()
            exponent = self.unary()
            if not 0 <= exponent <= MAX_EXPONENT or (abs(base) > 1 and exponent * len(str(abs(base))) > 19):
                raise _Invalid
            return _bounded(base**exponent)
        return base

    def atom(self) -> int:
        token = self.take()
        if token.kind == "num":
            return token.value
        if token.kind == "open":
            value = sum(sign * term for sign, term, _, _ in self.chain(nested=True))
            if self.take().kind != "close":
                raise _Invalid
            return value
        raise _Invalid


def _bounded(value: int) -> int:
    if abs(value) > MAX_VALUE:
        raise _Invalid
    return value


_OPERATION = re.compile(r"[\d)][ \t]*(?:[-+*^]|\*\*)[ \t]*[\d(]")  # a line without one holds no expression


def _expression_values(text: str) -> dict[int, str]:
    """Value -> the expression written for it, for every expression in ``text`` with an operator."""
    values: dict[int, str] = {}
    for line in text.splitlines():
        if _OPERATION.search(line):
            _line_expressions(line, values)
    return values


def _line_expressions(text: str, values: dict[int, str]) -> None:
    for run in _runs(text):
        for segment in _segments(run):
            if len(segment) < 3:
                continue  # a bare number (or a signed one) is read as a number, not as an expression
            parser = _Parser(segment)
            try:
                terms = parser.chain()
            except (_Invalid, RecursionError):
                continue
            # every stretch of consecutive terms that starts with a '+' term: the per-layer parts of a total
            for i, (sign, _, first, _) in enumerate(terms):
                if sign < 0:
                    continue
                total = 0
                for later_sign, value, _, last in terms[i:]:
                    total += later_sign * value
                    if total > 0 and last > first:  # not a bare number
                        written = text[segment[first].start : segment[last].end]
                        values.setdefault(total, " ".join(written.split()))


@dataclass(frozen=True)
class Analysis:
    text: str  # normalized
    scaled: tuple[Scaled, ...]
    expressions: dict[int, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=256)
def analyse(text: str) -> Analysis:
    plain = normalize(text)
    scaled = [
        _scaled(m.group("m"), {"k": 3, "thousand": 3, "m": 6, "million": 6}[m.group("suffix").lower()], m.group(0))
        for m in _SCALED.finditer(plain)
    ]
    for m in _SCIENTIFIC.finditer(plain):
        exponent = m.group("e1") or m.group("e2") or (m.group("e3") or "").translate(_SUPERSCRIPT)
        scaled.append(_scaled(m.group("m"), int(exponent), m.group(0)))
    return Analysis(plain, tuple(scaled), _expression_values(plain))


def find(number: int, text: str, *, dots: bool = True) -> str | None:
    """How ``number`` is written in ``text`` ("8,490", "8.49K", "250 + 10 + 5,000 + ..."), or None."""
    analysis = analyse(text)
    literal = _literal(number, analysis.text, dots)
    if literal is not None:
        return literal
    for written in analysis.scaled:
        if _approximates(written, number):
            return written.text
    return analysis.expressions.get(number)


def _find_in(number: int, passage: Passage) -> str | None:
    return find(number, passage.text, dots=passage.scope in ("markdown", "code"))


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class TextResult:
    found: bool
    detail: str  # one line: what was found where, or which numbers are missing from which scopes
    where: tuple[str, ...]  # the places found (labels of cells)
    looked_for: str = ""  # when not found: the forms accepted, the cells read, and places a TA should look at


@dataclass(frozen=True)
class _Alternative:
    numbers: tuple[int, ...]
    owner: str = ""  # "" for the rubric's numbers; "total" or "layers" for the student's own model
    model: ModelEvidence | None = None
    weights_only: bool = False


def _located(numbers: tuple[int, ...], texts: list[Passage]) -> dict[int, list[tuple[str, str]]]:
    located: dict[int, list[tuple[str, str]]] = {}
    for number in numbers:
        places = []
        for passage in texts:
            written = _find_in(number, passage)
            if written is not None:
                places.append((passage.where, written))
        located[number] = places
    return located


def layer_counts(model: ModelEvidence) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """The parameters of each layer of ``model`` that has some, and the same without biases where they can be told.

    A Linear or Conv2d layer with ``out`` outputs and a bias has ``out`` bias values (the output
    shape gives ``out``); without a way to tell, the weights-only reading is left out.
    """
    rows = [row for row in model.layers if row.leaf and row.params > 0]
    totals = tuple(row.params for row in rows)
    weights = []
    for row in rows:
        shape = row.output_shape
        outputs = shape[1] if row.type.startswith("Conv") and len(shape) >= 3 else shape[-1] if (
            row.type == "Linear" and shape) else 0
        if outputs <= 0 or row.params <= outputs or (row.params - outputs) % outputs:
            return totals, None
        weights.append(row.params - outputs)
    return totals, tuple(weights)


def _student_alternatives(check: TextCheck, models: Mapping[str, ModelEvidence],
                          rubric_sets: list[tuple[int, ...]]) -> list[_Alternative]:
    """The student's own numbers, where their network's differ from the rubric's."""
    alternatives = []
    if (check.or_student_total and (model := models.get(check.or_student_total)) and model.trainable_params
            and (model.trainable_params,) not in rubric_sets):
        alternatives.append(_Alternative((model.trainable_params,), "total", model))
    if check.or_student_layers and (model := models.get(check.or_student_layers)):
        totals, weights = layer_counts(model)
        if totals and totals not in rubric_sets:
            alternatives.append(_Alternative(totals, "layers", model))
            if weights:
                alternatives.append(_Alternative(weights, "layers", model, weights_only=True))
    return alternatives


def _numbers(numbers: tuple[int, ...]) -> str:
    return ", ".join(f"{n:,}" for n in numbers)


def _scope_words(scope: tuple[Scope, ...]) -> str:
    words = [SCOPE_WORDS[s] for s in scope]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _best_first(located: dict[int, list[tuple[str, str]]]) -> dict[int, list[tuple[str, str]]]:
    """Each number's places, the cell holding most of the set first, then a number written plainly."""
    holds: dict[str, int] = {}
    for places in located.values():
        for where in dict.fromkeys(w for w, _ in places):
            holds[where] = holds.get(where, 0) + 1
    return {number: sorted(places, key=lambda p: (-holds[p[0]], not _plainly(number, p[1])))
            for number, places in located.items()}


def _plainly(number: int, written: str) -> bool:
    return re.sub(r"\D", "", written) == str(number)


def _all_plain(located: dict[int, list[tuple[str, str]]]) -> bool:
    return all(any(_plainly(number, written) for _, written in places) for number, places in located.items())


def _places(located: dict[int, list[tuple[str, str]]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(where for places in located.values() for where, _ in places))


def _readings(located: dict[int, list[tuple[str, str]]]) -> str:
    """'(read "8.49K" as 8,490)' for the numbers not found written plainly."""
    shown = []
    for number, places in located.items():
        written = places[0][1]
        if not _plainly(number, written):
            shown.append(f'"{written}" as {number:,}')
    return f" (read {'; '.join(shown[:MAX_PLACES])})" if shown else ""


def _found(alternative: _Alternative, located: dict[int, list[tuple[str, str]]], check: TextCheck) -> TextResult:
    located = _best_first(located)
    where = _places(located)
    shown_where = "; ".join(where[:MAX_PLACES]) + (f" and {len(where) - MAX_PLACES} more" if len(where) > MAX_PLACES
                                                   else "")
    readings = _readings(located)
    model = alternative.model
    if alternative.owner == "total" and model is not None:
        handout = f" (not the handout's {_numbers(check.numbers)})" if check.numbers else ""
        detail = (f"found {_numbers(alternative.numbers)}, the parameter count of the student's own {model.class_name}"
                  f"{handout}, in {shown_where}{readings}")
    elif alternative.owner == "layers" and model is not None:
        count = f" ({model.trainable_params:,} parameters)" if model.trainable_params else ""
        kind = "weights of each layer" if alternative.weights_only else "per-layer calculation"
        detail = (f"found the {kind} of the student's own {model.class_name}{count}: "
                  f"{_numbers(alternative.numbers)} in {shown_where}{readings}")
    else:
        detail = f"found {_numbers(alternative.numbers)} in {shown_where}{readings}"
    return TextResult(True, detail, where)


def _forms(number: int) -> str:
    """The forms accepted for ``number``, shown in a failed check's reason."""
    forms = [str(number)]
    if number >= 1000:
        groups = _groups(number)
        forms += [",".join(groups), " ".join(groups), ".".join(groups)]
        digits = str(number)
        rounded = Decimal(number).quantize(Decimal(1).scaleb(len(digits) - MIN_SIGNIFICANT), ROUND_HALF_UP) / 1000
        forms.append(f"{rounded.normalize():f}K")
        mantissa = digits.rstrip("0")
        forms.append(f"{mantissa[0]}{'.' + mantissa[1:] if len(mantissa) > 1 else ''}e{len(digits) - 1}")
    return ", ".join(forms) + " or an expression equal to it"


def _digit_neighbour(a: str, b: str) -> bool:
    """As long, with one digit changed or two neighbours swapped (a typo: 8480 for 8490, 100,770 for 101,770)."""
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                              and a[diff[1]] == b[diff[0]])


_INTEGER = re.compile(  # a standalone integer, grouped (8,480) or not (8480)
    r"(?<![^\W_])(?<!\d[.,])(?:\d{1,3}(?:([,'\u2009\u202f])\d{3})(?:\1\d{3})*|\d+)(?![^\W_])(?!\.\d)")


def _near(number: int, texts: list[Passage]) -> list[str]:
    """Places where ``number`` is almost there: its digits inside a longer token, or a number one digit off."""
    if number < 1000:
        return []  # a one-digit difference in a small number is another number, not a typo
    digits = str(number)
    groups = _groups(number)
    inside = re.compile("".join(g + f"[{re.escape(_SEPARATORS + '.')}]?" for g in groups[:-1]) + groups[-1])
    unreadable, close = [], []
    for passage in texts:
        plain = analyse(passage.text).text
        for match in inside.finditer(plain):
            left = plain.rfind(" ", 0, match.start()) + 1
            right = plain.find(" ", match.end())
            token = plain[left : right if right >= 0 else len(plain)].strip()
            if token and _find_in(number, Passage(passage.where, token, passage.scope)) is None:
                unreadable.append(f'"{token[:40]}" in {passage.where}')
                break
        for match in _INTEGER.finditer(plain):
            if _digit_neighbour(re.sub(r"\D", "", match.group(0)), digits):
                close.append(f"{match.group(0)} in {passage.where}")
                break
    notes = []
    if unreadable:
        notes.append(f"the digits {digits} inside {'; '.join(unreadable[:MAX_PLACES])}")
    if close:
        notes.append(f"close to {number:,}: {'; '.join(close[:MAX_PLACES])}")
    return notes


def _not_found(check: TextCheck, evidence: Evidence, texts: list[Passage], missing: list[int],
               student: list[_Alternative], wanted: list[int]) -> TextResult:
    """``missing``: of the rubric's set closest to complete; ``wanted``: every number a set needs, not found."""
    detail = f"{_numbers(tuple(missing))} not found in the {_scope_words(check.scope)}"
    files = list(dict.fromkeys(p.where.split(", cell ")[0] for p in texts))
    counts = {s: sum(1 for p in texts if p.scope == s) for s in check.scope}
    read = (f"{len(texts)} cells of {', '.join(files) if files else 'no file'} ("
            + ", ".join(f"{counts[s]} {SCOPE_WORDS[s]}" for s in check.scope) + ")")
    example = max(missing)
    parts = [f"looked for {example:,} as {_forms(example)}"
             + (f" (and {_numbers(tuple(n for n in missing if n != example))} in the same forms)"
                if len(missing) > 1 else "")]
    for alternative in student:
        model = alternative.model
        assert model is not None
        if alternative.owner == "total":
            parts.append(f"or {_numbers(alternative.numbers)}, the parameter count of the student's own "
                         f"{model.class_name}")
        elif not alternative.weights_only:
            parts.append(f"or the per-layer counts of the student's own {model.class_name} "
                         f"({model.trainable_params or 0:,} parameters): {_numbers(alternative.numbers)}")
        else:
            parts.append(f"or its weights alone: {_numbers(alternative.numbers)}")
    parts.append(f"in {read}")
    elsewhere_scope = tuple(s for s in ALL_SCOPES if s not in check.scope)
    elsewhere = passages(evidence, elsewhere_scope) if elsewhere_scope else []
    unread: dict[str, list[int]] = {}
    for passage in elsewhere:
        numbers = [n for n in wanted if _find_in(n, passage) is not None]
        if numbers:
            kind = " (a parameter summary printed by torch)" if passage.scope == "summaries" else ""
            unread[passage.where + kind] = numbers
    notes = [f"{_numbers(tuple(numbers))} {'appears' if len(numbers) == 1 else 'appear'} where this check does "
             f"not read: {where}" for where, numbers in list(unread.items())[:MAX_PLACES]]
    for number in missing:
        notes += _near(number, texts)
    looked_for = "; ".join(parts[:-1]) + " " + parts[-1]
    if notes:
        looked_for += "; " + "; ".join(notes)
    return TextResult(False, detail, (), looked_for)


def evaluate(check: TextCheck, evidence: Evidence, student_models: Mapping[str, ModelEvidence] | None = None
             ) -> TextResult:
    """Whether the check's numbers appear in the student's text.

    ``student_models``: the student's models matched for the rubric's models (key -> model), for a
    check with ``or_student_total`` or ``or_student_layers``; without it only the rubric's numbers count.
    """
    texts = passages(evidence, check.scope)
    rubric_sets = [check.numbers] if check.numbers else [s.numbers for s in check.any_of]
    alternatives = [_Alternative(numbers) for numbers in rubric_sets]
    student = _student_alternatives(check, student_models or {}, rubric_sets)
    best_missing: list[int] | None = None
    wanted: list[int] = []
    found: list[tuple[_Alternative, dict[int, list[tuple[str, str]]]]] = []
    for alternative in alternatives + student:
        located = _located(alternative.numbers, texts)
        missing = [n for n, places in located.items() if not places]
        wanted += [n for n in missing if n not in wanted]
        if not missing:
            found.append((alternative, located))
        elif alternative.owner == "" and (best_missing is None or len(missing) < len(best_missing)):
            best_missing = missing
    if found:
        # the rubric's numbers before the student's own; among those, a set written plainly first
        alternative, located = min(found, key=lambda f: (f[0].owner != "", not _all_plain(f[1])))
        return _found(alternative, located, check)
    assert best_missing is not None
    return _not_found(check, evidence, texts, best_missing, student, wanted)
