"""Take the definitions out of a student's code with ``ast``: what the clean room may execute.

Kept: imports, class and function definitions, and assignments of constants (literals and
arithmetic on them, e.g. ``input_size = 1 * 28 * 28``, ``DEVICE = 'cuda' if ... else 'cpu'``).
Dropped: everything that does work (loading data, training, plotting, printing). The clean room
then rebuilds the student's classes from this code, never from the notebook's live state.

This module only parses; it never executes or imports student code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field

# Calls allowed inside a constant expression (all cheap and side-effect free).
ALLOWED_CALLS = {
    "torch.cuda.is_available", "torch.device", "int", "float", "str", "bool", "tuple", "list",
    "dict", "range", "len", "min", "max", "abs", "round", "pow", "math.sqrt", "math.prod",
    "math.floor", "math.ceil", "np.prod", "numpy.prod",
}


MAX_STATEMENT_CHARS = 64_000  # one class, function or constant (a memorised table of answers is larger)
MAX_TOTAL_CHARS = 1_000_000  # all that one file sends into the clean room


@dataclass(frozen=True)
class Statement:
    origin: str  # e.g. "problem2_mlp.ipynb, cell 7, line 3"
    code: str
    defines: tuple[str, ...]


@dataclass
class Definitions:
    statements: list[Statement] = field(default_factory=list)
    constructor_args: dict[str, list[str]] = field(default_factory=dict)
    unparsable: list[str] = field(default_factory=list)  # origins of code that is not valid Python (or too large)
    size: int = 0  # characters of code kept

    def to_job(self) -> list[dict[str, object]]:
        return [{"origin": s.origin, "code": s.code, "defines": list(s.defines)} for s in self.statements]


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_constant(node: ast.expr, known: set[str]) -> bool:
    match node:
        case ast.Constant():
            return True
        case ast.Name(id=name):
            return name in known
        case ast.Attribute():
            dotted = _dotted(node)
            return dotted is not None and dotted.split(".")[0] in known
        case ast.BinOp(left=left, right=right):
            return _is_constant(left, known) and _is_constant(right, known)
        case ast.UnaryOp(operand=operand):
            return _is_constant(operand, known)
        case ast.BoolOp(values=values):
            return all(_is_constant(v, known) for v in values)
        case ast.Compare(left=left, comparators=comparators):
            return _is_constant(left, known) and all(_is_constant(c, known) for c in comparators)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return all(_is_constant(n, known) for n in (test, body, orelse))
        case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
            return all(_is_constant(e, known) for e in elts)
        case ast.Dict(keys=keys, values=values):
            return all(k is not None and _is_constant(k, known) for k in keys) and all(
                _is_constant(v, known) for v in values
            )
        case ast.Call(func=func, args=args, keywords=keywords):
            return (
                _dotted(func) in ALLOWED_CALLS
                and all(_is_constant(a, known) for a in args)
                and all(_is_constant(k.value, known) for k in keywords)
            )
    return False


def _targets(statement: ast.stmt) -> list[str]:
    names: list[str] = []
    targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            names.extend(e.id for e in target.elts if isinstance(e, ast.Name))
    return names


def _imported_names(statement: ast.Import | ast.ImportFrom) -> list[str]:
    return [(alias.asname or alias.name).split(".")[0] for alias in statement.names if alias.name != "*"]


def _is_import_block(statement: ast.stmt) -> bool:
    """``try: import x / except ImportError: ...`` made only of imports and pass."""
    if not isinstance(statement, ast.Try):
        return False
    bodies = [statement.body, statement.orelse, statement.finalbody] + [h.body for h in statement.handlers]
    return all(isinstance(s, ast.Import | ast.ImportFrom | ast.Pass) for body in bodies for s in body)


def _keep(statement: ast.stmt, known: set[str]) -> tuple[bool, list[str]]:
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return True, _imported_names(statement)
    if _is_import_block(statement):
        names = [
            n for node in ast.walk(statement) if isinstance(node, ast.Import | ast.ImportFrom)
            for n in _imported_names(node)
        ]
        return True, names
    if isinstance(statement, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return True, [statement.name]
    if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
        names = _targets(statement)
        if names and _is_constant(statement.value, known):
            return True, names
    return False, []


def _constructor_calls(tree: ast.AST, found: dict[str, list[str]]) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not (node.args or node.keywords):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        parts = [ast.unparse(a) for a in node.args] + [ast.unparse(k) for k in node.keywords]
        args = ", ".join(parts)
        calls = found.setdefault(name.split(".")[-1], [])
        if args not in calls and len(calls) < 10:
            calls.append(args)


def extract(chunks: Iterable[tuple[str, str]]) -> Definitions:
    """``chunks``: (origin, python source) in execution order, e.g. one per notebook code cell."""
    result = Definitions()
    known: set[str] = set()
    for origin, source in chunks:
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            where = f"line {error.lineno}: " if error.lineno else ""
            result.unparsable.append(f"{origin}: {where}{error.msg}")
            continue
        except (RecursionError, MemoryError):
            result.unparsable.append(f"{origin}: too deeply nested to parse")
            continue
        except ValueError as error:  # e.g. "source code string cannot contain null bytes"
            result.unparsable.append(f"{origin}: {error}")
            continue
        kept, found = len(result.statements), set(known)
        try:
            _take_definitions(origin, source, tree, result, known)
        except (RecursionError, MemoryError):  # a deep expression: nothing of this chunk is taken
            del result.statements[kept:]
            known.intersection_update(found)
            result.unparsable.append(f"{origin}: too deeply nested to parse")
    return result


def _take_definitions(origin: str, source: str, tree: ast.Module, result: Definitions, known: set[str]) -> None:
    _constructor_calls(tree, result.constructor_args)
    for statement in tree.body:
        keep, names = _keep(statement, known)
        if not keep:
            continue
        known.update(names)
        code = ast.get_source_segment(source, statement) or ast.unparse(statement)
        decorated = isinstance(statement, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
            and statement.decorator_list
        if decorated:
            code = ast.unparse(statement)  # the segment would miss the decorators
        where = f"{origin}, line {statement.lineno}"
        if len(code) > MAX_STATEMENT_CHARS or result.size + len(code) > MAX_TOTAL_CHARS:
            result.unparsable.append(f"{where}: a definition of {len(code):,} characters is not taken into the clean "
                                     f"room (at most {MAX_STATEMENT_CHARS:,}; a model needs no tables of data)")
            continue
        result.size += len(code)
        result.statements.append(Statement(where, code, tuple(names)))
