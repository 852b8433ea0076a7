"""Neutralise notebook lines that reach outside the notebook: shell escapes and installer magics.

``!pip install torch`` from Colab would, outside a sandbox, pull gigabytes into some
environment; inside one it fails noisily. Either way it is not the student's work, so the
line is replaced by ``pass`` (keeping the indentation, so the cell still parses) and recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Line magics that change the machine, the environment or the working directory.
SKIPPED_LINE_MAGICS = ("pip", "conda", "mamba", "cd", "system", "sx", "bookmark", "tensorboard", "env")
# Cell magics whose body is not Python.
SKIPPED_CELL_MAGICS = ("bash", "sh", "script", "system", "sx", "perl", "ruby", "js", "javascript", "html")

_SHELL_LINE = re.compile(r"^(?P<indent>\s*)(?:[A-Za-z_][\w.]*\s*=\s*)?!!?(?P<command>.*)$")
_LINE_MAGIC = re.compile(r"^(?P<indent>\s*)(?:[A-Za-z_][\w.]*\s*=\s*)?%(?P<name>\w+)\b(?P<rest>.*)$")
_CELL_MAGIC = re.compile(r"^\s*%%(?P<name>\w+)")


@dataclass(frozen=True)
class Neutralised:
    source: str
    skipped: tuple[str, ...]  # the original lines that were replaced


def neutralise(source: str) -> Neutralised:
    """Return the cell source with shell escapes and machine-changing magics replaced by ``pass``."""
    lines = source.splitlines()
    if lines:
        cell_magic = _CELL_MAGIC.match(lines[0])
        if cell_magic and cell_magic.group("name") in SKIPPED_CELL_MAGICS:
            return Neutralised("pass  # grader: cell magic skipped", (lines[0].strip(),))
    skipped: list[str] = []
    out: list[str] = []
    continued = False
    for line in lines:
        if continued:  # a skipped line ended in a backslash: skip its continuation too
            skipped[-1] += "\n" + line
            continued = line.rstrip().endswith("\\")
            out.append("")
            continue
        shell = _SHELL_LINE.match(line)
        magic = _LINE_MAGIC.match(line)
        if shell and not line.lstrip().startswith("!="):
            replacement = f"{shell.group('indent')}pass  # grader: shell command skipped"
        elif magic and magic.group("name") in SKIPPED_LINE_MAGICS:
            replacement = f"{magic.group('indent')}pass  # grader: %{magic.group('name')} skipped"
        else:
            out.append(line)
            continue
        skipped.append(line.strip())
        out.append(replacement)
        continued = line.rstrip().endswith("\\")
    text = "\n".join(out)
    if source.endswith("\n"):
        text += "\n"
    return Neutralised(text, tuple(skipped))


PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun", "debug", "memit")


def as_python(source: str) -> str:
    """The cell as plain Python for ``ast`` (IPython's own transform: magics become calls).

    Cell magics that run their body as Python (``%%time``, ``%%capture``) are unwrapped first so
    that a class defined under them is still seen.
    """
    from IPython.core.inputtransformer2 import TransformerManager

    lines = source.splitlines()
    if lines:
        magic = _CELL_MAGIC.match(lines[0])
        if magic and magic.group("name") in PYTHON_CELL_MAGICS:
            source = "\n".join(lines[1:])
    try:
        return str(TransformerManager().transform_cell(source))
    except Exception:  # IPython could not make sense of it either: let ast report the error
        return source
