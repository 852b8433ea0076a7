"""Keyword hints for TAs: which rubric line a written answer may deserve. Suggestions only, never applied."""

from __future__ import annotations

from dataclasses import dataclass

from grader.rubric import Item


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    keywords: tuple[str, ...]
    found: tuple[str, ...]  # the keywords that appear in the answer
    line_id: str  # the rubric line suggested when none appears
    line_text: str
    line_points: float

    @property
    def suggested(self) -> bool:
        return not self.found

    @property
    def message(self) -> str:
        if self.found:
            return f"mentions {', '.join(f'“{k}”' for k in self.found)}: no deduction suggested"
        quoted = ", ".join(f"“{k}”" for k in self.keywords)
        return (f"none of {quoted} appears in the answer: consider “{self.line_text}” "
                f"({self.line_points:+g}, line id {self.line_id})")


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").split())


def suggest(item: Item, answers: list[str]) -> list[Suggestion]:
    """One suggestion per keyword hint of ``item``, from the texts of its answer; none without an answer."""
    if not answers:
        return []
    text = _normalise("\n".join(answers))
    lines = {line.id: line for line in item.lines}
    suggestions = []
    for hint in item.hints:
        found = tuple(k for k in hint.keywords if _normalise(k) in text)
        line = lines[hint.if_missing]
        suggestions.append(Suggestion(item.id, hint.keywords, found, line.id, line.text, line.points))
    return suggestions
