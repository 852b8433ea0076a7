"""Near-identical answers: groups a TA can mark in one step, and possibly copied answers for the summary.

Two answers are alike when their normalised text is the same (case, punctuation, markdown and
spacing ignored) or when the cosine similarity of their TF-IDF vectors (scikit-learn; words and
word pairs) reaches a threshold. Groups are the connected components of "alike" (single link).
Deterministic for given answers. Used by the grading view (``grader.serve``) and the instructor summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from grader.evidence import Evidence
from grader.render.context import answer_cells
from grader.rubric import Rubric

GROUP_THRESHOLD = 0.85  # answers this similar are offered as one group to mark
COPY_THRESHOLD = 0.9  # answers this similar (and long enough) are listed as possibly copied
COPY_MIN_WORDS = 25  # shorter answers are alike by nature ("ReLU does not saturate.")
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    """Lowercase words only: markdown, punctuation, LaTeX braces and spacing do not count."""
    return " ".join(_WORD.findall(text.lower()))


def answer_text(rubric: Rubric, evidence: Evidence, item_id: str) -> str:
    """The student's answer to a manual item (its answer cells' sources), without the heading line."""
    item = rubric.item(item_id)
    if not item.answer:
        return ""
    sources = []
    for view in answer_cells(item.answer, evidence):
        lines = view.cell.source.strip().splitlines()
        sources.append("\n".join(lines[1:]) if len(lines) > 1 else "")
    return "\n\n".join(sources)


class _Components:
    def __init__(self, keys: list[str]) -> None:
        self.parent = {key: key for key in keys}

    def find(self, key: str) -> str:
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        first, second = sorted((self.find(a), self.find(b)))
        self.parent[second] = first


def similarities(texts: Mapping[str, str]) -> list[tuple[str, str, float]]:
    """(a, b, cosine) for every pair of non-empty texts with a < b, from TF-IDF vectors fitted on ``texts``."""
    keys = sorted(key for key, text in texts.items() if normalise(text))
    if len(keys) < 2:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer  # scikit-learn takes a second to import
    from sklearn.metrics.pairwise import cosine_similarity

    matrix = TfidfVectorizer(preprocessor=normalise, ngram_range=(1, 2), sublinear_tf=True).fit_transform(
        [texts[key] for key in keys])
    cosine = cosine_similarity(matrix)
    return [(keys[i], keys[j], float(cosine[i, j])) for i in range(len(keys)) for j in range(i + 1, len(keys))]


def group_answers(texts: Mapping[str, str], threshold: float = GROUP_THRESHOLD) -> list[list[str]]:
    """Groups of students with alike answers, largest first; every student is in exactly one group.

    Students without an answer form one group (the TA may mark them all "missing" at once).
    """
    keys = sorted(texts)
    components = _Components(keys)
    by_text: dict[str, str] = {}
    for key in keys:
        normal = normalise(texts[key])
        if normal in by_text:
            components.union(by_text[normal], key)
        else:
            by_text[normal] = key
    for a, b, cosine in similarities(texts):
        if cosine >= threshold:
            components.union(a, b)
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(components.find(key), []).append(key)
    return sorted(groups.values(), key=lambda members: (-len(members), members[0]))


@dataclass(frozen=True)
class CopiedPair:
    """Two students whose answers to some items are nearly the same: (item id, similarity) per item."""

    students: tuple[str, str]
    items: tuple[tuple[str, float], ...]

    @property
    def highest(self) -> float:
        return max(similarity for _, similarity in self.items)


def possible_copies(rubric: Rubric, evidences: list[Evidence], threshold: float = COPY_THRESHOLD,
                    min_words: int = COPY_MIN_WORDS) -> list[CopiedPair]:
    """Pairs of students with alike answers of at least ``min_words`` words, across every manual item.

    Most items first, then the highest similarity.
    """
    found: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for item in rubric.items():
        if item.grading != "manual" or not item.answer:
            continue
        texts = {e.student: text for e in evidences
                 if len(normalise(text := answer_text(rubric, e, item.id)).split()) >= min_words}
        for a, b, cosine in similarities(texts):
            if cosine >= threshold or normalise(texts[a]) == normalise(texts[b]):
                found.setdefault((a, b), []).append((item.id, round(cosine, 3)))
    pairs = [CopiedPair(students, tuple(items)) for students, items in found.items()]
    return sorted(pairs, key=lambda pair: (-len(pair.items), -pair.highest, pair.students))
