"""The report's charts, drawn by matplotlib as inline SVG: a feature's distribution (with the previous
validated data overlaid) and the training curves.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`) and saved as SVG, so no
pyplot state and no GUI backend is involved (nothing but the non-interactive renderer is ever loaded)
and no TensorFlow is imported. Text stays text (`svg.fonttype: none`) and ids are salted with a fixed
string, so the same data gives the same SVG.
"""
from __future__ import annotations

import io
import re
from typing import Optional, Sequence

from pipeline.statistics import Bucket, FeatureSummary

CURRENT_COLOR, BASELINE_COLOR = "#1f6fb2", "#e8871e"
_RC = {"svg.fonttype": "none", "svg.hashsalt": "tfxpipe-report", "font.size": 8, "axes.spines.top": False,
       "axes.spines.right": False}
_XML_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)


def _svg(figure) -> str:
    """The figure as an `<svg>` element to inline (no XML prolog or DOCTYPE), marked as a report chart."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return _XML_PROLOG.sub("", buffer.getvalue(), count=1).replace("<svg ", '<svg class="chart" role="img" ', 1)


def _figure(width: float = 3.6, height: float = 2.3, columns: int = 1):
    """A figure and its axes (a list of `columns` axes side by side). Margins are fixed rather than computed
    by a layout engine, which would measure every label of every chart again (half of the report's time)."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(width, height))
        figure.subplots_adjust(left=0.75 / width, right=0.97, bottom=0.24, top=0.86, wspace=0.75 / width * columns)
        return figure, figure.subplots(1, columns, squeeze=False)[0].tolist()


def _fractions(buckets: Sequence[Bucket]) -> list[float]:
    total = sum(b.count for b in buckets) or 1.0
    return [b.count / total for b in buckets]


def _numeric(axes, current: FeatureSummary, baseline: Optional[FeatureSummary]) -> None:
    for summary, color, label, fill in ((baseline, BASELINE_COLOR, "previous", False), (current, CURRENT_COLOR, "this run", True)):
        if summary is None or not summary.buckets:
            continue
        edges = [b.low for b in summary.buckets] + [summary.buckets[-1].high]
        if edges[-1] <= edges[0]:  # a constant feature: one zero-width bucket
            axes.bar([edges[0]], [1.0], width=1.0, color=color, alpha=0.6, label=label)
            continue
        axes.stairs(_fractions(summary.buckets), edges, fill=fill, alpha=0.45 if fill else 1.0, color=color,
                    linewidth=1.5, label=label)


def _categorical(axes, current: FeatureSummary, baseline: Optional[FeatureSummary]) -> None:
    labels = [b.label for b in current.buckets]
    if baseline is not None:
        labels += [b.label for b in baseline.buckets if b.label not in labels]
    width = 0.4 if baseline is not None else 0.8
    for offset, summary, color, name in ((-width / 2 if baseline else 0.0, current, CURRENT_COLOR, "this run"),
                                         (width / 2, baseline, BASELINE_COLOR, "previous")):
        if summary is None:
            continue
        fractions = dict(zip((b.label for b in summary.buckets), _fractions(summary.buckets)))
        axes.bar([i + offset for i in range(len(labels))], [fractions.get(label, 0.0) for label in labels],
                 width=width, color=color, alpha=0.8, label=name)
    axes.set_xticks(range(len(labels)), [label[:14] for label in labels], rotation=30 if len(labels) > 3 else 0,
                    ha="right" if len(labels) > 3 else "center")


def distribution_svg(current: FeatureSummary, baseline: Optional[FeatureSummary] = None,
                     distance: Optional[dict] = None) -> str:
    """One feature's distribution (share of examples per bucket or category), the previous validated
    data's overlaid when given, titled with the drift distance and its threshold when measured."""
    figure, [axes] = _figure()
    (_numeric if current.kind == "numeric" else _categorical)(axes, current, baseline)
    title = current.name
    if distance is not None:
        relation = ">" if distance["exceeded"] else "≤"
        title += f"  ({distance['check']} {distance['distance']:.3f} {relation} {distance['threshold']:g})"
    axes.set_title(title, loc="left", color="#b00020" if distance and distance["exceeded"] else "black")
    axes.set_ylabel("share of examples")
    if baseline is not None:  # headroom above the tallest bar keeps the legend off the data
        axes.margins(y=0.4)
        axes.legend(frameon=False, loc="upper right", ncols=2, fontsize=7, handlelength=1.2)
    return _svg(figure)


def training_svg(history: dict[str, list[float]]) -> str:
    """Loss and each metric per epoch, training and validation (`val_`) side by side."""
    names = [name for name in history if not name.startswith("val_") and name != "learning_rate"]
    figure, axes_row = _figure(width=3.4 * max(len(names), 1), height=2.4, columns=max(len(names), 1))
    for axes, name in zip(axes_row, names):
        epochs = range(1, len(history[name]) + 1)
        axes.plot(epochs, history[name], color=CURRENT_COLOR, label="train")
        if f"val_{name}" in history:
            axes.plot(range(1, len(history[f"val_{name}"]) + 1), history[f"val_{name}"], color=BASELINE_COLOR,
                      label="validation")
        axes.set_title(name, loc="left")
        axes.set_xlabel("epoch")
        axes.legend(frameon=False)
    return _svg(figure)
