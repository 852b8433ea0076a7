"""Hand-built evidence for tests of scoring and rendering (no kernel needed)."""

from __future__ import annotations

from typing import Any

from grader.evidence import Accuracy, Cell, Environment, Evidence, FileEvidence, LayerRow, ModelEvidence

MLP_LAYERS = [("MNISTClassifierMLP", 0, 101770, False), ("Flatten", 1, 0, True), ("Linear", 1, 100480, True),
              ("ReLU", 1, 0, True), ("Linear", 1, 1290, True), ("LogSoftmax", 1, 0, True)]
CNN_LAYERS = [("CNN", 0, 8490, False), ("Conv2d", 1, 260, True), ("Conv2d", 1, 5020, True),
              ("Flatten", 1, 0, True), ("Linear", 1, 3210, True)]


def layers(rows: list[tuple[str, int, int, bool]]) -> list[LayerRow]:
    return [LayerRow(depth=d, type=t, name=t.lower(), output_shape=[1, 10], params=p, leaf=leaf)
            for t, d, p, leaf in rows]


def model(class_name: str = "MNISTClassifierMLP", params: int = 101770, train: float = 0.99, test: float = 0.95,
          file: str = "problem2_mlp.ipynb", variable: str = "model", rows: list[Any] | None = None,
          measured: bool = True) -> ModelEvidence:
    if rows is None:
        rows = MLP_LAYERS if params == 101770 else CNN_LAYERS if params == 8490 else []
    return ModelEvidence(
        id=f"{file}:{variable}", file=file, variable=variable, class_name=class_name, trainable_params=params,
        tensor_elements=params, parameter_elements=params, layers=layers(rows),
        accuracy=Accuracy(train=train, test=test, public_test=test, n_train=4000, n_test=500, n_public_test=500)
        if measured else None,
        error=None if measured else "could not rebuild the model",
    )


def markdown(index: int, text: str) -> Cell:
    return Cell(index=index, cell_type="markdown", source=text)


def code(index: int, source: str, output: str = "", status: str = "ok") -> Cell:
    return Cell(index=index, cell_type="code", source=source, status=status, output_text=output)  # type: ignore[arg-type]


CALCULATION = (
    "**Problem 3 C)**\nCNN: 250 + 10 + 5,000 + 20 + 3,200 + 10 = **8,490**\n"
    "MLP: 100,352 + 128 + 1,280 + 10 = **101,770**"
)


def evidence(models: list[ModelEvidence] | None = None, cells: list[Cell] | None = None,
             profile: str = "embedded", student: str = "student") -> Evidence:
    files = [FileEvidence(path="problem2_mlp.ipynb", kind="notebook", sha256="0" * 64, status="completed",
                          cells=cells if cells is not None else [markdown(0, CALCULATION)])]
    return Evidence(
        grader_version="test", student=student, submission_sha256="0" * 64, plan_sha256="0" * 64,
        data={"profile": profile, "description": "test data", "source": "test", "sizes": {}, "sha256": {}},
        environment=Environment(python="3.11", torch="2.14.1", torchvision="0.29.1", platform="linux",
                                device="cpu", cuda=None, threads=1, sandbox="bubblewrap"),
        status="ok", files=files, models=models if models is not None else [
            model(), model("CNN", 8490, 0.95, 0.93, file="problem3_cnn.ipynb")],
        started_at="2026-12-01T00:00:00+00:00", duration_s=1.0,
    )
