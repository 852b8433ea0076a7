"""Parse accuracies a notebook *claims* (prints or writes) so they can be compared with measured ones.

Recognised forms (case-insensitive), with values as fractions, percentages or counts::

    Train accuracy: 0.98          Test accuracy is 95.4%        test acc = tensor(0.9540)
    Testing Accuracy is 0.967     Test set: Average loss: 0.05, Accuracy: 9543/10000 (95%)
    Accuracy of the network on the 10000 test images: 98 %
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from grader.evidence import Claim, ClaimCheck, ModelEvidence

Split = Literal["train", "test"]

_NUMBER = r"(?:tensor\(\s*)?(?P<value>\d+(?:\.\d+)?|\.\d+)\s*(?P<pct>%|percent)?"
_PATTERNS = [
    # "train accuracy: 0.98", "Testing Accuracy is 0.967", "test set accuracy = 95%"
    re.compile(
        r"\b(?P<split>train(?:ing)?|test(?:ing)?)(?:\s+set)?[\s_-]*acc(?:uracy)?\b\s*(?:is|of|was|=|:|-)?\s*"
        r"(?:about\s+|approximately\s+|~\s*)?" + _NUMBER,
        re.IGNORECASE,
    ),
    # "Test set: Average loss: 0.0479, Accuracy: 9843/10000 (98%)"
    re.compile(
        r"\b(?P<split>train(?:ing)?|test(?:ing)?)\s+set:.{0,80}?accuracy:\s*(?P<num>\d+)\s*/\s*(?P<den>\d+)",
        re.IGNORECASE,
    ),
    # "Accuracy of the network on the 10000 test images: 98 %", "accuracy on test set: 0.95"
    re.compile(
        r"\baccuracy\s+(?:of\s+the\s+(?:network|model)\s+)?on\s+(?:the\s+)?(?:\d+\s+)?"
        r"(?P<split>train(?:ing)?|test(?:ing)?)\w*(?:\s+(?:images|set|data(?:set)?))?\s*(?:is|=|:)?\s*" + _NUMBER,
        re.IGNORECASE,
    ),
]


def _value(match: re.Match[str]) -> float | None:
    groups = match.groupdict()
    if groups.get("num") is not None:
        denominator = int(groups["den"])
        return int(groups["num"]) / denominator if denominator else None
    value = float(groups["value"])
    if groups.get("pct") or value > 1:
        value /= 100
    return value if 0 <= value <= 1 else None


def parse_claims(text: str, source: Literal["output", "markdown"], cell_index: int | None) -> list[Claim]:
    found: list[tuple[int, Claim]] = []
    for pattern in _PATTERNS:
        for match in pattern.finditer(text):
            value = _value(match)
            if value is None:
                continue
            split: Split = "train" if match.group("split").lower().startswith("train") else "test"
            snippet = " ".join(match.group(0).split())[:120]
            found.append((match.start(), Claim(split=split, value=round(value, 6), text=snippet,
                                               cell_index=cell_index, source=source)))
    found.sort(key=lambda pair: pair[0])
    return [claim for _, claim in found]


def final_claims(claims: Iterable[Claim]) -> dict[Split, Claim]:
    """The last claim per split printed by the run (per-epoch prints end with the final one)."""
    last: dict[Split, Claim] = {}
    for claim in claims:
        if claim.source == "output":
            last[claim.split] = claim
    return last


def check_claims(claims: Iterable[Claim], models: list[ModelEvidence], tolerance: float) -> list[ClaimCheck]:
    """Compare each final printed accuracy with the closest measurement of a model from the same file.

    A printed test accuracy is compared with the accuracy measured on the notebook's own test split
    (the split it was computed on), a train accuracy with the measured training accuracy.
    """
    checks = []
    for split, claim in sorted(final_claims(claims).items()):
        measured = [
            (model.id, model.accuracy.train if split == "train" else model.accuracy.public_test)
            for model in models
            if model.accuracy is not None
        ]
        if not measured:
            checks.append(ClaimCheck(split=split, claimed=claim.value, measured=None, model_id=None,
                                     difference=None, consistent=False,
                                     note=f"printed {claim.text!r} but no model from this file could be measured"))
            continue
        model_id, value = min(measured, key=lambda pair: abs(pair[1] - claim.value))
        difference = round(claim.value - value, 4)
        consistent = abs(difference) <= tolerance
        if consistent:
            verdict = "consistent"
        elif difference > 0:
            verdict = f"higher than measured by more than {tolerance:g}"
        else:  # a model evaluated with dropout on, a mean over epochs: the notebook's loss, not a claim to check
            verdict = f"lower than measured by more than {tolerance:g}: not a reason to look"
        checks.append(ClaimCheck(split=split, claimed=claim.value, measured=value, model_id=model_id,
                                 difference=difference, consistent=consistent,
                                 note=f"printed {claim.text!r}; measured {value:.3f} ({verdict})"))
    return checks
