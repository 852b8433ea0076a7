"""``--shard K/N``: a deterministic share of a class, so N processes (a Slurm job array) grade it together.

Every shard discovers the whole class (student ids depend on all the names: a duplicate gets ``-2``),
sorts the ids and keeps those at index ``i`` with ``i % N == K - 1`` (K is 1-based, as Slurm's
``$SLURM_ARRAY_TASK_ID`` with ``--array=1-N``). The shares are disjoint and together the class, for
any N, whatever order the paths were given in. Shards write into one shared OUT folder: each
student's files are written atomically (``grader.fsutil``) in the student's own folder, so N
shards can write at once; the class files (gradebook, summary) are left to ``grader rescore``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, TypeVar

_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class ShardError(ValueError):
    """A ``--shard`` value that is not K/N with 1 <= K <= N."""


@dataclass(frozen=True)
class Shard:
    index: int  # K, 1-based
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, position: int) -> bool:
        """Whether the student at ``position`` of the sorted ids belongs to this shard."""
        return position % self.count == self.index - 1


def parse_shard(text: str) -> Shard:
    match = _FORM.fullmatch(text)
    if match is None:
        raise ShardError(f"{text!r} is not K/N (e.g. 3/8: the third of eight shares of the class)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ShardError(f"{text!r}: N must be at least 1")
    if not 1 <= index <= count:
        raise ShardError(f"{text!r}: K must be between 1 and N ({count}); K is 1-based, like $SLURM_ARRAY_TASK_ID "
                         f"with --array=1-{count}")
    return Shard(index, count)


class _HasStudent(Protocol):
    @property
    def student(self) -> str: ...


S = TypeVar("S", bound=_HasStudent)


def select_shard(submissions: list[S], shard: Shard | None) -> list[S]:
    """This shard's submissions, in the order given; all of them without a shard."""
    if shard is None:
        return list(submissions)
    ranked = sorted(s.student for s in submissions)
    if len(set(ranked)) != len(ranked):
        raise ShardError("two submissions have the same student id; shards need distinct ids")
    mine = {student for position, student in enumerate(ranked) if shard.holds(position)}
    return [s for s in submissions if s.student in mine]
