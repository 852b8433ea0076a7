"""What to fix, in plain words, derived from the evidence and the rubric (never hard-coded per assignment).

The architecture hint reads the student's layer table (torchinfo rows: type, output shape,
parameters) and infers each layer's shape (``Linear(784->256)``, ``Conv2d(1->10, 5x5)``); it
then asks which single change would give the handout's parameter count for that layer (the
rubric's ``models.*.layers`` lists only types and counts): more outputs, fewer inputs, another
kernel size. A layer whose outputs differ followed by one whose inputs differ by the same
numbers is one fact, said once: "the hidden layer is 256 wide, the handout says 128".
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from grader.evidence import Evidence, LayerRow, ModelEvidence
from grader.rubric import LayerSpec, ModelSpec
from grader.score import TextFinding

MAX_ERRORS_SHOWN = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Layer:
    """A layer with trainable parameters, with what its torchinfo row tells about its shape."""

    type: str
    params: int
    number: int  # 1-based among the layers of its type
    inputs: int | None = None  # in_features / in_channels
    outputs: int | None = None  # out_features / out_channels
    kernel: int | None = None  # side of a square convolution kernel

    @property
    def name(self) -> str:
        return f"{self.type} {self.number}"

    def label(self) -> str:
        if self.type == "Linear" and self.inputs and self.outputs:
            return f"Linear({self.inputs:,}->{self.outputs:,})"
        if self.type == "Conv2d" and self.inputs and self.outputs:
            kernel = f", {self.kernel}x{self.kernel}" if self.kernel else ""
            return f"Conv2d({self.inputs}->{self.outputs}{kernel})"
        return f"{self.type} ({self.params:,} parameters)"


def _square_root(value: int) -> int | None:
    root = math.isqrt(value) if value > 0 else 0
    return root if root and root * root == value else None


def _layer(row: LayerRow, number: int, before: list[int] | None) -> Layer:
    shape = row.output_shape
    if row.type == "Linear" and shape and shape[-1] > 0 and row.params % shape[-1] == 0:
        outputs = shape[-1]
        per_output = row.params // outputs  # inputs + 1 with a bias, inputs without
        flat = math.prod(before[1:]) if before and len(before) >= 2 else None
        inputs = per_output if flat == per_output else per_output - 1
        return Layer(row.type, row.params, number, inputs or None, outputs)
    if row.type == "Conv2d" and len(shape) == 4 and shape[1] > 0:
        channels = shape[1]
        in_channels = before[1] if before and len(before) == 4 else None
        kernel = None
        if in_channels and row.params % channels == 0 and (row.params // channels - 1) % in_channels == 0:
            kernel = _square_root((row.params // channels - 1) // in_channels)
        return Layer(row.type, row.params, number, in_channels, channels, kernel)
    return Layer(row.type, row.params, number)


def read_layers(model: ModelEvidence, input_shape: tuple[int, ...] = (1, 28, 28)) -> list[Layer]:
    """The layers with trainable parameters, in execution order, with their inferred shapes."""
    layers: list[Layer] = []
    counts: dict[str, int] = {}
    before: list[int] | None = list(model.summary_input_shape or [1, *input_shape])
    for row in model.layers:
        if not row.leaf:
            continue
        if row.params > 0:
            counts[row.type] = counts.get(row.type, 0) + 1
            layers.append(_layer(row, counts[row.type], before))
        if row.output_shape:
            before = row.output_shape
    return layers


# --------------------------------------------------------------------------- one layer against the handout's


@dataclass(frozen=True)
class Difference:
    layer: Layer
    aspect: str  # "outputs", "inputs", "kernel" or "parameters"
    have: int
    want: int


def difference(layer: Layer, want: int, outputs_fixed: bool = False) -> Difference:
    """The one change to ``layer`` that gives the handout's ``want`` parameters, if there is one.

    ``outputs_fixed``: the next layer is the handout's, so this layer's outputs are right
    (260 parameters are 10 channels of 5x5 or 26 of 3x3: the neighbour decides).
    """
    inputs, outputs, kernel = layer.inputs, layer.outputs, layer.kernel
    if layer.type == "Linear" and inputs and outputs:
        if want % (inputs + 1) == 0 and not outputs_fixed:
            return Difference(layer, "outputs", outputs, want // (inputs + 1))
        if want % outputs == 0 and want // outputs > 1:
            return Difference(layer, "inputs", inputs, want // outputs - 1)
    if layer.type == "Conv2d" and inputs and outputs and kernel:
        area = kernel * kernel
        if want % (area * inputs + 1) == 0 and not outputs_fixed:
            return Difference(layer, "outputs", outputs, want // (area * inputs + 1))
        if want % outputs == 0:
            per_output = want // outputs - 1
            side = _square_root(per_output // inputs) if per_output % inputs == 0 else None
            if side:
                return Difference(layer, "kernel", kernel, side)
            if per_output % area == 0 and per_output // area > 0:
                return Difference(layer, "inputs", inputs, per_output // area)
    return Difference(layer, "parameters", layer.params, want)


def _unit(layer: Layer, aspect: str) -> str:
    channels = layer.type.startswith("Conv")
    return {"outputs": "output channels" if channels else "outputs",
            "inputs": "input channels" if channels else "inputs"}.get(aspect, aspect)


def _say(diff: Difference) -> str:
    layer = diff.layer
    if diff.aspect == "outputs":
        return f"{layer.name} has {diff.have:,} {_unit(layer, 'outputs')}, the handout says {diff.want:,}"
    if diff.aspect == "inputs":
        return f"{layer.name} takes {diff.have:,} {_unit(layer, 'inputs')}, the handout's takes {diff.want:,}"
    if diff.aspect == "kernel":
        return f"{layer.name} has a {diff.have}x{diff.have} kernel, the handout's is {diff.want}x{diff.want}"
    return f"{layer.label()} has {diff.have:,} parameters, the handout's {layer.type} has {diff.want:,}"


def _say_all(diffs: list[Difference], linear_count: int) -> list[str]:
    """Each difference in words; an output change and the next layer's matching input change said once."""
    said, index = [], 0
    while index < len(diffs):
        diff = diffs[index]
        after = diffs[index + 1] if index + 1 < len(diffs) else None
        chained = (after is not None and diff.aspect == "outputs" and after.aspect == "inputs"
                   and (diff.have, diff.want) == (after.have, after.want) and diff.layer.type == after.layer.type)
        if chained and after is not None and diff.layer.type == "Linear":
            where = "" if linear_count == 2 else f" between {diff.layer.name} and {after.layer.name}"
            said.append(f"the hidden layer{where} is {diff.have:,} wide, the handout says {diff.want:,}")
            index += 2
        elif chained and after is not None:
            said.append(f"{diff.layer.name} has {diff.have:,} {_unit(diff.layer, 'outputs')}, the handout says "
                        f"{diff.want:,} (so {after.layer.name} takes {diff.have:,} too)")
            index += 2
        else:
            said.append(_say(diff))
            index += 1
    return said


