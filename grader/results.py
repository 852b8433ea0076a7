"""The results channel: what comes back out of a sandbox is data only, size-capped and schema-checked.

JSON is read with a size cap and validated by pydantic; tensors are read from safetensors (no
pickle); logits from ``.npy`` with ``allow_pickle=False``. Anything malformed, missing or
oversized raises ``ResultError`` with a message for the student's report, never a grader crash.
"""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError, safe_open

MAX_JSON_BYTES = 4 << 20
MAX_WEIGHTS_BYTES = 512 << 20
MAX_LOGITS_BYTES = 64 << 20
MAX_CURVES = 8
MAX_CURVE_VALUES = 10_000


class ResultError(RuntimeError):
    """A result file from a sandboxed process is missing, too large or malformed."""


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HarvestedModel(Lenient):
    variable: str = Field(max_length=200)
    class_name: str = Field(max_length=200)
    class_module: str = Field(default="", max_length=500)
    weights: str | None = Field(default=None, max_length=200)
    trainable: list[str] = Field(default_factory=list, max_length=10000)
    error: str | None = Field(default=None, max_length=2000)


class HarvestedCurve(Lenient):
    """A list of finite numbers kept in a global named like ``*loss*``/``*counter*`` (harvest.py's rules)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
    values: list[float] = Field(max_length=MAX_CURVE_VALUES)
    length: int = Field(default=0, ge=0)

    @field_validator("values")
    @classmethod
    def _finite(cls, values: list[float]) -> list[float]:
        if not all(math.isfinite(v) for v in values):
            raise ValueError("non-finite value")
        return values


class Harvest(Lenient):
    models: list[HarvestedModel] = Field(default_factory=list, max_length=50)
    normalize: list[tuple[list[float], list[float]]] = Field(default_factory=list, max_length=5)
    curves: list[HarvestedCurve] = Field(default_factory=list, max_length=MAX_CURVES)


class RunnerStep(Lenient):
    step: str = Field(max_length=300)
    ok: bool
    duration_s: float = 0.0
    class_name: str | None = None
    found: str | None = None
    error: str | None = Field(default=None, max_length=20000)


class RunnerStatus(Lenient):
    steps: list[RunnerStep] = Field(default_factory=list, max_length=100)


class LayerRecord(Lenient):
    depth: int
    type: str = Field(max_length=200)
    name: str = Field(max_length=200)
    output_shape: list[int] = Field(default_factory=list, max_length=10)
    params: int = Field(ge=0)
    leaf: bool


class LayerSummary(Lenient):
    input_shape: list[int] | None = None
    rows: list[LayerRecord] = Field(default_factory=list, max_length=2000)
    error: str | None = Field(default=None, max_length=5000)


class ParameterInfo(Lenient):
    name: str = Field(max_length=500)
    shape: list[int]
    trainable: bool


class MeasuredModel(Lenient):
    id: str
    ok: bool
    error: str | None = Field(default=None, max_length=5000)
    rebuilt_from: str | None = Field(default=None, max_length=500)
    parameters: list[ParameterInfo] = Field(default_factory=list, max_length=10000)
    summary: LayerSummary | None = None
    logits: dict[str, dict[str, str]] = Field(default_factory=dict)
    duration_s: float = 0.0


class CleanroomResults(Lenient):
    programs: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    models: list[MeasuredModel] = Field(default_factory=list, max_length=200)


Schema = TypeVar("Schema", bound=BaseModel)


def read_json(path: Path, schema: type[Schema], what: str) -> Schema:
    if not path.is_file() or path.is_symlink():
        raise ResultError(f"{what} was not produced ({path.name} missing)")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ResultError(f"{what} is {size:,} bytes, over the {MAX_JSON_BYTES:,}-byte limit")
    try:
        return schema.model_validate(json.loads(path.read_bytes()))
    except (ValueError, ValidationError) as error:
        first = str(error).splitlines()[0][:300]
        raise ResultError(f"{what} is malformed: {first}") from None


RESULTS = PurePosixPath(".grader/out")  # where student processes write results, under their work dir


def contained(root: Path, relative: str | PurePosixPath) -> Path:
    """``root/relative``, where ``root`` is a directory the grader created (a work dir).

    Every component below ``root`` is checked with lstat: a student process may have replaced
    any of them (the results directory itself included) by a link to somewhere on the host,
    such as another student's results. Absolute paths and '..' are refused. Call it only once
    every student process of that work dir has ended.
    """
    parts = PurePosixPath(relative)
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise ResultError(f"result path {str(relative)!r} escapes the results directory")
    path = root
    for part in parts.parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return path  # missing: the reader says so
        except OSError as error:
            raise ResultError(f"result path {str(relative)!r} cannot be read ({error.strerror})") from None
        if stat.S_ISLNK(mode):
            shown = path.relative_to(root)
            raise ResultError(f"result path {str(relative)!r} is refused: {shown} is a link (results must be plain "
                              "files in the work dir)")
    return path


def result_path(work_root: Path, name: str) -> Path:
    """A file a student process wrote into its results directory, checked by :func:`contained`."""
    if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        raise ResultError(f"result path {name!r} escapes the results directory")
    return contained(work_root, RESULTS / name)


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file (the header only; no pickle)."""
    if not path.is_file():
        raise ResultError(f"weights file {path.name} is missing")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ResultError(f"weights file {path.name} is over {MAX_WEIGHTS_BYTES:,} bytes")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise ResultError(f"weights file {path.name} is not a valid safetensors file: {error}") from None


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def read_logits(path: Path, rows: int) -> np.ndarray:
    if not path.is_file() or path.is_symlink():
        raise ResultError(f"logits file {path.name} is missing")
    if path.stat().st_size > MAX_LOGITS_BYTES:
        raise ResultError(f"logits file {path.name} is over {MAX_LOGITS_BYTES:,} bytes")
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ResultError(f"logits file {path.name} is not a plain array: {error}") from None
    if array.ndim != 2 or array.shape[0] != rows or not np.issubdtype(array.dtype, np.floating):
        raise ResultError(f"logits file {path.name} has shape {array.shape} {array.dtype}, expected ({rows}, classes)")
    return array
