"""Tests of the report: its files, their atomic writing and their agreement."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from procrustes_sim.energy import COMPONENTS
from procrustes_sim.report import CSV_COLUMNS, LIMITATIONS

PASS_NAMES = ("FW", "BW", "WU")


@pytest.fixture(scope="module")
def rows(tiny_report):
    return list(csv.DictReader(io.StringIO(tiny_report.layers_csv())))


@pytest.fixture(scope="module")
def summary(tiny_report):
    return json.loads(tiny_report.summary_json())


def column_sum(rows, column: str) -> float:
    return sum(float(row[column]) for row in rows)


# Writing ------------------------------------------------------------------


def test_write_returns_final_paths(tiny_report, tmp_path):
    summary_path, layers_path = tiny_report.write(tmp_path / "out")
    assert (summary_path.name, layers_path.name) == ("summary.json", "layers.csv")


def test_written_files_match_text(tiny_report, tmp_path):
    summary_path, layers_path = tiny_report.write(tmp_path)
    assert summary_path.read_text() == tiny_report.summary_json()
    assert layers_path.read_text() == tiny_report.layers_csv()


def test_write_leaves_only_outputs(tiny_report, tmp_path):
    tiny_report.write(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["layers.csv", "summary.json"]


def test_written_files_follow_umask(tiny_report, tmp_path):
    old_mask = os.umask(0o022)
    try:
        summary_path, _ = tiny_report.write(tmp_path)
    finally:
        os.umask(old_mask)
    assert summary_path.stat().st_mode & 0o777 == 0o644


def fail_second_replace(monkeypatch):
    """Make the second os.replace of a write raise, as a full disk would."""
    real_replace = os.replace
    calls = []

    def replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_failed_write_raises(tiny_report, tmp_path, monkeypatch):
    fail_second_replace(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        tiny_report.write(tmp_path / "out")


def test_failed_write_leaves_nothing(tiny_report, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    fail_second_replace(monkeypatch)
    with pytest.raises(OSError):
        tiny_report.write(out)
    assert list(out.iterdir()) == []


def test_failed_write_keeps_other_files(tiny_report, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine\n")
    fail_second_replace(monkeypatch)
    with pytest.raises(OSError):
        tiny_report.write(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_overwrite_keeps_old_summary(tiny_report, tmp_path, monkeypatch):
    (tmp_path / "summary.json").write_text("{}\n")
    calls = fail_second_replace(monkeypatch)
    with pytest.raises(OSError):
        tiny_report.write(tmp_path)
    assert calls[-1] == tmp_path / "summary.json"
    assert (tmp_path / "summary.json").read_text() == "{}\n"


def test_failed_write_removes_temporary(tiny_report, tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class FullDisk:
        """A file whose writes fail, as on a full disk."""

        def __init__(self, handle, *args, **kwargs):
            self.file = real_fdopen(handle, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

        def write(self, text):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(OSError):
        tiny_report.write(tmp_path)
    assert list(tmp_path.iterdir()) == []


# layers.csv ---------------------------------------------------------------


def test_csv_header_is_columns(tiny_report):
    header = tiny_report.layers_csv().splitlines()[0]
    assert header == ",".join(CSV_COLUMNS)


def test_csv_row_count(rows, tiny):
    assert len(rows) == tiny.iterations * len(tiny.layer_names) * len(PASS_NAMES)


@pytest.mark.parametrize("column, attribute", [
    ("sparse_cycles", "cycles"),
    ("dense_macs", "dense_macs"),
    ("effective_macs", "effective_macs"),
    ("padded_macs", "padded_macs"),
    ("utilization", "utilization"),
    ("imbalance", "imbalance"),
    ("useful_cycles", "useful_cycles"),
    ("memory_stall_cycles", "memory_stall_cycles"),
    ("steps", "steps"),
])
def test_csv_equals_counters(tiny_report, rows, column, attribute):
    counters = [counter for counter, _ in tiny_report.sparse_rows]
    assert [float(row[column]) for row in rows] == [float(getattr(c, attribute))
                                                     for c in counters]


def test_csv_keys_match_counters(tiny_report, rows):
    counters = [counter for counter, _ in tiny_report.sparse_rows]
    assert [(int(r["iteration"]), r["layer"], r["pass"]) for r in rows] == \
        [(c.iteration, c.layer, c.pass_) for c in counters]


def test_csv_dense_cycles_per_layer(tiny_report, rows):
    expected = [tiny_report.dense_rows[(row["layer"], row["pass"])][0].cycles for row in rows]
    assert [float(row["dense_cycles"]) for row in rows] == expected


@pytest.mark.parametrize("component", COMPONENTS)
def test_csv_energy_equals_breakdown(tiny_report, rows, component):
    expected = [energy[component] for _, energy in tiny_report.sparse_rows]
    assert [float(row[f"sparse_energy_{component}_pj"]) for row in rows] == expected


def test_csv_effective_at_most_dense(rows):
    assert all(int(row["effective_macs"]) <= int(row["dense_macs"]) for row in rows)


# summary.json -------------------------------------------------------------


@pytest.mark.parametrize("run", ["sparse", "dense"])
def test_summary_cycles_equal_csv_sum(summary, rows, run):
    assert summary[run]["cycles"] == pytest.approx(column_sum(rows, f"{run}_cycles"),
                                                   rel=1e-12)


@pytest.mark.parametrize("run", ["sparse", "dense"])
def test_summary_energy_equals_csv_sum(summary, rows, run):
    assert summary[run]["energy_pj"] == pytest.approx(column_sum(rows, f"{run}_energy_pj"),
                                                      rel=1e-12)


@pytest.mark.parametrize("run", ["sparse", "dense"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_summary_breakdown_equals_csv_sum(summary, rows, run, component):
    total = column_sum(rows, f"{run}_energy_{component}_pj")
    assert summary[run]["energy_breakdown_pj"][component] == pytest.approx(total, rel=1e-12)


@pytest.mark.parametrize("run", ["sparse", "dense"])
def test_breakdown_sums_to_energy(summary, run):
    total = sum(summary[run]["energy_breakdown_pj"].values())
    assert summary[run]["energy_pj"] == pytest.approx(total, rel=1e-12)


def test_summary_effective_macs_equal_csv(summary, rows):
    assert summary["sparse"]["effective_macs"] == column_sum(rows, "effective_macs")


@pytest.mark.parametrize("pass_", PASS_NAMES)
def test_per_pass_cycles_equal_csv(summary, rows, pass_):
    chosen = [row for row in rows if row["pass"] == pass_]
    assert summary["per_pass"][pass_]["sparse_cycles"] == pytest.approx(
        column_sum(chosen, "sparse_cycles"), rel=1e-12)


def test_summary_lists_limitations(summary):
    assert summary["limitations"] == list(LIMITATIONS)


def test_limitations_not_empty(summary):
    assert summary["limitations"]


def test_summary_marks_synthetic_trace(summary):
    assert summary["trace"]["synthetic"] is True


def test_summary_has_no_nan(tiny_report):
    constants = []
    json.loads(tiny_report.summary_json(), parse_constant=constants.append)
    assert constants == []
