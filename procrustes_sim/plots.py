"""Figures of a run, ready for a paper: energy, speedup, cycles, load imbalance, density.

Every figure function takes a results folder written by ``procrustes-sim
run``, a :class:`~procrustes_sim.report.Report` or
:class:`~procrustes_sim.results.Results`, and returns a matplotlib
:class:`~matplotlib.figure.Figure`. :func:`plot` draws the chosen kinds
and writes them as PNG, SVG or PDF.

Figures are built with the object-oriented Figure API and never through
pyplot, so no window opens, no display is needed and the caller's
pyplot state is untouched. Each energy component and each cycle category
keeps its colour in every figure.

Per-layer figures show the sum over passes as a mean per iteration (a
minibatch of ``batch`` samples). The subtitle gives the number of
iterations averaged and whether the trace was synthetic.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from procrustes_sim.errors import InputError
from procrustes_sim.results import (FORMATS, KINDS, PASSES, Results, load_results,
                                    output_folder, prepare_folder, write_atomic)

log = logging.getLogger(__name__)

# Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
COMPONENT_COLOURS = {
    "mac": "#0072B2",
    "rf": "#56B4E9",
    "glb": "#009E73",
    "noc": "#F0E442",
    "dram": "#D55E00",
    "metadata": "#CC79A7",
    "quantile": "#E69F00",
    "prng": "#999999",
    "overflow": "#332288",
    "encode": "#117733",
    "transpose": "#882255",
}
# Components not listed above get one of these, chosen by a hash of the name,
# so a new component has the same colour in every figure and every run.
_SPARE_COLOURS = ("#44AA99", "#DDCC77", "#AA4499", "#661100", "#6699CC", "#888888",
                  "#000000", "#EE7733")

# (layers.csv column, legend label, colour) of the cycle categories.
CYCLE_PARTS = (
    ("useful_cycles", "compute (useful)", "#0072B2"),
    ("memory_stall_cycles", "memory stall", "#D55E00"),
    ("imbalance_stall_cycles", "imbalance stall", "#E69F00"),
    ("mapping_stall_cycles", "mapping stall", "#999999"),
)
DENSE_COLOUR = "#BBBBBB"
DENSE_HATCH = "////"
SPEEDUP_COLOUR = "#0072B2"
ENERGY_RATIO_COLOUR = "#009E73"
TENSOR_COLOURS = {"W": "#332288", "X": "#117733", "dY": "#AA4499"}

# Unit names and their size in pJ, or in cycles, largest first.
ENERGY_UNITS = (("J", 1e12), ("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3), ("pJ", 1.0))
CYCLE_UNITS = (("billions", 1e9), ("millions", 1e6), ("thousands", 1e3), ("", 1.0))

# Above this many layers, per-layer charts use horizontal bars with the
# layer names down the left, so that 50 or more names stay readable.
MAX_VERTICAL_LAYERS = 16
# Above this many layers, the density figure draws heatmaps instead of lines.
MAX_DENSITY_LINES = 12
# Above this many steps, the imbalance heatmap averages consecutive steps.
MAX_HEATMAP_STEPS = 500

# Bar width in the network-total panels. The sparse bar is centred at
# -TOTAL_WIDTH / 2 and the dense bar at +TOTAL_WIDTH / 2.
TOTAL_WIDTH = 0.36

PNG_DPI = 200

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "hatch.linewidth": 0.6,
    # Text stays text in SVG, and PDF embeds TrueType fonts as publishers require.
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    # A fixed salt makes the SVG element ids, and so the file, the same on every run.
    "svg.hashsalt": "procrustes-sim",
}

# Metadata entries set to None so that the same figure gives the same bytes.
_NO_DATE = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


@dataclass
class PlotItem:
    """One drawn figure with the file stem and a caption for report pages."""

    kind: str
    stem: str
    figure: Figure
    caption: str


def component_colour(name: str) -> str:
    """Return the fixed colour of an energy component, the same in every figure."""
    if name in COMPONENT_COLOURS:
        return COMPONENT_COLOURS[name]
    return _SPARE_COLOURS[zlib.crc32(name.encode("utf-8")) % len(_SPARE_COLOURS)]


def energy_unit(largest_pj: float) -> tuple[str, float]:
    """Return the unit name and size in pJ that show *largest_pj* as a number from 1 to 1000."""
    for name, size in ENERGY_UNITS:
        if largest_pj >= size:
            return name, size
    return ENERGY_UNITS[-1]


def cycle_unit(largest: float) -> tuple[str, float]:
    """Return the unit word ("millions" etc., or "") and size that show *largest* below 1000."""
    for name, size in CYCLE_UNITS:
        if largest >= size:
            return name, size
    return CYCLE_UNITS[-1]


def _cycles_label(prefix: str, unit: str) -> str:
    return f"{prefix} ({unit})" if unit else prefix


def _finite_max(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite, default=0.0)


# Layout helpers ---------------------------------------------------------------


def _styled(function):
    """Run a figure function under STYLE, which fixes fonts as its artists are created."""
    @functools.wraps(function)
    def styled(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)
    return styled


def _new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _horizontal(layer_count: int) -> bool:
    return layer_count > MAX_VERTICAL_LAYERS


def _name_fontsize(layer_count: int) -> float:
    if layer_count <= 24:
        return 8
    return 7 if layer_count <= 64 else 6


def _bar(ax, positions, values, base, width, horizontal, **style):
    if horizontal:
        container = ax.barh(positions, values, height=width, left=base, **style)
    else:
        container = ax.bar(positions, values, width=width, bottom=base, **style)
    # Matplotlib pins the value axis to each bar's base. The base of a
    # zero-height segment on top of a stack is the stack's top, which would
    # remove the margin above the longest bar, so only 0 stays pinned.
    for patch in container:
        edges = patch.sticky_edges.x if horizontal else patch.sticky_edges.y
        edges[:] = [0.0]
    return container


def _label_layers(ax, names, positions, horizontal: bool) -> None:
    """Put layer names on the category axis of *ax* and a grid along the value axis."""
    size = _name_fontsize(len(names))
    if horizontal:
        ax.set_yticks(positions, list(names), fontsize=size)
        ax.set_ylim(max(positions) + 0.7, min(positions) - 0.7)
        ax.grid(axis="x", linewidth=0.4, alpha=0.5)
        ax.tick_params(axis="x", labelsize=STYLE["xtick.labelsize"])
    else:
        longest = max((len(name) for name in names), default=0)
        rotate = len(names) > 6 or longest > 8
        ax.set_xticks(positions, list(names), fontsize=size, rotation=45 if rotate else 0,
                      ha="right" if rotate else "center", rotation_mode="anchor")
        ax.set_xlim(min(positions) - 0.7, max(positions) + 0.7)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)
        ax.tick_params(axis="y", labelsize=STYLE["ytick.labelsize"])


def _set_value_label(ax, text: str, horizontal: bool) -> None:
    if horizontal:
        ax.set_xlabel(text)
    else:
        ax.set_ylabel(text)


def _panel_pairs(figure: Figure, count: int, horizontal: bool, layer_count: int):
    """Lay out *count* (per-layer axes, total axes) pairs and return them.

    With vertical bars each pair is a row: the per-layer panel, then a
    narrow total panel. With horizontal bars each pair is a column: a short
    total panel on top of the tall per-layer panel. Per-layer panels share
    both axes, and so do total panels.
    """
    if horizontal:
        grid = figure.add_gridspec(2, count, height_ratios=[1.0, 0.2 * layer_count + 0.4])
        cells = [(grid[1, i], grid[0, i]) for i in range(count)]
    else:
        # The total panel keeps room for its axis label and two bar names.
        grid = figure.add_gridspec(count, 2, width_ratios=[max(layer_count, 3),
                                                           max(2.0, 0.3 * layer_count)])
        cells = [(grid[i, 0], grid[i, 1]) for i in range(count)]
    pairs = []
    for layer_cell, total_cell in cells:
        first_layer = pairs[0][0] if pairs else None
        first_total = pairs[0][1] if pairs else None
        layer_ax = figure.add_subplot(layer_cell, sharex=first_layer, sharey=first_layer)
        total_ax = figure.add_subplot(total_cell, sharex=first_total, sharey=first_total)
        pairs.append((layer_ax, total_ax))
    return pairs


def _label_shared_layers(axes, names, horizontal: bool) -> None:
    """Name the layers once on panels that share the layer axis.

    Shared axes share their tick formatter, so the names are set once and
    hidden on the inner panels: all but the first column of horizontal
    bars, all but the bottom row of vertical bars.
    """
    # Font size and rotation belong to the label texts of one axes, so they
    # are set on the panel that shows the names.
    labelled = axes[0] if horizontal else axes[-1]
    _label_layers(labelled, names, np.arange(len(names)), horizontal)
    for ax in axes:
        if ax is not labelled:
            ax.tick_params(labelleft=False) if horizontal else ax.tick_params(labelbottom=False)


def _pair_size(count: int, horizontal: bool, layer_count: int) -> tuple[float, float]:
    if horizontal:
        return (max(7.0, 3.0 + 2.6 * count), 2.6 + 0.2 * layer_count)
    return (7.0, 1.4 + 2.6 * count)


def _legend_below(figure: Figure, handles, max_columns: int) -> None:
    """Put a legend under the axes in as many columns as fit the figure's width."""
    # Width of one entry in inches: the text at about 0.6 em per character,
    # plus the handle and the gaps, at the legend font size.
    size = STYLE["legend.fontsize"] / 72
    longest = max(len(handle.get_label()) for handle in handles)
    entry = longest * 0.6 * size + 4 * size
    fitting = max(1, int(figure.get_figwidth() * 0.95 // entry))
    figure.legend(handles=handles, loc="outside lower center", frameon=False,
                  ncols=min(len(handles), max_columns, fitting))


def _set_title(figure: Figure, *lines: str) -> None:
    """Set the figure title, wrapping each line to the figure's width."""
    # About 13 characters per inch at the 10-point title size.
    width = max(40, int(figure.get_figwidth() * 13))
    figure.suptitle("\n".join(textwrap.fill(line, width, break_on_hyphens=False)
                               for line in lines))


def _finish(figure: Figure, title: str, results: Results, handles, legend_columns: int) -> None:
    _set_title(figure, title, results.context())
    if handles:
        _legend_below(figure, handles, legend_columns)


def _energy_handles(components) -> list:
    handles = [Patch(facecolor=component_colour(name), label=name) for name in components]
    handles.append(Patch(facecolor="white", edgecolor="#333333", label="sparse run (plain)"))
    handles.append(Patch(facecolor="white", edgecolor="#333333", hatch=DENSE_HATCH,
                         label="dense baseline (hatched)"))
    return handles


# Energy -----------------------------------------------------------------------


def _energy_columns(components, run: str) -> list[str]:
    return [f"{run}_energy_{name}_pj" for name in components]


def _draw_energy_stacks(ax, categories, values_of, components, unit_size, horizontal,
                        width=0.38) -> None:
    """Draw sparse and dense stacked bars for each category.

    *values_of(category, run)* returns {column: pJ}. Every bar container is
    labelled "<run> <component>", for example "dense dram".
    """
    positions = np.arange(len(categories), dtype=float)
    for run, offset, hatch in (("sparse", -width / 2, None), ("dense", width / 2, DENSE_HATCH)):
        base = np.zeros(len(categories))
        for name, column in zip(components, _energy_columns(components, run)):
            heights = np.array([values_of(c, run)[column] for c in categories]) / unit_size
            edge = "#333333" if hatch else "none"
            _bar(ax, positions + offset, heights, base, width, horizontal,
                 color=component_colour(name), hatch=hatch, edgecolor=edge, linewidth=0,
                 label=f"{run} {name}")
            base = base + heights


def _largest_stack(tables, components) -> float:
    largest = 0.0
    for table in tables:
        for run in ("sparse", "dense"):
            largest = max(largest, sum(table[c] for c in _energy_columns(components, run)))
    return largest


def drawn_components(source) -> tuple[str, ...]:
    """Return the energy components that the energy figures show: those with energy in either run.

    A component that is zero everywhere (a cost not charged in this run)
    would only add an empty legend entry.
    """
    results = load_results(source)
    columns = _energy_columns(results.components, "sparse") + _energy_columns(
        results.components, "dense")
    totals = results.total(columns)
    return tuple(name for name in results.components
                 if totals[f"sparse_energy_{name}_pj"] or totals[f"dense_energy_{name}_pj"])


def _energy_panels(results: Results, passes: list[str | None], title: str) -> Figure:
    components = drawn_components(results)
    columns = _energy_columns(components, "sparse") + _energy_columns(components, "dense")
    layers = results.layers
    horizontal = _horizontal(len(layers))
    per_layer = {p: results.per_layer(columns, p) for p in passes}
    totals = {p: results.total(columns, p) for p in passes}

    layer_unit, layer_size = energy_unit(
        _largest_stack([t for p in passes for t in per_layer[p].values()], components))
    total_unit, total_size = energy_unit(_largest_stack(totals.values(), components))

    figure = _new_figure(*_pair_size(len(passes), horizontal, len(layers)))
    pairs = _panel_pairs(figure, len(passes), horizontal, len(layers))
    for pass_, (layer_ax, total_ax) in zip(passes, pairs):
        scope = pass_ or "all passes"
        _draw_energy_stacks(layer_ax, layers, lambda layer, run, p=pass_: per_layer[p][layer],
                            components, layer_size, horizontal)
        layer_ax.set_title(f"{scope}: per layer")
        _set_value_label(layer_ax, f"Energy per iteration ({layer_unit})", horizontal)

        _draw_energy_stacks(total_ax, ["network"], lambda _, run, p=pass_: totals[p],
                            components, total_size, horizontal, width=TOTAL_WIDTH)
        _label_total_axis(total_ax, horizontal)
        total_ax.set_title("network total" if pass_ is None else f"{scope}: total")
        _set_value_label(total_ax, f"Energy per iteration ({total_unit})", horizontal)
    _label_shared_layers([pair[0] for pair in pairs], layers, horizontal)
    _finish(figure, title, results, _energy_handles(components), legend_columns=5)
    return figure


def _label_total_axis(ax, horizontal: bool) -> None:
    ticks = [-TOTAL_WIDTH / 2, TOTAL_WIDTH / 2]
    if horizontal:
        ax.set_yticks(ticks, ["sparse", "dense"])
        ax.set_ylim(0.55, -0.55)
        ax.grid(axis="x", linewidth=0.4, alpha=0.5)
    else:
        ax.set_xticks(ticks, ["sparse", "dense"])
        ax.set_xlim(-0.55, 0.55)
        ax.grid(axis="y", linewidth=0.4, alpha=0.5)


@_styled
def energy_figure(source) -> Figure:
    """Draw the energy per layer and of the network, stacked by component, sparse beside dense."""
    results = load_results(source)
    return _energy_panels(results, [None], "Energy by component, sparse run and dense baseline")


@_styled
def energy_pass_figure(source) -> Figure:
    """Draw the energy figure for each pass (FW, BW, WU), with each pass's network total."""
    results = load_results(source)
    return _energy_panels(results, list(results.passes),
                          "Energy by component and pass, sparse run and dense baseline")


# Speedup and energy ratio -----------------------------------------------------


def ratio_table(source) -> dict[str, dict[str, float]]:
    """Compute the speedup and energy ratio of each layer (all passes) and of the network.

    The network's entry is named "network".

    Ratios are of sums, dense over sparse; a layer with no sparse cycles or
    energy gets NaN.
    """
    results = load_results(source)
    columns = ("sparse_cycles", "dense_cycles", "sparse_energy_pj", "dense_energy_pj")
    table = dict(results.per_layer(columns))
    table["network"] = results.total(columns)
    return {name: {"speedup": _ratio(row["dense_cycles"], row["sparse_cycles"]),
                   "energy_ratio": _ratio(row["dense_energy_pj"], row["sparse_energy_pj"])}
            for name, row in table.items()}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


@_styled
def speedup_figure(source) -> Figure:
    """Draw the speedup and energy ratio against the dense baseline per layer and in total."""
    results = load_results(source)
    table = ratio_table(results)
    layers = list(results.layers)
    horizontal = _horizontal(len(layers))
    # The network total sits one slot apart from the layers, after a separator.
    positions = np.append(np.arange(len(layers), dtype=float), len(layers) + 0.5)
    names = layers + ["network total"]

    if horizontal:
        figure = _new_figure(7.0, 2.0 + 0.2 * len(names))
    else:
        figure = _new_figure(7.0, 3.8)
    ax = figure.add_subplot()
    width = 0.38
    for offset, key, label, colour in (
            (-width / 2, "speedup", "speedup (dense cycles / sparse cycles)", SPEEDUP_COLOUR),
            (width / 2, "energy_ratio", "energy ratio (dense energy / sparse energy)",
             ENERGY_RATIO_COLOUR)):
        values = np.array([table[name][key] for name in layers + ["network"]])
        container = _bar(ax, positions + offset, values, 0.0, width, horizontal, color=colour,
                         label=label)
        # The network bars get a black outline and a label with their value.
        for patch in container.patches[-1:]:
            patch.set_edgecolor("black")
            patch.set_linewidth(0.8)
        # Inside the bar, so that the labels of the two network bars cannot
        # overlap each other whatever their heights.
        ax.bar_label(container, labels=[""] * len(layers) + [f"{values[-1]:.2f}×"],
                     label_type="center", color="white", fontweight="bold", fontsize=7,
                     rotation=0 if horizontal else 90)

    separator = len(layers) - 0.25
    if horizontal:
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--", label="dense baseline (1×)")
        ax.axhline(separator, color="#666666", linewidth=0.6)
    else:
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="dense baseline (1×)")
        ax.axvline(separator, color="#666666", linewidth=0.6)
    _label_layers(ax, names, positions, horizontal)
    # The network label is bold so that the total is easy to tell from the layers.
    labels = ax.get_yticklabels() if horizontal else ax.get_xticklabels()
    labels[-1].set_fontweight("bold")
    _set_value_label(ax, "Dense / sparse (×, higher is better)", horizontal)
    largest = _finite_max([table[n][k] for n in table for k in ("speedup", "energy_ratio")])
    limit = max(largest, 1.0) * 1.15
    (ax.set_xlim if horizontal else ax.set_ylim)(0, limit)

    handles, _ = ax.get_legend_handles_labels()
    _finish(figure, "Speedup and energy ratio against the dense baseline", results, handles,
            legend_columns=3)
    return figure


# Cycles -----------------------------------------------------------------------


@_styled
def cycles_figure(source) -> Figure:
    """Draw the sparse cycles per layer split into compute and stalls, beside the dense cycles."""
    results = load_results(source)
    columns = [part[0] for part in CYCLE_PARTS] + ["sparse_cycles", "dense_cycles"]
    layers = results.layers
    horizontal = _horizontal(len(layers))
    per_layer = results.per_layer(columns)
    total = results.total(columns)

    def largest(rows):
        return _finite_max([max(sum(r[c] for c, _, _ in CYCLE_PARTS), r["dense_cycles"])
                            for r in rows])

    layer_unit, layer_size = cycle_unit(largest(per_layer.values()))
    total_unit, total_size = cycle_unit(largest([total]))

    figure = _new_figure(*_pair_size(1, horizontal, len(layers)))
    (layer_ax, total_ax), = _panel_pairs(figure, 1, horizontal, len(layers))
    _draw_cycle_stacks(layer_ax, [per_layer[layer] for layer in layers], layer_size, horizontal)
    _label_shared_layers([layer_ax], layers, horizontal)
    layer_ax.set_title("per layer (all passes)")
    _set_value_label(layer_ax, _cycles_label("Cycles per iteration", layer_unit), horizontal)

    _draw_cycle_stacks(total_ax, [total], total_size, horizontal, width=TOTAL_WIDTH)
    _label_total_axis(total_ax, horizontal)
    total_ax.set_title("network total")
    _set_value_label(total_ax, _cycles_label("Cycles per iteration", total_unit), horizontal)

    handles = [Patch(facecolor=colour, label=label) for _, label, colour in CYCLE_PARTS]
    handles.append(Patch(facecolor=DENSE_COLOUR, edgecolor="#333333", hatch=DENSE_HATCH,
                         label="dense baseline (total)"))
    _finish(figure, "Cycles of the sparse run: compute and stalls", results, handles,
            legend_columns=5)
    return figure


def _draw_cycle_stacks(ax, rows, unit_size, horizontal, width=0.38) -> None:
    """Draw the stacked sparse cycle parts and a dense bar beside them for each row.

    Containers are labelled with the layers.csv column they show.
    """
    positions = np.arange(len(rows), dtype=float)
    base = np.zeros(len(rows))
    for column, _, colour in CYCLE_PARTS:
        heights = np.array([row[column] for row in rows]) / unit_size
        _bar(ax, positions - width / 2, heights, base, width, horizontal, color=colour,
             linewidth=0, label=column)
        base = base + heights
    dense = np.array([row["dense_cycles"] for row in rows]) / unit_size
    _bar(ax, positions + width / 2, dense, 0.0, width, horizontal, color=DENSE_COLOUR,
         hatch=DENSE_HATCH, edgecolor="#333333", linewidth=0, label="dense_cycles")


# Load imbalance ---------------------------------------------------------------


def bin_steps(work: np.ndarray, max_steps: int = MAX_HEATMAP_STEPS) -> tuple[np.ndarray, int]:
    """Average consecutive steps of *work* (steps, PEs) into at most *max_steps* bins.

    Returns the binned array of shape (bins, PEs) and the steps per bin.
    The last bin may hold fewer steps and is the mean of those it holds.
    """
    steps = work.shape[0]
    size = max(1, math.ceil(steps / max_steps))
    if size == 1:
        return work.astype(float), 1
    bins = math.ceil(steps / size)
    padded = np.full((bins * size, work.shape[1]), np.nan)
    padded[:steps] = work
    return np.nanmean(padded.reshape(bins, size, work.shape[1]), axis=1), size


@_styled
def imbalance_figure(source, layer: str, pass_: str, iteration: int | None = None) -> Figure:
    """Draw a heatmap of MACs per PE over the steps of one layer and pass, from pe_work.npz.

    The PE index is row * cols + col. Above MAX_HEATMAP_STEPS steps,
    consecutive steps are averaged into bins, and the title gives the
    number of steps per bin. A panel above shows the busiest PE's and the mean
    PE's work per step, whose gap is the imbalance stall.
    """
    results = load_results(source)
    if pass_ not in PASSES:
        raise InputError(f"pass {pass_!r} is invalid; give one of {', '.join(PASSES)}")
    recorded = [key for key in results.pe_work_keys() if key[1] == layer and key[2] == pass_
                and (iteration is None or key[0] == iteration)]
    work = results.pe_work(layer, pass_, iteration)
    iteration = recorded[0][0]
    steps, rows, cols = work.shape
    flat = work.reshape(steps, rows * cols)
    binned, size = bin_steps(flat)
    busiest, _ = bin_steps(flat.max(axis=1, keepdims=True))
    mean, _ = bin_steps(flat.mean(axis=1, keepdims=True))

    figure = _new_figure(7.0, 5.2)
    grid = figure.add_gridspec(2, 2, height_ratios=[1, 3], width_ratios=[40, 1])
    line_ax = figure.add_subplot(grid[0, 0])
    heat_ax = figure.add_subplot(grid[1, 0], sharex=line_ax)
    bar_ax = figure.add_subplot(grid[1, 1])

    centres = (np.arange(binned.shape[0]) + 0.5) * size
    centres = np.minimum(centres, steps)
    line_ax.plot(centres, busiest[:, 0], color="#D55E00", linewidth=0.8, label="busiest PE")
    line_ax.plot(centres, mean[:, 0], color="#0072B2", linewidth=0.8, label=f"mean of all {rows * cols} PEs")
    line_ax.set_ylabel("MACs per step")
    line_ax.set_ylim(bottom=0)
    line_ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    line_ax.tick_params(labelbottom=False)

    image = heat_ax.imshow(binned.T, aspect="auto", interpolation="nearest", cmap="viridis",
                           origin="upper", extent=(0, binned.shape[0] * size, rows * cols, 0),
                           vmin=0)
    heat_ax.set_xlim(0, steps)
    heat_ax.set_xlabel("Step")
    heat_ax.set_ylabel(f"PE index (row × {cols} + column)")
    bar = figure.colorbar(image, cax=bar_ax)
    bar.set_label("MACs per step" if size == 1 else f"MACs per step (mean of {size} steps)")

    binning = "" if size == 1 else f", {size} steps per column"
    _set_title(figure, f"Work per PE: layer {layer}, {pass_}, iteration {iteration}",
               f"{steps} lock-step steps on {rows}×{cols} PEs{binning}, as mapped, "
               "before any balancing",
               results.context(averaged=False))
    handles, _ = line_ax.get_legend_handles_labels()
    _legend_below(figure, handles, 2)
    return figure


# Density ------------------------------------------------------------------------


def density_table(source, trace=None) -> dict[str, dict[int, dict[str, float]]]:
    """Read the density of W, X and dY of each layer in each trace iteration.

    Returns ``{layer: {iteration: {"W": ..., "X": ..., "dY": ...}}}``.

    *trace* is a path or an open Trace; without it, the trace path in
    summary.json is used. Each layer's masks are read with Trace.load.
    """
    from procrustes_sim.trace import Trace

    results = load_results(source)
    if trace is None:
        trace = results.trace_path()
    opened = trace if isinstance(trace, Trace) else Trace.open(trace)
    try:
        if opened.workload_name != results.workload:
            raise InputError(f"trace {str(opened.path)!r} is of workload "
                             f"{opened.workload_name!r}, but the results are of "
                             f"{results.workload!r}; give the trace that the run replayed")
        batch = results.summary.get("batch")
        if batch is not None and batch != opened.batch:
            raise InputError(f"trace {str(opened.path)!r} has batch {opened.batch}, but the "
                             f"run used batch {batch}; give the trace that the run replayed")
        missing = [layer for layer in results.layers if layer not in opened.layer_names]
        if missing:
            raise InputError(f"trace {str(opened.path)!r} has no layer {missing[0]!r}; give "
                             "the trace that the run replayed")
        table = {}
        for layer in results.layers:
            table[layer] = {i: opened.load(i, layer).density() for i in opened.iterations}
            log.debug("read the densities of layer %s", layer)
        return table
    finally:
        if opened is not trace:
            opened.close()


@_styled
def density_figure(source, trace=None) -> Figure:
    """Draw the density of W, X and dY over training iterations, per layer, from the trace.

    With one iteration, grouped bars per layer. With several, one line per
    layer in a panel per tensor, or a layer-by-iteration heatmap per tensor
    when there are more than MAX_DENSITY_LINES layers.
    """
    results = load_results(source)
    table = density_table(results, trace)
    layers = list(table)
    iterations = sorted(next(iter(table.values())))
    tensors = tuple(TENSOR_COLOURS)

    if len(iterations) == 1:
        figure = _density_bars(table, layers, iterations[0])
        title = f"Density (fraction of non-zeros) of W, X and dY, iteration {iterations[0]}"
    else:
        if len(layers) <= MAX_DENSITY_LINES:
            figure = _density_lines(table, layers, iterations, tensors)
        else:
            figure = _density_heatmaps(table, layers, iterations, tensors)
        title = "Density (fraction of non-zeros) of W, X and dY over training iterations"
    _set_title(figure, title, _trace_context(results))
    return figure


def _trace_context(results: Results) -> str:
    # Densities come from every iteration of the trace, so the mean count does not apply.
    parts = [results.workload]
    if results.summary.get("batch"):
        parts.append(f"batch {results.summary['batch']}")
    if results.synthetic:
        parts.append("synthetic trace")
    return ", ".join(parts)


def _density_bars(table, layers, iteration) -> Figure:
    horizontal = _horizontal(len(layers))
    size = (7.0, 2.0 + 0.2 * len(layers)) if horizontal else (7.0, 3.6)
    figure = _new_figure(*size)
    ax = figure.add_subplot()
    positions = np.arange(len(layers), dtype=float)
    width = 0.27
    for index, (tensor, colour) in enumerate(TENSOR_COLOURS.items()):
        values = [table[layer][iteration][tensor] for layer in layers]
        _bar(ax, positions + (index - 1) * width, values, 0.0, width, horizontal, color=colour,
             label=tensor)
    _label_layers(ax, layers, positions, horizontal)
    _set_value_label(ax, "Density (fraction non-zero)", horizontal)
    (ax.set_xlim if horizontal else ax.set_ylim)(0, 1)
    handles, _ = ax.get_legend_handles_labels()
    _legend_below(figure, handles, 3)
    return figure


def _density_lines(table, layers, iterations, tensors) -> Figure:
    figure = _new_figure(7.0, 3.4)
    axes = figure.subplots(1, len(tensors), sharey=True)
    colours = matplotlib.colormaps["tab10" if len(layers) <= 10 else "tab20"].colors
    for ax, tensor in zip(axes, tensors):
        for index, layer in enumerate(layers):
            ax.plot(iterations, [table[layer][i][tensor] for i in iterations], marker="o",
                    markersize=3, linewidth=1.0, color=colours[index % len(colours)],
                    label=layer)
        ax.set_title(tensor)
        ax.set_xlabel("Training iteration")
        ax.grid(linewidth=0.4, alpha=0.5)
        ax.set_ylim(0, 1)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel("Density (fraction non-zero)")
    handles, _ = axes[0].get_legend_handles_labels()
    _legend_below(figure, handles, 6)
    return figure


def _density_heatmaps(table, layers, iterations, tensors) -> Figure:
    figure = _new_figure(8.0, 2.4 + 0.16 * len(layers))
    grid = figure.add_gridspec(1, len(tensors) + 1, width_ratios=[10] * len(tensors) + [0.5])
    first = None
    image = None
    for index, tensor in enumerate(tensors):
        ax = figure.add_subplot(grid[0, index], sharey=first)
        first = first or ax
        values = np.array([[table[layer][i][tensor] for i in iterations] for layer in layers])
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis",
                          vmin=0, vmax=1)
        ax.set_title(tensor)
        ax.set_xlabel("Training iteration")
        ticks = np.linspace(0, len(iterations) - 1, min(len(iterations), 6)).round().astype(int)
        ax.set_xticks(ticks, [str(iterations[t]) for t in ticks])
        if index == 0:
            ax.set_yticks(np.arange(len(layers)), layers, fontsize=_name_fontsize(len(layers)))
        else:
            # The panels share the layer axis and its formatter, so hide rather than clear.
            ax.tick_params(labelleft=False)
    bar = figure.colorbar(image, cax=figure.add_subplot(grid[0, -1]))
    bar.set_label("Density (fraction non-zero)")
    return figure