def layer_differences(expected: tuple[LayerSpec, ...], layers: list[Layer]) -> list[str]:
    """How the student's layers with parameters differ from the handout's, in words."""
    have, want = [layer.type for layer in layers], [spec.type for spec in expected]
    matcher = difflib.SequenceMatcher(a=have, b=want, autojunk=False)
    diffs: list[Difference] = []
    structure: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(i2 - i1):
                layer, spec = layers[i1 + offset], expected[j1 + offset]
                if layer.params == spec.params:
                    continue
                following = offset + 1 < i2 - i1 and layers[i1 + offset + 1].params == expected[j1 + offset + 1].params
                diffs.append(difference(layer, spec.params, outputs_fixed=following))
        elif tag == "delete":
            structure += [f"an extra {layer.label()} that the handout does not have" for layer in layers[i1:i2]]
        elif tag == "insert":
            structure += [f"no {spec.type} with {spec.params:,} parameters where the handout has one"
                          for spec in expected[j1:j2]]
        else:
            mine = ", ".join(layer.label() for layer in layers[i1:i2])
            theirs = ", ".join(f"{spec.type} ({spec.params:,} parameters)" for spec in expected[j1:j2])
            structure.append(f"{mine} where the handout has {theirs}")
    said = _say_all(diffs, have.count("Linear"))
    if structure:
        said.insert(0, f"it has {len(layers)} layers with parameters, the handout's has {len(expected)}")
    return said + structure


# --------------------------------------------------------------------------- hints per rubric condition


