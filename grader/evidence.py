"""Evidence: everything measured about one submission, collected once and scored many times.

``evidence.json`` does not depend on the rubric's thresholds or rubric lines: changing those
re-runs only scoring and rendering. (It does depend on the training plan for .py modules, whose
hash is stored as ``plan_sha256``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grader.fsutil import atomic_write_text

EVIDENCE_SCHEMA = 1
CellStatus = Literal["ok", "error", "timeout", "not_run"]
FileStatus = Literal["completed", "timeout", "memory", "gpu-memory", "processes", "crashed", "invalid", "error"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CellError(Record):
    ename: str
    evalue: str
    traceback: str = ""


class Cell(Record):
    index: int
    cell_type: Literal["code", "markdown", "raw"]
    source: str
    status: CellStatus | None = None  # None for markdown
    duration_s: float | None = None
    error: CellError | None = None
    output_text: str = ""
    images: list[str] = Field(default_factory=list, description="PNG outputs, base64")
    skipped_magics: list[str] = Field(default_factory=list)
    truncated: bool = False


class Claim(Record):
    split: Literal["train", "test"]
    value: float
    text: str
    cell_index: int | None = None
    source: Literal["output", "markdown"]


class ClaimCheck(Record):
    split: Literal["train", "test"]
    claimed: float
    measured: float | None
    model_id: str | None
    difference: float | None
    consistent: bool
    note: str

    @property
    def overstated(self) -> bool:
        """Printed higher than measured, beyond the tolerance: a reason to look (lower is only a note)."""
        return not self.consistent and self.difference is not None and self.difference > 0


class LoggedCurve(Record):
    """A numeric list the code kept in a global named like ``*loss*`` or ``*counter*`` (for the loss plot)."""

    name: str
    values: list[float]
    length: int = 0  # before the harvest thinned it to at most 10,000 values


class DataPathUsed(Record):
    """How torchvision's MNIST served the student's process: 'fast' (decoded tensors, bit-identical) or 'stock'."""

    mode: Literal["fast", "stock"]
    requested: str = ""
    fast_datasets: int = 0  # in the kernel's own process; DataLoader workers are not counted
    stock_datasets: int = 0
    fallbacks: list[str] = Field(default_factory=list)  # why a dataset was served the stock way
    error: str | None = None


class FileEvidence(Record):
    path: str  # relative to the submission
    kind: Literal["notebook", "module", "other"]
    sha256: str
    status: FileStatus
    message: str = ""
    duration_s: float = 0.0
    cells: list[Cell] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    claim_checks: list[ClaimCheck] = Field(default_factory=list)
    definition_problems: list[str] = Field(default_factory=list)
    curves: list[LoggedCurve] | None = None  # None: not recorded (older evidence, or no harvest)
    repairs: list[str] = Field(default_factory=list)  # what was repaired to read the notebook as Jupyter does
    data_path: DataPathUsed | None = None  # None: not recorded (no harvest, or older evidence)


class LayerRow(Record):
    depth: int
    type: str
    name: str
    output_shape: list[int]
    params: int
    leaf: bool


class Accuracy(Record):
    train: float = Field(description="on the training digits (each once)")
    test: float = Field(description="on the holdout split, whose labels no student process sees")
    public_test: float = Field(description="on the notebook's own test split")
    n_train: int
    n_test: int
    n_public_test: int


class LookupCheck(Record):
    """Whether a model's answers come from its trained weights or from a lookup of the digits."""

    perturbed_test: float | None = Field(default=None, description="holdout accuracy on invisibly changed copies")
    perturbed_train: float | None = Field(default=None, description="same, on the first training digits")
    clean_train_subset: float | None = Field(default=None, description="clean accuracy on those training digits")
    untrained_test: float | None = Field(default=None, description="holdout accuracy of a fresh, untrained "
                                                                   "instance of the class")
    suspected: str = Field(default="", description="why the model appears to look answers up (empty: it does not)")
    note: str = ""


class ModelEvidence(Record):
    id: str  # "<file>:<variable>"
    file: str
    variable: str
    class_name: str
    trainable_params: int | None = None
    trainable_params_source: str = ""
    tensor_elements: int = 0
    parameter_elements: int | None = Field(
        default=None, description="values in the saved tensors other than normalisation statistics: counted by "
                                  "the grader alone, whatever the student's code reports as trainable")
    layers: list[LayerRow] = Field(default_factory=list)
    summary_input_shape: list[int] | None = None
    rebuilt_from: str = ""
    transform: str = "ToTensor()"
    accuracy: Accuracy | None = None
    lookup: LookupCheck | None = None
    extra_tensors: list[str] = Field(default_factory=list, description="saved tensors that are neither trainable "
                                                                        "parameters nor normalisation statistics")
    trained: bool | None = Field(default=None, description="the student's run trained it (gradients or optimizer "
                                                           "state left on its parameters): a hint, not a measurement")
    saved_as: str = Field(default="", description="its weights' file name in the student's models/ folder")
    error: str | None = None


class Environment(Record):
    python: str
    torch: str
    torchvision: str
    platform: str
    device: str
    cuda: str | None
    threads: int
    sandbox: str
    gpu_driver: str | None = None  # absent from older evidence and on the CPU
    gpu_memory_cap_gib: float | None = None  # this student's share of the GPU


class Evidence(Record):
    schema_version: int = EVIDENCE_SCHEMA
    grader_version: str
    student: str
    submission_sha256: str
    plan_sha256: str
    data: dict[str, Any]
    environment: Environment
    status: Literal["ok", "error"]
    problems: list[str] = Field(default_factory=list)
    files: list[FileEvidence] = Field(default_factory=list)
    models: list[ModelEvidence] = Field(default_factory=list)
    seed: int = 0
    limits: dict[str, float | int | str] = Field(default_factory=dict)
    started_at: str
    duration_s: float

    @property
    def profile(self) -> str:
        return str(self.data["profile"])


def write_evidence(evidence: Evidence, path: Path) -> None:
    atomic_write_text(path, evidence.model_dump_json(indent=1) + "\n")


def read_evidence(path: Path) -> Evidence:
    return Evidence.model_validate_json(path.read_text(encoding="utf-8"))
