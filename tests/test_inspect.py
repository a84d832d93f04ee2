"""Tests of ``procrustes-sim trace inspect``."""

from __future__ import annotations

import numpy as np

from procrustes_sim.cli import main
from procrustes_sim.inspect_trace import inspect_trace
from procrustes_sim.trace import LayerMasks, TraceWriter


def test_inspect_channel_counts(tiny, tmp_path):
    out = tmp_path / "t.pstrace"
    with TraceWriter(out, tiny.workload, 2, synthetic=False, provenance={}) as writer:
        for layer in tiny.workload.layers:
            weights = np.zeros(layer.weight_shape, bool)
            weights[0] = True  # Output channel 0 keeps every weight.
            writer.add(0, layer.name, LayerMasks(weights, np.ones(layer.input_shape(2), bool),
                                                 np.zeros(layer.output_shape(2), bool)))
    _, stats = inspect_trace(out)
    conv1 = stats[0]
    assert conv1.per_output_channel == (0, 9 * 16 / 32, 9 * 16)
    assert conv1.per_input_channel == (9, 9.0, 9)
    assert conv1.density_x == 1.0
    assert conv1.density_dy == 0.0


def test_inspect_prints_rows(tiny, capsys):
    assert main(["trace", "inspect", str(tiny.trace), "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split() and line.split()[0].isdigit()]
    assert len(rows) == tiny.iterations * len(tiny.layer_names)


def test_inspect_plot(tiny, tmp_path, capsys):
    plot = tmp_path / "d.png"
    assert main(["trace", "inspect", str(tiny.trace), "--plot", str(plot), "-q"]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_inspect_missing_trace(tmp_path, capsys):
    code = main(["trace", "inspect", str(tmp_path / "none.pstrace")])
    err = capsys.readouterr().err
    assert code == 2
    assert "not found" in err


def test_inspect_bad_plot_dir(tiny, tmp_path, capsys):
    code = main(["trace", "inspect", str(tiny.trace), "--plot", str(tmp_path / "no" / "p.png")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
