"""The results channel: what comes back out of a sandbox is data only, size-capped and schema-checked.

JSON is read with a size cap and validated by pydantic; tensors are read from safetensors (no
pickle); logits from ``.npy`` with ``allow_pickle=False``. Anything malformed, missing or
oversized raises ``ResultError`` with a message for the student's report, never a grader crash.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import stat
import struct
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, TypeVar, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator

MAX_JSON_BYTES = 4 << 20
MAX_WEIGHTS_BYTES = 64 << 20  # one model's tensors (the handout's MLP is 0.4 MB)
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
    trained: bool | None = None
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


class HarvestedDataPath(Lenient):
    """Which MNIST data path served the student's process (harvest.py from inside/fastdata.py's report)."""

    mode: Literal["fast", "stock"] = "stock"
    requested: str = Field(default="", max_length=20)  # GRADER_DATA_PATH as the process saw it
    fast_datasets: int = Field(default=0, ge=0)  # datasets served from tensors (in the kernel's own process)
    stock_datasets: int = Field(default=0, ge=0)  # datasets the stock code served
    fallbacks: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list, max_length=20)
    error: str | None = Field(default=None, max_length=500)


class Harvest(Lenient):
    models: list[HarvestedModel] = Field(default_factory=list, max_length=50)
    normalize: list[tuple[list[float], list[float]]] = Field(default_factory=list, max_length=5)
    curves: list[HarvestedCurve] = Field(default_factory=list, max_length=MAX_CURVES)
    data_path: HarvestedDataPath | None = None  # absent from older evidence

    @field_validator("data_path", mode="wrap")
    @classmethod
    def _data_path(cls, value: object, handler: ValidatorFunctionWrapHandler) -> HarvestedDataPath | None:
        """A malformed record is dropped, not the whole harvest (the models matter more)."""
        try:
            return cast(HarvestedDataPath | None, handler(value))
        except ValidationError:
            return None


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
    normalisation_buffers: list[str] = Field(default_factory=list, max_length=2000)
    summary: LayerSummary | None = None
    duration_s: float = 0.0


class CleanroomResults(Lenient):
    programs: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    models: list[MeasuredModel] = Field(default_factory=list, max_length=200)


Schema = TypeVar("Schema", bound=BaseModel)


def _open_untrusted(path: Path, what: str) -> tuple[int, os.stat_result]:
    """An fd for a file a student process may have written: the last component is never a link, and it is
    a regular file (not a FIFO that would block, nor a device that reads without end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ResultError(f"{what} was not produced ({path.name} missing)") from None
    except OSError as error:
        if os.path.islink(path):
            raise ResultError(f"{what} is refused: {path.name} is a link (results must be plain files)") from None
        raise ResultError(f"{what} cannot be read ({error.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ResultError(f"{what} is refused: {path.name} is not a regular file")
    return fd, info


def read_untrusted(path: Path, cap: int, what: str) -> bytes:
    """The bytes of a file a student process may have written, refused past ``cap`` bytes."""
    fd, info = _open_untrusted(path, what)
    try:
        if info.st_size > cap:
            raise ResultError(f"{what} is {info.st_size:,} bytes, over the {cap:,}-byte limit")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        raise ResultError(f"{what} grew past the {cap:,}-byte limit while it was read")
    return data


def read_tail(path: Path, size: int) -> bytes:
    """At most the last ``size`` bytes of a log a student process wrote (bounded, whatever its length)."""
    fd, info = _open_untrusted(path, "the log")
    try:
        with os.fdopen(os.dup(fd), "rb") as handle:
            handle.seek(max(0, info.st_size - size))
            return handle.read(size)
    finally:
        os.close(fd)


def read_json(path: Path, schema: type[Schema], what: str) -> Schema:
    data = read_untrusted(path, MAX_JSON_BYTES, what)
    try:
        return schema.model_validate(json.loads(data))
    except (ValueError, ValidationError, RecursionError) as error:
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


MAX_HEADER_BYTES = 1 << 20
MAX_TENSORS = 2000
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def tensor_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file, from its header alone (no pickle, no mmap).

    The header is checked against the file: every tensor's byte range must match its shape and
    dtype, lie inside the file, and the ranges must not overlap.
    """
    what = f"weights file {path.name}"
    fd, info = _open_untrusted(path, what)
    try:
        if info.st_size > MAX_WEIGHTS_BYTES:
            raise ResultError(f"{what} is over {MAX_WEIGHTS_BYTES:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ResultError(f"{what} is not a valid safetensors file: too short")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES or 8 + length > info.st_size:
                raise ResultError(f"{what} is not a valid safetensors file: header of {length:,} bytes")
            header = handle.read(length)
    finally:
        os.close(fd)
    return _shapes_from_header(header, info.st_size - 8 - length, what)


def _shapes_from_header(header: bytes, data_bytes: int, what: str) -> dict[str, tuple[int, ...]]:
    try:
        table = json.loads(header)
    except (ValueError, RecursionError):
        raise ResultError(f"{what} is not a valid safetensors file: its header is not JSON") from None
    if not isinstance(table, dict) or len(table) > MAX_TENSORS + 1:
        raise ResultError(f"{what} is not a valid safetensors file (or holds more than {MAX_TENSORS} tensors)")
    shapes: dict[str, tuple[int, ...]] = {}
    ranges = []
    for key, entry in table.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
            width = DTYPE_BYTES[dtype]
        except (KeyError, TypeError, ValueError):
            raise ResultError(f"{what} is not a valid safetensors file: bad entry for {str(key)[:80]!r}") from None
        if len(key) > 500 or len(shape) > 8 or any(d < 0 for d in shape) or not (0 <= start <= end <= data_bytes) \
                or end - start != math.prod(shape) * width:
            raise ResultError(f"{what} is not a valid safetensors file: tensor {str(key)[:80]!r} does not fit")
        shapes[key] = shape
        ranges.append((start, end))
    ranges.sort()
    if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ranges)):
        raise ResultError(f"{what} is not a valid safetensors file: tensors overlap")
    return shapes


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def read_logits(path: Path, rows: int, cap: int = MAX_LOGITS_BYTES) -> np.ndarray:
    data = read_untrusted(path, cap, f"logits file {path.name}")
    try:
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ResultError(f"logits file {path.name} is not a plain array: {error}") from None
    if array.ndim != 2 or array.shape[0] != rows or not np.issubdtype(array.dtype, np.floating):
        raise ResultError(f"logits file {path.name} has shape {array.shape} {array.dtype}, expected ({rows}, classes)")
    return array
