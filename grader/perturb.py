"""Copies of evaluation images changed in a way no person would see, to tell a model from a lookup.

A trained MLP or CNN gives the same answers for a digit whose ink is a few grey levels lighter or
darker; a table from image bytes (or their hash) to labels finds nothing and falls to chance.
The noise is drawn from a seed the grader keeps secret (``grader.data.grader_secret``), so a
notebook cannot carry the answers for the changed copies too.
"""

from __future__ import annotations

import hashlib

import numpy as np

INK_NOISE = 3  # grey levels (of 255) added to or taken from each inked pixel
SPECKLE_SHARE = 0.02  # share of background pixels lifted by 1-2 grey levels
TRAIN_SUBSET = 2000  # training digits checked (the first ones of the evaluation split)
COLLAPSE = 0.10  # an accuracy drop beyond this under such noise means the answers were looked up


def seed_for(secret: bytes, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(secret + purpose.encode()).digest()[:8], "little")


def noisy_copy(images: np.ndarray, seed: int) -> np.ndarray:
    """``images`` (N x 28 x 28 uint8) with invisible noise; deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    values = images.astype(np.int16)
    ink = values > 0
    values += np.where(ink, rng.integers(-INK_NOISE, INK_NOISE + 1, size=values.shape, dtype=np.int16), 0)
    speckle = (~ink) & (rng.random(values.shape) < SPECKLE_SHARE)
    values += np.where(speckle, rng.integers(1, 3, size=values.shape, dtype=np.int16), 0)
    noisy = np.clip(values, 0, 255).astype(np.uint8)
    unchanged = np.all(noisy.reshape(len(noisy), -1) == images.reshape(len(images), -1), axis=1)
    noisy[unchanged, 0, 0] ^= 1  # every copy differs from its original in at least one pixel
    return noisy