# Drawing and saving -------------------------------------------------------------


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _check_kinds(kinds) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    chosen = []
    for kind in kinds:
        if kind == "all":
            chosen.extend(KINDS)
        elif kind in KINDS:
            chosen.append(kind)
        else:
            raise InputError(f"figure kind {kind!r} is invalid; give one of "
                             f"{', '.join(KINDS)} or all")
    return list(dict.fromkeys(chosen))


def _imbalance_targets(results: Results, layer, pass_, iteration) -> list[tuple]:
    """Return the (layer, pass, iteration) heatmaps to draw: all recorded or the requested one.

    Without *iteration*, each pair is drawn for its first recorded iteration.
    """
    keys = results.pe_work_keys()
    if layer is not None or pass_ is not None or iteration is not None:
        if (layer is None) != (pass_ is None):
            raise InputError("give both --layer and --pass for the imbalance heatmap, "
                             "for example --layer conv1 --pass FW")
        if layer is None:
            # --iteration alone: every recorded layer and pass of that iteration.
            chosen = [(key[1], key[2], key[0]) for key in keys if key[0] == iteration]
            if not chosen:
                if iteration not in results.iterations:
                    raise InputError(f"iteration {iteration} was not replayed in "
                                     f"{results.describe_source()}; give one of "
                                     f"{', '.join(str(i) for i in results.iterations)}")
                raise InputError(f"{results.describe_source()} has no per-PE work of iteration "
                                 f"{iteration}; rerun procrustes-sim run with --record-pe "
                                 "LAYER:PASS")
            return chosen
        results.pe_work(layer, pass_, iteration)  # Raises with a rerun hint if absent.
        matches = [key for key in keys if key[1] == layer and key[2] == pass_
                   and (iteration is None or key[0] == iteration)]
        return [(layer, pass_, matches[0][0])]
    if not keys:
        raise InputError(f"{results.describe_source()} has no per-PE work, which the "
                         "imbalance heatmap needs; rerun with procrustes-sim run "
                         "--record-pe LAYER:PASS")
    first = {}
    for key_iteration, key_layer, key_pass in keys:
        first.setdefault((key_layer, key_pass), key_iteration)
    return [(key_layer, key_pass, key_iteration)
            for (key_layer, key_pass), key_iteration in first.items()]


