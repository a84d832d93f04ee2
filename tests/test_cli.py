"""Tests of the procrustes-sim command: run, trace synth, list and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dataflows
import workloads
from procrustes_sim.cli import main
from procrustes_sim.config import available_archs, available_energy_tables
from procrustes_sim.errors import InputError

SUMMARY_KEYS = ("workload", "arch", "dataflow", "balancer", "layout", "trace", "batch",
                "iterations", "sparse", "dense", "speedup", "energy_ratio", "version")
TOTAL_KEYS = ("cycles", "energy_pj", "energy_breakdown_pj")
CSV_KEYS = ("iteration", "layer", "pass", "dense_macs", "effective_macs", "sparse_cycles",
            "dense_cycles", "sparse_energy_pj", "dense_energy_pj", "utilization", "imbalance")


def invoke(capsys, *args) -> tuple[int, str, str]:
    """Run main() in this process and return the exit code, stdout and stderr."""
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_args(tiny, out: Path, *extra) -> list[str]:
    """Build the arguments of `run` on the tiny trace.

    Options in *extra* override the same options given earlier.
    """
    return ["run", "--trace", tiny.trace, "--workload", tiny.csv, "--out", out, *extra]


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def run_out(tiny, tmp_path_factory):
    """Folder written by one `run` of the tiny trace."""
    out = tmp_path_factory.mktemp("run") / "out"
    assert main([str(arg) for arg in run_args(tiny, out)]) == 0
    return out


@pytest.fixture(scope="module")
def summary(run_out):
    return json.loads((run_out / "summary.json").read_text())


# run ----------------------------------------------------------------------


def test_run_writes_both_files(run_out):
    assert sorted(path.name for path in run_out.iterdir()) == ["layers.csv", "summary.json"]


@pytest.mark.parametrize("key", SUMMARY_KEYS)
def test_summary_has_key(summary, key):
    assert key in summary


@pytest.mark.parametrize("run", ["sparse", "dense"])
@pytest.mark.parametrize("key", TOTAL_KEYS)
def test_summary_totals_have_key(summary, run, key):
    assert key in summary[run]


def test_summary_names_tiny_workload(summary):
    assert summary["workload"] == "tiny"


def test_summary_batch_from_trace(summary, tiny):
    assert summary["batch"] == tiny.batch


def test_summary_lists_all_iterations(summary, tiny):
    assert summary["iterations"] == list(range(tiny.iterations))


@pytest.mark.parametrize("column", CSV_KEYS)
def test_layers_csv_has_column(run_out, column):
    with (run_out / "layers.csv").open(newline="") as file:
        header = next(csv.reader(file))
    assert column in header


def test_one_csv_row_per_layer_pass(run_out, tiny):
    rows = read_rows(run_out / "layers.csv")
    keys = [(row["iteration"], row["layer"], row["pass"]) for row in rows]
    expected = [(str(i), layer, pass_) for i in range(tiny.iterations)
                for layer in tiny.layer_names for pass_ in ("FW", "BW", "WU")]
    assert keys == expected


def test_speedup_is_cycle_ratio(summary):
    assert summary["speedup"] == summary["dense"]["cycles"] / summary["sparse"]["cycles"]


def test_energy_ratio_is_energy_quotient(summary):
    expected = summary["dense"]["energy_pj"] / summary["sparse"]["energy_pj"]
    assert summary["energy_ratio"] == expected


def test_table_shows_synthetic_label(capsys, tiny, tmp_path):
    code, out, _ = invoke(capsys, *run_args(tiny, tmp_path / "out"))
    assert code == 0
    assert "[SYNTHETIC]" in out


def test_table_describes_bernoulli_trace(capsys, tiny, tmp_path):
    _, out, _ = invoke(capsys, *run_args(tiny, tmp_path / "out"))
    assert "synthetic Bernoulli trace of tiny" in out


def test_run_is_byte_identical(capsys, tiny, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    invoke(capsys, *run_args(tiny, first))
    invoke(capsys, *run_args(tiny, second))
    assert (first / "summary.json").read_bytes() == (second / "summary.json").read_bytes()
    assert (first / "layers.csv").read_bytes() == (second / "layers.csv").read_bytes()


# bad input ----------------------------------------------------------------


# A 32 x 32 layer. A full P x Q tile of it needs over 2000 RF words, but the RF has 256.
WIDE_LAYERS = (("wide", "conv", 8, 8, 32, 32, 3, 3, 1, 1, 1, 0, 0),)

FULL_PQ_DATAFLOW = """\
name: full-pq
passes:
  FW:
    spatial: {rows: C, cols: N}
    loop_order: [N, C, P, Q, K, R, S]
    rf_tile: {R: full, S: full, P: full, Q: full}
    glb_tile: search
  BW:
    spatial: {rows: C, cols: N}
    loop_order: [N, C, P, Q, K, R, S]
    rf_tile: {R: full, S: full, P: full, Q: full}
    glb_tile: search
  WU:
    spatial: {rows: C, cols: N}
    loop_order: [N, C, P, Q, K, R, S]
    rf_tile: {R: full, S: full, P: full, Q: full}
    glb_tile: search
