"""The compare command: one trace through several layouts and balancers."""

import csv

from procrustes_sim.cli import main
from procrustes_sim.compare import COLUMNS


def run_compare(tiny, out, *extra):
    return main(["compare", "--trace", str(tiny.trace), "--workload", str(tiny.csv),
                 "--out", str(out), "-q", *extra])


def test_compare_writes_every_combination(tiny, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = run_compare(tiny, out, "--layouts", "dense,block-mask",
                       "--balancers", "none,block-reorder")
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert code == 0
    assert tuple(rows[0]) == COLUMNS
    # 2 layouts x 2 balancers x (3 layers + total)
    assert len(rows) == 16
    assert {r["layer"] for r in rows} == set(tiny.layer_names) | {"total"}


def test_compare_total_sums_layers(tiny, tmp_path, capsys):
    out = tmp_path / "cmp"
    run_compare(tiny, out, "--layouts", "csr", "--balancers", "none")
    rows = list(csv.DictReader((out / "compare.csv").open()))
    total = next(r for r in rows if r["layer"] == "total")
    layers = [r for r in rows if r["layer"] != "total"]
    assert abs(float(total["cycles"]) - sum(float(r["cycles"]) for r in layers)) < 1e-6
    assert float(total["metadata_bits"]) > 0


def test_compare_prints_table(tiny, tmp_path, capsys):
    run_compare(tiny, tmp_path / "cmp", "--layouts", "rle", "--balancers", "ideal")
    output = capsys.readouterr().out
    assert "rle" in output
    assert "ideal" in output


def test_compare_unknown_layout_exits_2(tiny, tmp_path, capsys):
    code = run_compare(tiny, tmp_path / "cmp", "--layouts", "dense,coo")
    error = capsys.readouterr().err
    assert code == 2
    assert "'coo'" in error
    assert not (tmp_path / "cmp").exists()


def test_pointer_hint_fits_every_layer(tiny, tmp_path, capsys):
    run_compare(tiny, tmp_path / "cmp", "--layouts", "csr", "--balancers", "none",
                "--pointer-bits", "2")
    needed = capsys.readouterr().err.split("--pointer-bits ")[1].split()[0]
    code = run_compare(tiny, tmp_path / "cmp", "--layouts", "csr", "--balancers", "none",
                       "--pointer-bits", needed)
    assert code == 0


def test_compare_narrow_pointer_exits_2(tiny, tmp_path, capsys):
    code = run_compare(tiny, tmp_path / "cmp", "--layouts", "csr", "--balancers", "none",
                       "--pointer-bits", "2")
    error = capsys.readouterr().err
    assert code == 2
    assert "--pointer-bits" in error