def architecture_hint(spec: ModelSpec, model: ModelEvidence) -> str:
    count = model.trainable_params
    if count != spec.trainable_params:
        shown = "an unknown number of" if count is None else f"{count:,}"
        head = f"your {model.class_name} has {shown} trainable parameters; expected {spec.trainable_params:,}"
    else:
        head = f"your {model.class_name} has the expected {count:,} trainable parameters but other layers"
    if not spec.layers:
        return head
    if not model.layers:
        return head + " (its layer table could not be read: " + (model.error or "no summary") + ")"
    details = layer_differences(spec.layers, read_layers(model, spec.input_shape))
    return head + (": " + "; ".join(details) if details else "")


def describe_model(spec: ModelSpec, model: ModelEvidence) -> str:
    layers = read_layers(model, spec.input_shape)
    count = "?" if model.trainable_params is None else f"{model.trainable_params:,}"
    text = f"{model.class_name} ({model.variable} in {model.file}): {count} parameters"
    if layers:
        text += ", " + ", ".join(layer.label() for layer in layers)
    return text


def cell_errors(evidence: Evidence, limit: int = MAX_ERRORS_SHOWN) -> list[str]:
    found = []
    for file in evidence.files:
        for cell in file.cells:
            if cell.error is not None:
                value = _ANSI.sub("", cell.error.evalue).strip()
                value = value.splitlines()[0][:160] if value else ""
                said = f"{file.path} cell {cell.index} raised {cell.error.ename}"
                found.append(said + (f": {value}" if value else ""))
            elif cell.status == "timeout":
                found.append(f"{file.path} cell {cell.index} ran past the time limit")
    return found[:limit]


def missing_model_hint(spec: ModelSpec, evidence: Evidence) -> str:
    found = sorted({f"{m.class_name} ({m.trainable_params:,} parameters)" if m.trainable_params is not None
                    else m.class_name for m in evidence.models})
    text = f"no {spec.class_name} was found after running your notebook(s)"
    if found:
        text += (f" (found {', '.join(found)}); name the class {spec.class_name} as the handout does, with "
                 f"{spec.trainable_params:,} trainable parameters")
    else:
        text += f": define the class {spec.class_name}, then create and train it in cells that run without errors"
    if len(evidence.files) == 1:
        text += " (if it is in another notebook, check the folder that holds both)"
    errors = cell_errors(evidence)
    if errors:
        text += "; errors while running: " + "; ".join(errors)
    return text


def claim_mismatches(evidence: Evidence, model: ModelEvidence) -> list[str]:
    said = []
    for file in evidence.files:
        for check in file.claim_checks:
            # test accuracy claimed above the measurement: train accuracy printed during training
            # (dropout on, weights still moving) differs from the final model's by nature
            if (check.model_id == model.id and not check.consistent and check.split == "test"
                    and check.measured is not None and check.claimed > check.measured):
                said.append(f"your notebook reports {check.split} accuracy {check.claimed:.3f} but the grader measured "
                            f"{check.measured:.3f} for the saved {model.class_name}: the model at the end of the "
                            "notebook may not be the one that was trained")
    return said


def accuracy_hint(spec: ModelSpec, model: ModelEvidence | None, evidence: Evidence, reason: str) -> str:
    if model is None:
        return reason
    if model.accuracy is None:
        return (f"the grader could not measure your {model.class_name}: {model.error or 'no measurement'}; it rebuilds "
                "the class from your code and loads the trained weights, so keep the class definition in a cell "
                "of its own that runs without errors")
    training = spec.training
    text = (f"{reason.removeprefix('measured accuracy: ')}: the handout trains for {training.epochs} epochs with "
            f"batch size {training.batch_size} and learning rate {training.lr:g}; check that every epoch ran, that "
            "the loss goes down, and that the model you keep at the end is the trained one")
    mismatches = claim_mismatches(evidence, model)
    return text + ("; " + "; ".join(mismatches) if mismatches else "")


def text_hint(findings: tuple[TextFinding, ...], checks: tuple[str, ...]) -> str:
    """What to write, from the text checks the score sheet ran (``findings``) that the line names (``checks``)."""
    wanted = []
    for finding in findings:
        if finding.name in checks and not finding.result.found:
            wanted.append(f"{finding.description} ({finding.result.detail})")
    if not wanted:
        return ""
    return "write " + "; and ".join(wanted) + " in a markdown or code cell of your notebook"
