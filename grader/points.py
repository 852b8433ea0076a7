"""How points are written everywhere (reports, Gradescope, the gradebook, the grading view)."""

from __future__ import annotations


def fmt(points: float) -> str:
    return f"{points + 0.0:g}"  # + 0.0 turns -0.0 into 0.0
