"""The loss curve beside an automatic item: the notebook's own plot, else one drawn from its logged losses."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup

from grader.evidence import Cell, Evidence, FileEvidence, LoggedCurve, ModelEvidence
from grader.render.svg import PALETTE, figure_svg, new_figure

_LOSS = re.compile(r"loss", re.IGNORECASE)
_PLOT = re.compile(r"\bplt\.|\.plot\(|\bplot\(|sns\.|\.lineplot\(")


@dataclass(frozen=True)
class CurveView:
    """The notebook's plot images (``cell`` set), an SVG drawn from ``curves``, or neither (say why)."""

    file: str
    cell: Cell | None = None
    svg: Markup | None = None
    curves: tuple[LoggedCurve, ...] = ()
    recorded: bool = True  # whether the evidence recorded the lists the code logged

    @property
    def source(self) -> str:
        if self.cell is not None:
            return f"plotted by the notebook: {self.file}, cell {self.cell.index}"
        if self.svg is not None:
            names = ", ".join(c.name for c in self.curves)
            return f"drawn by the grader from the lists the code logged ({names}) in {self.file}"
        if not self.recorded:
            return (f"no loss plot in {self.file}; this evidence does not record the losses the code logged "
                    "(collected before the grader did, or the harvest failed): 'grader grade --force' records them")
        return f"no loss curve: {self.file} neither plotted one nor kept its losses in a list named like *loss*"


def plot_cell(file: FileEvidence) -> Cell | None:
    """The first code cell that plots something about the loss and has an image output."""
    for cell in file.cells:
        if cell.cell_type == "code" and cell.images and _LOSS.search(cell.source) and _PLOT.search(cell.source):
            return cell
    return None


def model_curves(file: FileEvidence, model_key: str, model_keys: list[str]) -> list[LoggedCurve]:
    """The file's logged lists; where the module runner trained several models (``<key>_train_losses``),
    only this model's."""
    logged = file.curves or []
    own = [c for c in logged if c.name.startswith(f"{model_key}_")]
    if own:
        return own
    return [c for c in logged if not any(c.name.startswith(f"{key}_") for key in model_keys)]


def _x_axis(curves: list[LoggedCurve], length: int) -> LoggedCurve | None:
    """The counter list as long as the longest loss list, else the longest counter (x values increasing)."""
    counters = [c for c in curves if "counter" in c.name.lower() and len(c.values) >= 2
                and all(a <= b for a, b in zip(c.values, c.values[1:], strict=False))]
    ranked = sorted(counters, key=lambda c: (len(c.values) != length, -len(c.values)))
    return ranked[0] if ranked else None


def draw(curves: list[LoggedCurve], name: str) -> tuple[Markup, list[LoggedCurve]] | None:
    """A line chart of every list named like a loss (two values or more); x: the matching counter, else spread
    evenly over the same range (e.g. one test loss per epoch). Returns the SVG and the lists it used."""
    losses = [c for c in curves if "loss" in c.name.lower() and len(c.values) >= 2]
    if not losses:
        return None
    counter = _x_axis(curves, max(len(c.values) for c in losses))
    figure = new_figure(6.4, 2.8)
    axes = figure.add_subplot()
    span = counter.values[-1] if counter is not None else float(max(len(c.values) for c in losses))
    for number, curve in enumerate(losses):
        if counter is not None and len(counter.values) == len(curve.values):
            xs = list(counter.values)
        else:  # e.g. one test loss per epoch: at the end of each epoch
            xs = [span * (i + 1) / len(curve.values) for i in range(len(curve.values))]
        axes.plot(xs, curve.values, label=curve.name, color=PALETTE[number % len(PALETTE)], linewidth=1.2,
                  marker="o" if len(curve.values) <= 30 else "", markersize=3)
    axes.set_xlabel("training examples seen" if counter is not None else "logged step")
    axes.set_ylabel("loss")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", frameon=False)
    used = [*losses, *([counter] if counter is not None else [])]
    return figure_svg(figure, name, "loss curve drawn from " + ", ".join(c.name for c in losses)), used


def curve_view(evidence: Evidence, model: ModelEvidence, model_key: str, model_keys: list[str]) -> CurveView | None:
    file = next((f for f in evidence.files if f.path == model.file), None)
    if file is None:
        return None
    cell = plot_cell(file)
    if cell is not None:
        return CurveView(file.path, cell=cell)
    curves = model_curves(file, model_key, model_keys)
    drawn = draw(curves, f"loss-{model_key}")
    if drawn is None:
        return CurveView(file.path, recorded=file.curves is not None)
    return CurveView(file.path, svg=drawn[0], curves=tuple(drawn[1]))
