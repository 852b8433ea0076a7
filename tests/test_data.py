"""MNIST offline: profiles in torchvision's raw layout, deterministic, checksummed, idempotent."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from grader.data import DataError, DataSet, provision
from grader.idx import encode_images, encode_labels, read_images, read_labels
from grader.profiles import PROFILES

RAW = "MNIST/raw"


def test_embedded_profile_layout_and_sizes(embedded: DataSet) -> None:
    raw = embedded.public_dir / RAW
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    train = read_images(raw / "train-images-idx3-ubyte")
    assert train.shape == (8000, 28, 28)
    assert 8000 // 64 >= 100, "log_interval=100 must still record a training loss each epoch"
    test = read_images(raw / "t10k-images-idx3-ubyte")
    assert test.shape == (2000, 28, 28) and (test[:500] == test[1500:]).all(), "the 500 test digits, 4 times"
    assert embedded.manifest["sizes"] == {"public_train": 8000, "public_test": 2000, "eval_train": 4000,
                                          "eval_test": 500, "eval_holdout": 500}


def test_embedded_split_is_stratified_and_disjoint(embedded: DataSet) -> None:
    images = {split: read_images(embedded.eval_images(split)) for split in ("train", "test", "holdout")}
    for split, count in (("train", 400), ("test", 50), ("holdout", 50)):
        assert np.bincount(embedded.labels(split), minlength=10).tolist() == [count] * 10
    keys = {split: {a.tobytes() for a in arr} for split, arr in images.items()}
    assert not keys["train"] & keys["holdout"] and not keys["test"] & keys["holdout"]


def test_holdout_labels_are_not_in_the_public_files(embedded: DataSet) -> None:
    public = {p.name for p in (embedded.public_dir / RAW).iterdir()}
    assert not any("holdout" in name for name in public)
    assert (embedded.root / "labels" / "holdout-labels-idx1-ubyte").is_file()
    assert not list(embedded.eval_dir.glob("*labels*")), "the clean room's directory holds images only"


def test_embedded_is_deterministic_across_builds(embedded: DataSet, tmp_path: Path) -> None:
    again = provision("embedded", tmp_path)
    assert again.manifest["sha256"] == embedded.manifest["sha256"]


def test_torchvision_loads_it_without_downloading(embedded: DataSet) -> None:
    from torchvision import datasets

    train = datasets.MNIST(str(embedded.public_dir), train=True, download=True)
    test = datasets.MNIST(str(embedded.public_dir), train=False, download=True)
    assert len(train) == 8000 and len(test) == 2000


def test_provision_is_idempotent_and_repairs_corruption(cache_dir: Path) -> None:
    first = provision("embedded", cache_dir)
    stamp = (first.root / "manifest.json").stat().st_mtime_ns
    assert (provision("embedded", cache_dir).root / "manifest.json").stat().st_mtime_ns == stamp
    victim = first.public_dir / RAW / "train-labels-idx1-ubyte"
    victim.chmod(0o644)
    victim.write_bytes(b"garbage")
    repaired = provision("embedded", cache_dir)
    assert read_labels(repaired.public_dir / RAW / "train-labels-idx1-ubyte").shape == (8000,)


def test_embedded_60k_matches_the_real_assignment_size(tmp_path: Path) -> None:
    dataset = provision("embedded-60k", tmp_path)
    assert dataset.manifest["sizes"]["public_train"] == 60000 and dataset.manifest["sizes"]["public_test"] == 10000


def _fake_mnist(directory: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        files = {f"{prefix}-images-idx3-ubyte": encode_images(rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)),
                 f"{prefix}-labels-idx1-ubyte": encode_labels(rng.integers(0, 10, n, dtype=np.uint8))}
        for name, data in files.items():
            target = directory / (name + (".gz" if gz else ""))
            target.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_full_profile_from_a_directory(tmp_path: Path, gz: bool) -> None:
    source = tmp_path / "mnist"
    source.mkdir()
    _fake_mnist(source, gz)
    dataset = provision("full", tmp_path / "cache", mnist_dir=source)
    assert dataset.manifest["sizes"] == {"public_train": 60000, "public_test": 5000, "eval_train": 60000,
                                         "eval_test": 5000, "eval_holdout": 5000}
    assert json.loads((dataset.root / "manifest.json").read_text())["source"] == f"raw files from {source}"


def test_full_profile_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no train-images-idx3-ubyte .* found; it needs MNIST's four raw files"):
        provision("full", tmp_path / "cache", mnist_dir=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        provision("full", tmp_path / "cache", mnist_dir=tmp_path)


def test_unknown_profile() -> None:
    with pytest.raises(DataError, match="unknown data profile 'cifar'; choose one of embedded, embedded-60k, full"):
        provision("cifar")


def test_every_profile_is_described() -> None:
    assert all(len(spec.description) > 40 for spec in PROFILES.values())
