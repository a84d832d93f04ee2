"""Per-layer statistics of a trace, for ``procrustes-sim trace inspect``.

For every iteration and layer, :func:`inspect_trace` reports the densities
of W, X and dY and how the weight non-zeros spread over channels: the
minimum, mean and maximum number of non-zero weights per input channel C
and per output channel K. Uneven counts are what load balancers have to
absorb. :func:`plot_densities` draws the densities over the iterations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.trace import Trace


@dataclass(frozen=True)
class LayerStats:
    """Densities and weight non-zeros per channel of one layer in one iteration."""

    iteration: int
    layer: str
    density_w: float
    density_x: float
    density_dy: float
    per_input_channel: tuple[int, float, int]
    per_output_channel: tuple[int, float, int]


def inspect_trace(path: str | os.PathLike[str]) -> tuple[Trace, list[LayerStats]]:
    """Return the opened trace and the statistics of every iteration and layer."""
    trace = Trace.open(path)
    stats = []
    try:
        for iteration in trace.iterations:
            for name in trace.layer_names:
                masks = trace.load(iteration, name)
                density = masks.density()
                # W is (K, C/groups, R, S): sum over the other axes.
                per_input = masks.weights.sum(axis=(0, 2, 3))
                per_output = masks.weights.sum(axis=(1, 2, 3))
                stats.append(LayerStats(iteration, name, density["W"], density["X"],
                                        density["dY"], _spread(per_input),
                                        _spread(per_output)))
    finally:
        trace.close()
    return trace, stats


def _spread(counts: np.ndarray) -> tuple[int, float, int]:
    return int(counts.min()), float(counts.mean()), int(counts.max())


def format_table(trace: Trace, stats: list[LayerStats]) -> str:
    """Return a header and one fixed-width row per iteration and layer."""
    kind = "synthetic" if trace.synthetic else "recorded"
    lines = [f"{trace.describe()} ({kind}, batch {trace.batch}, "
             f"iterations {', '.join(str(i) for i in trace.iterations)})"]
    note = trace.provenance.get("note")
    if note:
        lines.append(f"note: {note}")
    width = max(len("layer"), *(len(row.layer) for row in stats))
    header = (f"{'iter':>6}  {'layer':<{width}}  {'W':>6}  {'X':>6}  {'dY':>6}  "
              f"{'nnz/C min':>9} {'mean':>9} {'max':>7}  {'nnz/K min':>9} {'mean':>9} "
              f"{'max':>7}")
    lines.append(header)
    for row in stats:
        c_min, c_mean, c_max = row.per_input_channel
        k_min, k_mean, k_max = row.per_output_channel
        lines.append(f"{row.iteration:>6}  {row.layer:<{width}}  {row.density_w:6.3f}  "
                     f"{row.density_x:6.3f}  {row.density_dy:6.3f}  {c_min:>9} {c_mean:>9.1f} "
                     f"{c_max:>7}  {k_min:>9} {k_mean:>9.1f} {k_max:>7}")
    return "\n".join(lines)


def check_plot_path(out: str | os.PathLike[str]) -> Path:
    """Return *out* as a Path; raise InputError if its folder or image suffix is wrong."""
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"--plot {str(out)!r}: directory {str(out.parent)!r} does not exist; "
                         "create it first")
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise InputError(f"--plot {str(out)!r} has no .png, .pdf or .svg suffix; name the "
                         "file for the image format")
    return out


def plot_densities(trace: Trace, stats: list[LayerStats],
                   out: str | os.PathLike[str]) -> Path:
    """Save a figure of W, X and dY density per layer over the iterations."""
    out = check_plot_path(out)
    # The Figure API draws without pyplot, so no display or backend is needed.
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.5))
    axes = figure.subplots(1, 3, sharey=True)
    # 20 distinct colours, then solid, dashed and dotted lines: 60 layers
    # before a colour and line style repeat.
    palette = colormaps["tab20"].colors
    styles = ("-", "--", ":")
    for axis, tensor, attribute in zip(axes, ("W", "X", "dY"),
                                       ("density_w", "density_x", "density_dy")):
        for index, name in enumerate(trace.layer_names):
            rows = [row for row in stats if row.layer == name]
            axis.plot([row.iteration for row in rows], [getattr(row, attribute) for row in rows],
                      marker="o", markersize=3, label=name,
                      color=palette[index % len(palette)],
                      linestyle=styles[(index // len(palette)) % len(styles)])
        axis.set_title(f"{tensor} density")
        axis.set_xlabel("iteration")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("fraction of non-zeros")
    axes[0].set_ylim(0, 1.02)
    axes[-1].legend(fontsize=7, ncol=2, loc="best")
    figure.suptitle(trace.describe())
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    return out
