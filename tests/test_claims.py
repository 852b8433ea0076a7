"""Accuracies a notebook prints or writes are parsed as claims, never as measurements."""

from __future__ import annotations

import pytest
from factories import model

from grader.claims import check_claims, final_claims, parse_claims


@pytest.mark.parametrize(
    ("text", "split", "value"),
    [
        ("Train accuracy: 0.98", "train", 0.98),
        ("Test accuracy: 0.954", "test", 0.954),
        ("Taining Accuracy is 0.98 and Testing Accuracy is 0.967", "test", 0.967),
        ("test acc = tensor(0.9540)", "test", 0.954),
        ("Test accuracy is 98.7%", "test", 0.987),
        ("training accuracy of 97.25 %", "train", 0.9725),
        ("Test set: Average loss: 0.0479, Accuracy: 9843/10000 (98%)", "test", 0.9843),
        ("Accuracy of the network on the 10000 test images: 98 %", "test", 0.98),
        ("accuracy on test set: 0.95", "test", 0.95),
        ("TEST_ACCURACY = .9", "test", 0.9),
    ],
)
def test_claim_forms(text: str, split: str, value: float) -> None:
    claims = [c for c in parse_claims(text, "output", 3) if c.split == split]
    assert claims and claims[-1].value == pytest.approx(value)
    assert claims[-1].cell_index == 3


@pytest.mark.parametrize("text", ["Test loss: 0.12", "accuracy", "train_losses = []", "Test accuracy: 250%",
                                  "learning rate 0.01 for training"])
def test_not_claims(text: str) -> None:
    assert parse_claims(text, "output", 0) == []


def test_the_final_printed_claim_per_split_counts_and_markdown_is_not_a_run() -> None:
    claims = (parse_claims("Epoch 1: Train accuracy: 0.5 Test accuracy: 0.6\nEpoch 2: Train accuracy: 0.9 "
                           "Test accuracy: 0.91\n", "output", 5)
              + parse_claims("Test accuracy is 99%", "markdown", 6))
    final = final_claims(claims)
    assert final["train"].value == 0.9 and final["test"].value == 0.91


def test_claims_are_checked_against_the_split_they_were_computed_on() -> None:
    measured = model(train=0.99, test=0.40)
    measured.accuracy.public_test = 0.41  # type: ignore[union-attr]
    honest = check_claims(parse_claims("Test accuracy: 0.42", "output", 1), [measured], tolerance=0.03)
    assert honest[0].consistent and honest[0].measured == 0.41
    fake = check_claims(parse_claims("Train accuracy: 0.991\nTest accuracy: 0.987", "output", 1), [measured], 0.03)
    by_split = {c.split: c for c in fake}
    assert by_split["test"].consistent is False and by_split["test"].difference == pytest.approx(0.577)
    assert "higher than measured by more than 0.03" in by_split["test"].note and by_split["test"].overstated
    assert by_split["train"].consistent is True


def test_a_printed_accuracy_below_the_measured_one_is_a_note_not_a_flag() -> None:
    """The seed student evaluates with dropout on: it prints 0.650 for a model the clean room measures at 0.884."""
    measured = model(train=0.90, test=0.88)
    measured.accuracy.public_test = 0.884  # type: ignore[union-attr]
    low = check_claims(parse_claims("Test accuracy: 0.650", "output", 1), [measured], tolerance=0.03)[0]
    assert not low.consistent and not low.overstated
    assert "lower than measured by more than 0.03: not a reason to look" in low.note


def test_a_claim_with_nothing_measured_is_flagged() -> None:
    checks = check_claims(parse_claims("Test accuracy: 0.9", "output", 1), [], tolerance=0.03)
    assert checks[0].consistent is False and "no model from this file could be measured" in checks[0].note
