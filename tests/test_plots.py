"""Tests of the figures: files, labels, legends and the numbers drawn against layers.csv."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from procrustes_sim import plots
from procrustes_sim.cli import main
from procrustes_sim.errors import InputError
from procrustes_sim.report import RESULTS_FORMAT
from procrustes_sim.results import REQUIRED_COLUMNS, Results, load_results
from procrustes_sim.trace import Trace, synthesize

PASS_NAMES = ("FW", "BW", "WU")


# Fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tiny):
    """A simulation of the tiny trace (batch 4, 2 iterations) recording conv1 FW per PE."""
    from procrustes_sim.simulation import simulate

    return simulate(tiny.trace, workload=str(tiny.csv), record_pe=["conv1:FW"])


@pytest.fixture(scope="module")
def folder(report, tmp_path_factory):
    """A results folder as `run` writes it."""
    out = tmp_path_factory.mktemp("plots") / "results"
    report.write(out)
    return out


@pytest.fixture(scope="module")
def rows(folder):
    """layers.csv as read by the csv module, independent of procrustes_sim.results."""
    with (folder / "layers.csv").open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def summary(folder):
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def written(folder, tmp_path_factory):
    """The files of `plot --kind all` as PNG."""
    out = tmp_path_factory.mktemp("written")
    return plots.plot(folder, "all", out=out)


def mean_per_layer(rows, column, pass_=None) -> dict[str, float]:
    """Sum of *column* over passes (or one pass) per layer, divided by the iteration count."""
    sums: dict = defaultdict(float)
    iterations = {row["iteration"] for row in rows}
    for row in rows:
        if pass_ is None or row["pass"] == pass_:
            sums[row["layer"]] += float(row.get(column) or 0.0)
    return {layer: total / len(iterations) for layer, total in sums.items()}


def containers(ax) -> dict:
    return {container.get_label(): container for container in ax.containers}


def heights(container) -> list[float]:
    return [patch.get_height() for patch in container]


def widths(container) -> list[float]:
    return [patch.get_width() for patch in container]


def unit_size(label: str) -> float:
    """The size in pJ (or cycles) of the unit in an axis label such as 'Energy (µJ)'."""
    units = dict(plots.ENERGY_UNITS) | {name: size for name, size in plots.CYCLE_UNITS if name}
    if "(" not in label:
        return 1.0
    inside = label[label.rindex("(") + 1:label.rindex(")")]
    return units.get(inside, 1.0)


def legend_texts(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def title(figure) -> str:
    return " ".join(figure.get_suptitle().split())


def fake_results(layer_names, *, iterations=1, extra_components=()):
    """Results of made-up numbers for layouts and colours, without a simulation."""
    components = ("mac", "rf", "glb", "noc", "dram", "metadata", *extra_components)
    rows = []
    for iteration in range(iterations):
        for index, layer in enumerate(layer_names):
            for pass_ in PASS_NAMES:
                row = {column: float(index + 1) for column in REQUIRED_COLUMNS}
                row.update({"iteration": iteration, "layer": layer, "pass": pass_})
                for name in components:
                    row[f"sparse_energy_{name}_pj"] = 1e6 * (index + 1)
                    row[f"dense_energy_{name}_pj"] = 2e6 * (index + 1)
                rows.append(row)
    summary = {"results_format": RESULTS_FORMAT, "workload": "fake", "batch": 2,
               "trace": {"path": "generated synthetic trace (not kept)", "synthetic": False}}
    return Results(summary=summary, rows=tuple(rows), columns=tuple(rows[0]))


# Files ------------------------------------------------------------------------


def test_plot_all_writes_every_kind(written):
    stems = sorted(path.stem for path in written)
    assert stems == sorted(["energy", "energy-pass", "speedup", "cycles",
                            "imbalance-conv1-FW-it0", "density"])


def test_plot_files_are_png(written):
    for path in written:
        assert path.read_bytes().startswith(b"\x89PNG"), path


def test_plot_default_out_is_plots(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    paths = plots.plot(copy, "speedup")
    assert paths == [copy / "plots" / "speedup.png"]


@pytest.mark.parametrize("fmt, magic", [("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_plot_format_header(folder, tmp_path, fmt, magic):
    path, = plots.plot(folder, "cycles", out=tmp_path, fmt=fmt)
    assert path.read_bytes().startswith(magic)


def test_svg_keeps_text_as_text(folder, tmp_path):
    path, = plots.plot(folder, "speedup", out=tmp_path, fmt="svg")
    assert "network total" in path.read_text()


def test_plot_leaves_no_temporary(written):
    folder = written[0].parent
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_failed_save_removes_temporary(folder, tmp_path, monkeypatch):
    def fail(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        plots.plot(folder, "speedup", out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_same_figure_same_bytes(folder):
    first = plots.figure_bytes(plots.speedup_figure(folder), "svg")
    second = plots.figure_bytes(plots.speedup_figure(folder), "svg")
    assert first == second


def test_drawing_needs_no_pyplot(folder):
    script = ("import sys; from procrustes_sim import plots; "
              f"plots.figure_bytes(plots.energy_figure({str(folder)!r}), 'png'); "
              "print('matplotlib.pyplot' in sys.modules)")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DISPLAY", "MPLBACKEND")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, check=True)
    assert result.stdout.strip() == "False"


# Energy -----------------------------------------------------------------------


def test_energy_axis_label_has_unit(folder):
    layer_ax = plots.energy_figure(folder).axes[0]
    assert layer_ax.get_ylabel() == "Energy per iteration (µJ)"


def test_energy_title_says_synthetic(folder):
    assert "synthetic trace" in title(plots.energy_figure(folder))


def test_energy_title_says_mean(folder):
    assert "mean of 2 iterations" in title(plots.energy_figure(folder))


def test_energy_legend_lists_components(folder):
    texts = legend_texts(plots.energy_figure(folder))
    assert texts == [*plots.drawn_components(folder), "sparse run (plain)",
                     "dense baseline (hatched)"]


def test_energy_legend_skips_zero_components(folder, rows):
    drawn = plots.drawn_components(folder)
    for name in drawn:
        total = sum(float(row[f"sparse_energy_{name}_pj"]) + float(row[f"dense_energy_{name}_pj"])
                    for row in rows)
        assert total > 0, name


def test_energy_bars_match_csv(folder, rows):
    layer_ax = plots.energy_figure(folder).axes[0]
    size = unit_size(layer_ax.get_ylabel())
    layers = list(dict.fromkeys(row["layer"] for row in rows))
    bars = containers(layer_ax)
    for run in ("sparse", "dense"):
        for name in plots.drawn_components(folder):
            expected = mean_per_layer(rows, f"{run}_energy_{name}_pj")
            drawn = [height * size for height in heights(bars[f"{run} {name}"])]
            assert drawn == pytest.approx([expected[layer] for layer in layers]), (run, name)


def test_energy_stack_top_is_layer_energy(folder, rows):
    layer_ax = plots.energy_figure(folder).axes[0]
    size = unit_size(layer_ax.get_ylabel())
    bars = containers(layer_ax)
    expected = mean_per_layer(rows, "sparse_energy_pj")
    layers = list(expected)
    tops = np.zeros(len(layers))
    for name in plots.drawn_components(folder):
        tops += np.array(heights(bars[f"sparse {name}"])) * size
    assert list(tops) == pytest.approx([expected[layer] for layer in layers])


def test_energy_total_panel_matches_summary(folder, summary):
    total_ax = plots.energy_figure(folder).axes[1]
    size = unit_size(total_ax.get_ylabel())
    bars = containers(total_ax)
    drawn = sum(heights(bars[f"dense {name}"])[0] for name in plots.drawn_components(folder))
    iterations = len(summary["iterations"])
    assert drawn * size == pytest.approx(summary["dense"]["energy_pj"] / iterations)


def test_energy_pass_panel_titles(folder):
    figure = plots.energy_pass_figure(folder)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["FW: per layer", "FW: total", "BW: per layer",
                      "BW: total", "WU: per layer", "WU: total"]


def test_energy_pass_bars_match_csv(folder, rows):
    figure = plots.energy_pass_figure(folder)
    for index, pass_ in enumerate(PASS_NAMES):
        layer_ax = figure.axes[2 * index]
        size = unit_size(layer_ax.get_ylabel())
        expected = mean_per_layer(rows, "sparse_energy_dram_pj", pass_)
        drawn = [h * size for h in heights(containers(layer_ax)["sparse dram"])]
        assert drawn == pytest.approx(list(expected.values())), pass_


def test_component_colour_same_everywhere(folder):
    energy = containers(plots.energy_figure(folder).axes[0])["sparse dram"]
    by_pass = containers(plots.energy_pass_figure(folder).axes[2])["dense dram"]
    assert energy.patches[0].get_facecolor() == by_pass.patches[0].get_facecolor()


def test_unknown_component_gets_stable_colour():
    assert plots.component_colour("newcost") == plots.component_colour("newcost")


def test_extra_component_appears_in_legend():
    results = fake_results(["a", "b"], extra_components=("newcost",))
    assert "newcost" in legend_texts(plots.energy_figure(results))


def test_extra_component_keeps_its_colour():
    results = fake_results(["a", "b"], extra_components=("quantile",))
    bar = containers(plots.energy_figure(results).axes[0])["sparse quantile"]
    assert bar.patches[0].get_facecolor() == to_rgba(plots.COMPONENT_COLOURS["quantile"])


# Many layers ------------------------------------------------------------------


def test_many_layers_use_horizontal_bars():
    names = [f"block{i}.conv" for i in range(54)]
    layer_ax = plots.energy_figure(fake_results(names)).axes[0]
    assert [label.get_text() for label in layer_ax.get_yticklabels()] == names


def test_many_layers_widths_hold_values():
    names = [f"layer{i}" for i in range(30)]
    layer_ax = plots.cycles_figure(fake_results(names)).axes[0]
    size = unit_size(layer_ax.get_xlabel())
    assert widths(containers(layer_ax)["dense_cycles"])[-1] * size == pytest.approx(90.0)


def test_many_layers_figure_grows():
    short = plots.speedup_figure(fake_results([f"l{i}" for i in range(20)]))
    long = plots.speedup_figure(fake_results([f"l{i}" for i in range(60)]))
    assert long.get_figheight() > short.get_figheight()


# Speedup ----------------------------------------------------------------------


def test_speedup_bars_match_csv(folder, rows):
    ax = plots.speedup_figure(folder).axes[0]
    dense = mean_per_layer(rows, "dense_cycles")
    sparse = mean_per_layer(rows, "sparse_cycles")
    expected = [dense[layer] / sparse[layer] for layer in dense]
    label = "speedup (dense cycles / sparse cycles)"
    assert heights(containers(ax)[label])[:-1] == pytest.approx(expected)


def test_speedup_network_bar_is_summary(folder, summary):
    ax = plots.speedup_figure(folder).axes[0]
    bars = containers(ax)["speedup (dense cycles / sparse cycles)"]
    assert heights(bars)[-1] == pytest.approx(summary["speedup"])


def test_energy_ratio_network_bar_is_summary(folder, summary):
    ax = plots.speedup_figure(folder).axes[0]
    bars = containers(ax)["energy ratio (dense energy / sparse energy)"]
    assert heights(bars)[-1] == pytest.approx(summary["energy_ratio"])


def test_speedup_marks_network_total(folder):
    ax = plots.speedup_figure(folder).axes[0]
    assert ax.get_xticklabels()[-1].get_text() == "network total"


def test_speedup_legend_has_baseline(folder):
    assert "dense baseline (1×)" in legend_texts(plots.speedup_figure(folder))


# Cycles -----------------------------------------------------------------------


@pytest.mark.parametrize("column", [part[0] for part in plots.CYCLE_PARTS] + ["dense_cycles"])
def test_cycle_bars_match_csv(folder, rows, column):
    layer_ax = plots.cycles_figure(folder).axes[0]
    size = unit_size(layer_ax.get_ylabel())
    expected = mean_per_layer(rows, column)
    drawn = [h * size for h in heights(containers(layer_ax)[column])]
    assert drawn == pytest.approx(list(expected.values()))


def test_cycle_stack_is_sparse_cycles(folder, rows):
    layer_ax = plots.cycles_figure(folder).axes[0]
    size = unit_size(layer_ax.get_ylabel())
    bars = containers(layer_ax)
    tops = sum(np.array(heights(bars[part[0]])) for part in plots.CYCLE_PARTS) * size
    assert list(tops) == pytest.approx(list(mean_per_layer(rows, "sparse_cycles").values()))


def test_cycles_legend_entries(folder):
    assert legend_texts(plots.cycles_figure(folder)) == [
        "compute (useful)", "memory stall", "imbalance stall", "mapping stall",
        "dense baseline (total)"]


def test_cycles_axis_label(folder):
    assert plots.cycles_figure(folder).axes[0].get_ylabel() == \
        "Cycles per iteration (thousands)"


# Imbalance --------------------------------------------------------------------


def test_heatmap_is_pe_work(folder, report):
    figure = plots.imbalance_figure(folder, "conv1", "FW")
    steps = report.pe_work[(0, "conv1", "FW")]
    image = figure.axes[1].images[0]
    assert np.array_equal(image.get_array(), steps.reshape(steps.shape[0], -1).T)


def test_heatmap_colour_bar_unit(folder):
    figure = plots.imbalance_figure(folder, "conv1", "FW")
    assert figure.axes[2].get_ylabel() == "MACs per step"


def test_heatmap_axis_labels(folder):
    heat_ax = plots.imbalance_figure(folder, "conv1", "FW").axes[1]
    assert (heat_ax.get_xlabel(), heat_ax.get_ylabel()) == (
        "Step", "PE index (row × 16 + column)")


def test_heatmap_title_names_layer(folder):
    assert "layer conv1, FW, iteration 0" in title(plots.imbalance_figure(folder, "conv1", "FW"))


def test_heatmap_chosen_iteration(folder):
    assert "iteration 1" in title(plots.imbalance_figure(folder, "conv1", "FW", iteration=1))


def test_heatmap_busiest_line(folder, report):
    line_ax = plots.imbalance_figure(folder, "conv1", "FW").axes[0]
    steps = report.pe_work[(0, "conv1", "FW")]
    busiest = line_ax.get_lines()[0].get_ydata()
    assert list(busiest) == list(steps.reshape(steps.shape[0], -1).max(axis=1))


def test_bin_steps_averages_bins():
    work = np.arange(10, dtype=float).reshape(5, 2)
    binned, size = plots.bin_steps(work, max_steps=2)
    assert size == 3
    assert binned.tolist() == [[2.0, 3.0], [7.0, 8.0]]


def test_bin_steps_keeps_short_runs():
    work = np.ones((4, 3))
    binned, size = plots.bin_steps(work, max_steps=10)
    assert (size, binned.shape) == (1, (4, 3))


def test_thousands_of_steps_are_binned(folder, monkeypatch):
    results = load_results(folder)
    long = np.tile(results.pe_work("conv1", "FW"), (50, 1, 1))
    monkeypatch.setattr(Results, "pe_work", lambda self, layer, pass_, iteration=None: long)
    monkeypatch.setattr(Results, "pe_work_keys", lambda self: [(0, "conv1", "FW")])
    figure = plots.imbalance_figure(results, "conv1", "FW")
    assert figure.axes[1].images[0].get_array().shape[1] <= plots.MAX_HEATMAP_STEPS
    assert "steps per column" in title(figure)


def test_imbalance_needs_recorded_pair(folder):
    with pytest.raises(InputError, match="--record-pe conv2:FW"):
        plots.imbalance_figure(folder, "conv2", "FW")


def test_imbalance_unknown_layer_named(folder):
    with pytest.raises(InputError, match="layer 'nosuch' is not in"):
        plots.imbalance_figure(folder, "nosuch", "FW")


def test_imbalance_iteration_alone(folder, tmp_path):
    written = plots.plot(folder, "imbalance", out=tmp_path / "out", iteration=0)
    assert len(written) == 1


def test_imbalance_unreplayed_iteration(folder, tmp_path):
    with pytest.raises(InputError, match="iteration 7 was not replayed"):
        plots.plot(folder, "imbalance", out=tmp_path / "out", iteration=7)


def test_imbalance_without_pe_work(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    (copy / "pe_work.npz").unlink()
    with pytest.raises(InputError, match="--record-pe LAYER:PASS"):
        plots.plot(copy, "imbalance", out=tmp_path / "out")


def test_imbalance_from_report_object(report):
    figure = plots.imbalance_figure(report, "conv1", "FW")
    assert figure.axes[1].images[0].get_array().shape[0] == 256


# Density ----------------------------------------------------------------------


def test_density_lines_match_trace(folder, tiny):
    figure = plots.density_figure(folder)
    with Trace.open(tiny.trace) as trace:
        for ax, tensor in zip(figure.axes, ("W", "X", "dY")):
            for line, layer in zip(ax.get_lines(), tiny.layer_names):
                expected = [trace.load(i, layer).density()[tensor] for i in trace.iterations]
                assert list(line.get_ydata()) == pytest.approx(expected), (tensor, layer)


def test_density_panel_titles(folder):
    assert [ax.get_title() for ax in plots.density_figure(folder).axes] == ["W", "X", "dY"]


def test_density_legend_lists_layers(folder, tiny):
    assert legend_texts(plots.density_figure(folder)) == tiny.layer_names


def test_density_axis_labels(folder):
    ax = plots.density_figure(folder).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Training iteration",
                                                  "Density (fraction non-zero)")


def test_density_title_says_synthetic(folder):
    assert "synthetic trace" in title(plots.density_figure(folder))


def test_density_one_iteration_bars(folder, tiny, tmp_path):
    path = synthesize(tiny.workload, tiny.batch, tmp_path / "one.pstrace", density=0.2)
    ax = plots.density_figure(folder, trace=path).axes[0]
    with Trace.open(path) as trace:
        expected = [trace.load(0, layer).density()["W"] for layer in tiny.layer_names]
    assert heights(containers(ax)["W"]) == pytest.approx(expected)


def test_density_many_layers_heatmap(tmp_path, make_topology):
    from procrustes_sim.workload import load_workload

    layers = [(f"conv{i}", "conv", 4, 4, 4, 4, 3, 3, 1, 1, 1, 0, 0) for i in range(14)]
    workload = load_workload(make_topology(tmp_path / "deep.csv", layers))
    path = synthesize(workload, 2, tmp_path / "deep.pstrace", density=0.4, iterations=2)
    results = fake_results([row[0] for row in layers])
    results.summary["workload"] = workload.name
    figure = plots.density_figure(results, trace=path)
    with Trace.open(path) as trace:
        expected = [[trace.load(i, row[0]).density()["X"] for i in (0, 1)] for row in layers]
    assert np.allclose(figure.axes[1].images[0].get_array(), expected)


def test_density_bundled_trace_needs_option(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["trace"]["path"] = "generated synthetic trace (not kept)"
    (copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="--trace FILE"):
        plots.density_figure(copy)


def test_density_rejects_other_workload(folder, tmp_path, make_topology):
    from procrustes_sim.workload import load_workload

    other = load_workload(make_topology(tmp_path / "other.csv",
                                        [("c", "conv", 4, 4, 4, 4, 3, 3, 1, 1, 1, 0, 0)]))
    path = synthesize(other, 4, tmp_path / "other.pstrace", density=0.5)
    with pytest.raises(InputError, match="give the trace that the run replayed"):
        plots.density_figure(folder, trace=path)


# Python API and bad input ------------------------------------------------------


def test_report_object_gives_same_bars(folder, report):
    from_folder = containers(plots.energy_figure(folder).axes[0])["sparse mac"]
    from_report = containers(plots.energy_figure(report).axes[0])["sparse mac"]
    assert heights(from_report) == pytest.approx(heights(from_folder))


def test_report_object_needs_out(report):
    with pytest.raises(InputError, match="give out="):
        plots.plot(report, "energy")


def test_all_leaves_out_missing_data(folder, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(folder, copy)
    (copy / "pe_work.npz").unlink()
    skipped = []
    items = plots.draw(copy, "all", trace=None, skipped=skipped)
    assert "imbalance" not in [item.kind for item in items]
    assert [kind for kind, _ in skipped] == ["imbalance"]


@pytest.mark.parametrize("kind", ["bogus", "Energy"])
def test_unknown_kind_rejected(folder, kind):
    with pytest.raises(InputError, match="figure kind"):
        plots.plot(folder, kind)


def test_unknown_format_rejected(folder, tmp_path):
    with pytest.raises(InputError, match="figure format 'jpg'"):
        plots.plot(folder, "energy", out=tmp_path, fmt="jpg")


def test_out_file_rejected(folder, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep")
    with pytest.raises(InputError, match="is a file"):
        plots.plot(folder, "energy", out=target)


def test_not_a_results_folder(tmp_path):
    with pytest.raises(InputError, match="has no summary.json"):
        load_results(tmp_path)


def test_missing_layers_csv(folder, tmp_path):
    shutil.copy(folder / "summary.json", tmp_path / "summary.json")
    with pytest.raises(InputError, match="has no layers.csv"):
        load_results(tmp_path)


@pytest.mark.parametrize("value, message", [
    (None, "has no results_format"),
    (RESULTS_FORMAT - 1, "rerun procrustes-sim run"),
    (RESULTS_FORMAT + 1, "upgrade procrustes-sim"),
])
def test_other_results_format(folder, tmp_path, value, message):
    shutil.copytree(folder, tmp_path / "results")
    summary_path = tmp_path / "results" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary.pop("results_format")
    if value is not None:
        summary["results_format"] = value
    summary_path.write_text(json.dumps(summary))
    with pytest.raises(InputError, match=message):
        load_results(tmp_path / "results")


def test_missing_csv_column(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "results")
    path = tmp_path / "results" / "layers.csv"
    path.write_text(path.read_text().replace("useful_cycles", "other_cycles", 1))
    with pytest.raises(InputError, match="no column 'useful_cycles'"):
        load_results(tmp_path / "results")


# Command line -------------------------------------------------------------------


def invoke(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_plot_prints_paths(capsys, folder, tmp_path):
    code, out, _ = invoke(capsys, "plot", folder, "--kind", "energy", "--out", tmp_path)
    assert code == 0
    assert out == f"wrote {tmp_path / 'energy.png'}\n"


def test_cli_plot_imbalance_layer(capsys, folder, tmp_path):
    code, _, _ = invoke(capsys, "plot", folder, "--kind", "imbalance", "--layer", "conv1",
                        "--pass", "FW", "--format", "svg", "--out", tmp_path)
    assert code == 0
    assert (tmp_path / "imbalance-conv1-FW-it0.svg").stat().st_size > 0


@pytest.mark.parametrize("arguments, message", [
    (["plot", "{empty}"], "has no summary.json"),
    (["plot", "{folder}", "--kind", "imbalance", "--layer", "fc", "--pass", "WU"],
     "--record-pe fc:WU"),
    (["plot", "{folder}", "--kind", "energy", "--layer", "conv1", "--pass", "FW"],
     "--kind imbalance"),
    (["plot", "{folder}", "--kind", "nope"], "invalid choice: 'nope'"),
    (["plot", "{folder}", "--format", "gif"], "invalid choice: 'gif'"),
])
def test_cli_bad_input_one_line(capsys, folder, tmp_path, arguments, message):
    arguments = [a.format(folder=folder, empty=tmp_path) for a in arguments]
    code, _, err = invoke(capsys, *arguments, "--out", tmp_path / "out")
    assert code == 2
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