def draw(source, kinds="all", *, layer: str | None = None, pass_: str | None = None,
         iteration: int | None = None, trace=None, strict: bool | None = None,
         skipped: list | None = None) -> list[PlotItem]:
    """Draw the figures of *kinds* and return them with file stems and captions.

    With *strict* False (the default for "all"), a kind that needs data the
    run did not record (per-PE work, a trace) is left out with a warning,
    and (kind, reason) is appended to *skipped* if given. Otherwise
    InputError names what to record or give.
    """
    results = load_results(source)
    chosen = _check_kinds(kinds)
    if strict is None:
        strict = not (kinds == "all" or (not isinstance(kinds, str) and "all" in kinds))
    items = []
    for kind in chosen:
        try:
            items.extend(_draw_kind(results, kind, layer, pass_, iteration, trace))
        except InputError as error:
            if strict or kind not in ("imbalance", "density"):
                raise
            log.warning("left out the %s figure: %s", kind, error)
            if skipped is not None:
                skipped.append((kind, str(error)))
    return items


def _draw_kind(results: Results, kind: str, layer, pass_, iteration, trace) -> list[PlotItem]:
    averaged = (f" Each bar is the mean over {results.iteration_count} iterations."
                if results.iteration_count > 1 else "")
    if kind == "energy":
        return [PlotItem(kind, "energy", energy_figure(results),
                         "Energy per iteration by component, summed over FW, BW and WU, for "
                         "each layer and for the network; plain bars are the sparse run, "
                         f"hatched bars the dense baseline.{averaged}")]
    if kind == "energy-pass":
        return [PlotItem(kind, "energy-pass", energy_pass_figure(results),
                         "Energy per iteration by component for each pass (FW, BW, WU), per "
                         f"layer and for the network; hatched bars are the dense baseline."
                         f"{averaged}")]
    if kind == "speedup":
        return [PlotItem(kind, "speedup", speedup_figure(results),
                         "Speedup (dense cycles / sparse cycles) and energy ratio (dense "
                         "energy / sparse energy) per layer over all passes; the last pair "
                         "is the whole network.")]
    if kind == "cycles":
        return [PlotItem(kind, "cycles", cycles_figure(results),
                         "Cycles per iteration of the sparse run split into useful compute, "
                         "memory, imbalance and mapping stalls, beside the dense baseline's "
                         f"cycles.{averaged}")]
    if kind == "imbalance":
        items = []
        for target_layer, target_pass, target_iteration in _imbalance_targets(
                results, layer, pass_, iteration):
            figure = imbalance_figure(results, target_layer, target_pass, target_iteration)
            stem = f"imbalance-{_safe_name(target_layer)}-{target_pass}-it{target_iteration}"
            items.append(PlotItem(kind, stem, figure,
                                  f"MACs per PE and step of layer {target_layer}, pass "
                                  f"{target_pass}, iteration {target_iteration}; a step lasts "
                                  "as long as its busiest PE."))
        return items
    if kind == "density":
        return [PlotItem(kind, "density", density_figure(results, trace),
                         "Fraction of non-zero values of the weights W, input activations X "
                         "and output gradients dY of each layer in each iteration of the "
                         "trace.")]
    raise AssertionError(kind)


