"""Read and write MNIST's IDX files (the format torchvision's ``datasets.MNIST`` loads)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class IdxError(ValueError):
    """A file is not a valid IDX images or labels file."""


def encode_images(images: np.ndarray) -> bytes:
    """Images as an ``N x 28 x 28`` uint8 array -> IDX3 bytes."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 N x H x W, got {images.dtype} {images.shape}")
    n, rows, cols = images.shape
    return struct.pack(">IIII", IMAGES_MAGIC, n, rows, cols) + images.tobytes()


def encode_labels(labels: np.ndarray) -> bytes:
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"labels must be a uint8 vector, got {labels.dtype} {labels.shape}")
    return struct.pack(">II", LABELS_MAGIC, labels.shape[0]) + labels.tobytes()


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def read_images(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    if len(data) < 16:
        raise IdxError(f"{path}: too short for an IDX images file ({len(data)} bytes)")
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IMAGES_MAGIC:
        raise IdxError(f"{path}: magic number {magic}, expected {IMAGES_MAGIC} (an IDX3 images file)")
    if len(data) != 16 + n * rows * cols:
        raise IdxError(f"{path}: header says {n}x{rows}x{cols} images but the file holds {len(data) - 16} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_labels(path: Path) -> np.ndarray:
    data = _read_bytes(path)
    if len(data) < 8:
        raise IdxError(f"{path}: too short for an IDX labels file ({len(data)} bytes)")
    magic, n = struct.unpack(">II", data[:8])
    if magic != LABELS_MAGIC:
        raise IdxError(f"{path}: magic number {magic}, expected {LABELS_MAGIC} (an IDX1 labels file)")
    if len(data) != 8 + n:
        raise IdxError(f"{path}: header says {n} labels but the file holds {len(data) - 8} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=8).copy()
