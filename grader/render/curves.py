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
    """Either the notebook's plot images (``cell`` set) or an SVG drawn from ``curves``."""

    file: str
    cell: Cell | None = None
    svg: Markup | None = None
    curves: tuple[LoggedCurve, ...] = ()

    @property
    def source(self) -> str:
        if self.cell is not None:
            return f"plotted by the notebook: {self.file}, cell {self.cell.index}"
        names = ", ".join(c.name for c in self.curves)
        return f"drawn by the grader from the lists the code logged ({names}) in {self.file}"


def plot_cell(file: FileEvidence) -> Cell | None:
    """The first code cell that plots something about the loss and has an image output."""
    for cell in file.cells:
        if cell.cell_type == "code" and cell.images and _LOSS.search(cell.source) and _PLOT.search(cell.source):
            return cell
    return None


def model_curves(file: FileEvidence, model_key: str, model_keys: list[str]) -> list[LoggedCurve]:
    """The file's logged lists; where the module runner trained several models (``<key>_train_losses``),
    only this model's."""
    own = [c for c in file.curves if c.name.startswith(f"{model_key}_")]
    if own:
        return own
    return [c for c in file.curves if not any(c.name.startswith(f"{key}_") for key in model_keys)]


def _x_axis(curves: list[LoggedCurve]) -> LoggedCurve | None:
    counters = [c for c in curves if "counter" in c.name.lower()]
    return counters[0] if counters else None


def draw(curves: list[LoggedCurve], name: str) -> Markup | None:
    """A line chart of every list named like a loss; x: the counter when it matches, else spread evenly."""
    losses = [c for c in curves if "loss" in c.name.lower() and c.values]
    if not losses:
        return None
    counter = _x_axis(curves)
    figure = new_figure(6.4, 2.8)
    axes = figure.add_subplot()
    longest = max(len(c.values) for c in losses)
    span = counter.values[-1] if counter and counter.values else float(longest)
    for number, curve in enumerate(losses):
        if counter is not None and len(counter.values) == len(curve.values):
            xs = list(counter.values)
        else:  # e.g. one test loss per epoch: at the end of each epoch
            xs = [span * (i + 1) / len(curve.values) for i in range(len(curve.values))]
        style = {"marker": "o", "markersize": 3} if len(curve.values) <= 30 else {}
        axes.plot(xs, curve.values, label=curve.name, color=PALETTE[number % len(PALETTE)], linewidth=1.2, **style)
    axes.set_xlabel("training examples seen" if counter is not None else "logged step")
    axes.set_ylabel("loss")
    axes.set_ylim(bottom=0)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", frameon=False)
    return figure_svg(figure, name, "loss curve drawn from " + ", ".join(c.name for c in losses))


def curve_view(evidence: Evidence, model: ModelEvidence, model_key: str, model_keys: list[str]) -> CurveView | None:
    file = next((f for f in evidence.files if f.path == model.file), None)
    if file is None:
        return None
    cell = plot_cell(file)
    if cell is not None:
        return CurveView(file.path, cell=cell)
    curves = model_curves(file, model_key, model_keys)
    svg = draw(curves, f"loss-{model_key}")
    return CurveView(file.path, svg=svg, curves=tuple(curves)) if svg is not None else None