def figure_bytes(figure: Figure, fmt: str, dpi: float = PNG_DPI) -> bytes:
    """Encode the figure as *fmt* (png, svg or pdf); the same figure gives the same bytes."""
    if fmt not in FORMATS:
        raise InputError(f"figure format {fmt!r} is invalid; give one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=_NO_DATE[fmt])
    return buffer.getvalue()


def save_figure(figure: Figure, path: str | Path, fmt: str | None = None) -> Path:
    """Write *figure* to *path* atomically; *fmt* defaults to the path's suffix."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    return write_atomic(path, figure_bytes(figure, fmt))


def plot(source, kinds="all", *, out: str | Path | None = None, fmt: str = "png",
         layer: str | None = None, pass_: str | None = None, iteration: int | None = None,
         trace=None) -> list[Path]:
    """Draw the figures of *kinds* and write them to *out* as *fmt*; return the paths.

    *out* defaults to the ``plots`` folder inside a results folder; with a
    Report it must be given. Each file is named after its kind, e.g.
    ``energy.png`` or ``imbalance-conv1-FW-it0.png``, and written atomically.
    """
    results = load_results(source)
    if fmt not in FORMATS:
        raise InputError(f"figure format {fmt!r} is invalid; give one of {', '.join(FORMATS)}")
    folder = output_folder(results, out, "plots")
    if (layer, pass_, iteration) != (None, None, None) and "imbalance" not in _check_kinds(kinds):
        raise InputError("--layer, --pass and --iteration choose the imbalance heatmap; "
                         "use them with --kind imbalance or all")
    items = draw(results, kinds, layer=layer, pass_=pass_, iteration=iteration, trace=trace)
    prepare_folder(folder)
    return [save_figure(item.figure, folder / f"{item.stem}.{fmt}", fmt) for item in items]