"""

# Line 3 has a second colon where a value should end.
SYNTAX_ERROR_ARCH = "name: typo\npe_array:\n  rows: 16: 16\n"

# Three sizes out of range and one unknown key.
INVALID_ARCH = """\
name: broken
pe_array: {rows: 0, cols: -4}
pe: {rf_words: 256, mac_datatype: fp32, colour: red}
glb: {size_kib: 128, banks: -1, bank_width_bits: 64}
noc: {bandwidth_words_per_cycle: 32}
dram: {bandwidth_bytes_per_cycle: 64}
clock_ghz: 1.0
"""


@pytest.fixture(scope="module")
def bad_files(tiny, make_topology, tmp_path_factory):
    """Input files for BAD_CASES, in one folder."""
    from procrustes_sim.trace import synthesize
    from procrustes_sim.workload import load_workload

    folder = tmp_path_factory.mktemp("bad")
    (folder / "renamed").mkdir()
    (folder / "reshaped").mkdir()
    layers = tiny.layers
    # conv1 and conv2 become c1 and c2.
    renamed = [("c1",) + layers[0][1:], ("c2",) + layers[1][1:], layers[2]]
    # conv2 with 16 filters instead of 32, and an fc layer that reads 16 values.
    reshaped = [layers[0], layers[1][:3] + (16,) + layers[1][4:],
                layers[2][:2] + (16,) + layers[2][3:]]
    wide_csv = make_topology(folder / "wide.csv", WIDE_LAYERS)
    files = {
        "dir": folder,
        "other_csv": make_topology(folder / "other.csv", layers),
        "renamed_csv": make_topology(folder / "renamed" / "tiny.csv", renamed),
        "reshaped_csv": make_topology(folder / "reshaped" / "tiny.csv", reshaped),
        "wide_csv": wide_csv,
        "wide_trace": synthesize(load_workload(wide_csv), 4, folder / "wide.pstrace",
                                 density=0.5),
        "full_pq": folder / "full-pq.yaml",
        "syntax": folder / "typo.yaml",
        "broken": folder / "broken.yaml",
        "not_zip": folder / "not-a-zip.pstrace",
        "existing": folder / "existing.txt",
    }
    files["full_pq"].write_text(FULL_PQ_DATAFLOW)
    files["syntax"].write_text(SYNTAX_ERROR_ARCH)
    files["broken"].write_text(INVALID_ARCH)
    files["not_zip"].write_text("plain text, not a ZIP archive\n")
    files["existing"].write_text("keep me\n")
    return files


# Each case gives the extra `run` arguments and the texts that the error line must contain.
BAD_CASES = {
    "unknown-dataflow": lambda f: (["--dataflow", "nope"], ["'nope'", "CxK, CxN, KxN"]),
    "unknown-layout": lambda f: (["--layout", "nope"], ["'nope'", "block-mask", "rle"]),
    "unknown-balancer": lambda f: (["--balancer", "nope"], ["'nope'", "valid names: none"]),
    "unknown-arch": lambda f: (["--arch", "nope"], ["'nope'", "procrustes-256"]),
    "unknown-energy": lambda f: (["--energy", "nope"], ["'nope'", "default-45nm"]),
    "zero-batch": lambda f: (["--batch", "0"], ["--batch: 0"]),
    "zero-iterations": lambda f: (["--iterations", "0"], ["--iterations: 0"]),
    "batch-mismatch": lambda f: (["--batch", "8"], ["batch 8", "batch 4"]),
    "too-many-iterations": lambda f: (["--iterations", "3"], ["3 requested", "at most 2"]),
    "other-workload": lambda f: (["--workload", f["other_csv"]], ["'other'", "'tiny'"]),
    "renamed-layers": lambda f: (["--workload", f["renamed_csv"]], ["'c1'"]),
    "mask-shape": lambda f: (["--workload", f["reshaped_csv"]],
                             ["'conv2'", "(16, 32, 3, 3)"]),
    "missing-trace": lambda f: (["--trace", f["dir"] / "missing.pstrace"],
                                ["missing.pstrace", "not found"]),
    "trace-not-zip": lambda f: (["--trace", f["not_zip"]], ["not-a-zip.pstrace", "ZIP"]),
    "arch-yaml-syntax": lambda f: (["--arch", f["syntax"]], [f"{f['syntax']}:3"]),
    "arch-yaml-values": lambda f: (["--arch", f["broken"]],
                                   ["4 problem(s)", "arch.pe_array.rows: 0",
                                    "arch.pe_array.cols: -4", "arch.glb.banks: -1",
                                    "arch.pe.colour"]),
    "rf-tile-too-large": lambda f: (["--trace", f["wide_trace"], "--workload", f["wide_csv"],
                                     "--dataflow", f["full_pq"]],
                                    ["'wide'", "'full-pq'", "RF holds 256"]),
    "skip-wrong-operand": lambda f: (["--skip", "FW=dY"], ["FW=dY"]),
    "out-is-file": lambda f: (["--out", f["existing"]], ["existing.txt", "folder"]),
}


def run_bad_case(capsys, tiny, bad_files, tmp_path, case):
    """Run `run` with the arguments of *case* and return its output and expected fragments."""
    extra, fragments = BAD_CASES[case](bad_files)
    code, out, err = invoke(capsys, *run_args(tiny, tmp_path / "out", *extra))
    return code, out, err, fragments


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_two(capsys, tiny, bad_files, tmp_path, case):
    code, _, _, _ = run_bad_case(capsys, tiny, bad_files, tmp_path, case)
    assert code == 2


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_names_value(capsys, tiny, bad_files, tmp_path, case):
    _, _, err, fragments = run_bad_case(capsys, tiny, bad_files, tmp_path, case)
    last_line = err.splitlines()[-1]
    for fragment in fragments:
        assert fragment in last_line


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_no_traceback(capsys, tiny, bad_files, tmp_path, case):
    _, _, err, _ = run_bad_case(capsys, tiny, bad_files, tmp_path, case)
    assert "Traceback" not in err


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_writes_nothing(capsys, tiny, bad_files, tmp_path, case):
    run_bad_case(capsys, tiny, bad_files, tmp_path, case)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_one_stderr_line(capsys, tiny, bad_files, tmp_path, case):
    _, _, err, _ = run_bad_case(capsys, tiny, bad_files, tmp_path, case)
    assert len(err.splitlines()) == 1


def test_out_file_left_unchanged(capsys, tiny, bad_files, tmp_path):
    run_bad_case(capsys, tiny, bad_files, tmp_path, "out-is-file")
    assert bad_files["existing"].read_text() == "keep me\n"


def test_out_file_rejected_before_simulating(capsys, tiny, bad_files, tmp_path):
    _, _, err, _ = run_bad_case(capsys, tiny, bad_files, tmp_path, "out-is-file")
    assert "simulating" not in err


def test_debug_raises_input_error(capsys, tiny, tmp_path):
    with pytest.raises(InputError, match="'nope'"):
        main([str(arg) for arg in run_args(tiny, tmp_path / "out", "--dataflow", "nope",
                                           "--debug")])


def cli_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    """Run procrustes-sim as a separate Python process."""
    return subprocess.run([sys.executable, "-m", "procrustes_sim", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_process_unknown_dataflow_exit_code(tiny, tmp_path):
    result = cli_process(*run_args(tiny, tmp_path / "out", "--dataflow", "nope"), cwd=tmp_path)
    assert result.returncode == 2


def test_process_unknown_dataflow_one_line(tiny, tmp_path):
    result = cli_process(*run_args(tiny, tmp_path / "out", "--dataflow", "nope"), cwd=tmp_path)
    assert result.stderr.splitlines() == [
        "procrustes-sim: error: unknown dataflow 'nope'; valid names: CxK, CxN, KxN, "
        "or the path of a YAML file"]


def test_process_zero_batch_one_line(tiny, tmp_path):
    result = cli_process(*run_args(tiny, tmp_path / "out", "--batch", "0"), cwd=tmp_path)
    assert len(result.stderr.splitlines()) == 1


def test_process_bad_input_writes_nothing(tiny, tmp_path):
    cli_process(*run_args(tiny, tmp_path / "out", "--iterations", "9"), cwd=tmp_path)
    assert sorted(tmp_path.iterdir()) == []


# trace synth --------------------------------------------------------------


def synth_args(tiny, out: Path, *extra) -> list:
    return ["trace", "synth", "--workload", tiny.csv, "--density", "0.2", "--batch", "2",
            "--seed", "3", "--out", out, *extra]


def test_synth_writes_trace(capsys, tiny, tmp_path):
    from procrustes_sim.trace import Trace

    code, _, _ = invoke(capsys, *synth_args(tiny, tmp_path / "t.pstrace"))
    assert code == 0
    with Trace.open(tmp_path / "t.pstrace") as trace:
        assert trace.layer_names == tuple(tiny.layer_names)


def test_synth_same_seed_same_bytes(capsys, tiny, tmp_path):
    invoke(capsys, *synth_args(tiny, tmp_path / "a.pstrace"))
    invoke(capsys, *synth_args(tiny, tmp_path / "b.pstrace"))
    assert (tmp_path / "a.pstrace").read_bytes() == (tmp_path / "b.pstrace").read_bytes()


def test_synth_other_seed_other_bytes(capsys, tiny, tmp_path):
    invoke(capsys, *synth_args(tiny, tmp_path / "a.pstrace"))
    invoke(capsys, *synth_args(tiny, tmp_path / "b.pstrace", "--seed", "4"))
    assert (tmp_path / "a.pstrace").read_bytes() != (tmp_path / "b.pstrace").read_bytes()


def test_synth_density_above_one(capsys, tiny, tmp_path):
    code, _, err = invoke(capsys, *synth_args(tiny, tmp_path / "t.pstrace", "--density", "1.5"))
    assert code == 2
    assert "1.5" in err
    assert len(err.splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == []


# list ---------------------------------------------------------------------


@pytest.mark.parametrize("names", [available_archs, available_energy_tables,
                                   dataflows.available, workloads.available],
                         ids=["archs", "energy", "dataflows", "workloads"])
def test_list_prints_bundled_names(capsys, names):
    code, out, _ = invoke(capsys, "list")
    assert code == 0
    for name in names():
        assert name in out


def test_list_prints_layouts_and_balancers(capsys):
    _, out, _ = invoke(capsys, "list")
    assert "layouts:       dense, bitmask, csr, csc, block-mask, rle" in out
    assert "balancers:     none" in out


def test_synth_option_needs_its_pattern(tmp_path, capsys):
    code = main(["trace", "synth", "--workload", "resnet18_cifar", "--density", "0.1",
                 "--batch", "2", "--concentration", "5", "--out", str(tmp_path / "t.pstrace")])
    error = capsys.readouterr().err
    assert code == 2
    assert "--pattern channel-skew" in error
    assert not (tmp_path / "t.pstrace").exists()
