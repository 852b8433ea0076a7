"""What the evidence says about the rubric's models: which of the student's models is which, and how
its architecture differs from the handout's. Pure functions of a rubric model and the evidence;
``grader.score`` computes them once per score sheet and carries them to every view.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.evidence import ModelEvidence
from grader.rubric import ModelSpec


@dataclass(frozen=True)
class ModelMatch:
    model: ModelEvidence
    how: str


def _layer_types(model: ModelEvidence) -> set[str]:
    return {row.type for row in model.layers if row.leaf and row.params > 0}


def fits_kind(spec: ModelSpec, model: ModelEvidence) -> bool:
    """The model is the kind of network ``spec`` is: convolutions for a CNN, only dense layers for an MLP."""
    types = _layer_types(model)
    convolutional = any(t.startswith("Conv") for t in types)
    return bool(types) and convolutional == spec.convolutional and (convolutional or "Linear" in types)


def match_model(spec: ModelSpec, models: list[ModelEvidence]) -> ModelMatch | None:
    """The student's model for ``spec``: by class name, else by exact trainable parameter count, else by kind.

    Among several candidates (re-run cells, an untrained copy) the choice goes by name and
    architecture, then to one the run trained, then by the accuracy on the notebook's *own* test
    split (which the notebook can compute itself); never by the held-out accuracy it would score.
    """

    def rank(model: ModelEvidence) -> tuple[bool, bool, bool, float]:
        accuracy = model.accuracy.public_test if model.accuracy else -1.0
        return (model.trainable_params == spec.trainable_params, model.trained is not False,
                model.accuracy is not None, accuracy)

    def where(model: ModelEvidence) -> str:
        return f"{model.variable} in {model.file}"

    by_name = [m for m in models if m.class_name == spec.class_name]
    if by_name:
        best = max(by_name, key=rank)
        return ModelMatch(best, f"class {spec.class_name} ({where(best)})")
    by_count = [m for m in models if m.trainable_params == spec.trainable_params]
    if by_count:
        best = max(by_count, key=rank)
        return ModelMatch(best, f"class {best.class_name} ({where(best)}), matched by its "
                                f"{spec.trainable_params:,} trainable parameters: no class named {spec.class_name}")
    by_kind = [m for m in models if fits_kind(spec, m)]
    if by_kind:
        best = max(by_kind, key=rank)
        kind = "convolution layers" if spec.convolutional else "only dense (Linear) layers"
        trained = " the run trained" if best.trained else ""
        others = len({m.class_name for m in by_kind}) - 1
        choice = f"; of {others + 1} such classes, the one{trained} with the best accuracy on the notebook's own " \
                 "test split" if others else ""
        taken = spec.description or spec.class_name
        return ModelMatch(best, f"class {best.class_name} ({where(best)}), taken as the {taken}: no class named "
                                f"{spec.class_name} and none with {spec.trainable_params:,} trainable parameters; "
                                f"{best.class_name} is the network{trained} with {kind}{choice}")
    return None


def found_list(models: list[ModelEvidence]) -> str:
    if not models:
        return "no trained model was found"
    shown = sorted({f"{m.class_name} ({m.trainable_params:,} parameters)" if m.trainable_params is not None
                    else m.class_name for m in models})
    return "found: " + ", ".join(shown)


def architecture_problems(spec: ModelSpec, model: ModelEvidence) -> list[str]:
    problems = []
    if model.trainable_params != spec.trainable_params:
        count = "an unknown number of" if model.trainable_params is None else f"{model.trainable_params:,}"
        problems.append(f"{model.class_name} has {count} trainable parameters; expected {spec.trainable_params:,}")
    elif model.parameter_elements is not None and model.parameter_elements != spec.trainable_params:
        extra = f" (tensors beyond its trainable parameters: {', '.join(model.extra_tensors[:5])})" \
            if model.extra_tensors else ""
        problems.append(f"{model.class_name}'s saved tensors hold {model.parameter_elements:,} parameter values, "
                        f"of which {model.trainable_params:,} are reported trainable (a frozen or hidden extra "
                        f"layer?){extra}; the handout's model has {spec.trainable_params:,}")
    if spec.layers and model.layers:
        have = [(row.type, row.params) for row in model.layers if row.leaf and row.params > 0]
        want = [(layer.type, layer.params) for layer in spec.layers]
        if have != want:
            shown = ", ".join(f"{t} {p:,}" for t, p in have) or "none"
            expected = ", ".join(f"{t} {p:,}" for t, p in want)
            problems.append(f"layers with parameters [{shown}] differ from the handout's [{expected}]")
    return problems
