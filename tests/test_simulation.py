"""Whole-network runs: the sparse run against the dense baseline."""

import pytest

from procrustes_sim import simulate
from procrustes_sim.trace import synthesize
from procrustes_sim.workload import load_workload


@pytest.fixture(scope="module")
def vgg_traces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vgg")
    workload = load_workload("vgg_s")
    full = synthesize(workload, 16, folder / "full.pstrace", density=1.0, act_density=1.0,
                      grad_density=1.0, seed=0)
    sparse = synthesize(workload, 16, folder / "sparse.pstrace", density=0.1, seed=0)
    return full, sparse


@pytest.fixture(scope="module")
def full_report(vgg_traces):
    return simulate(vgg_traces[0])


@pytest.fixture(scope="module")
def sparse_report(vgg_traces):
    return simulate(vgg_traces[1])


def test_full_density_costs_only_metadata(full_report):
    assert 0.9 <= full_report.speedup <= 1.0


def test_full_density_conserves_macs(full_report):
    for counters, _ in full_report.sparse_rows:
        assert counters.effective_macs == counters.dense_macs, (counters.layer, counters.pass_)


def test_ten_percent_density_speeds_up(sparse_report):
    assert 1.0 < sparse_report.speedup < 10.0


def test_ten_percent_density_saves_energy(sparse_report):
    assert sparse_report.energy_ratio > 1.0


def test_dense_baseline_has_no_metadata(sparse_report):
    assert sparse_report.dense["energy_breakdown_pj"]["metadata"] == 0


def test_block_mask_charges_metadata(sparse_report):
    assert sparse_report.sparse["energy_breakdown_pj"]["metadata"] > 0


def test_dense_layout_has_no_metadata(vgg_traces):
    report = simulate(vgg_traces[1], layout="dense", iterations=1)
    assert report.sparse["energy_breakdown_pj"]["metadata"] == 0


def test_runs_are_deterministic(vgg_traces, sparse_report):
    again = simulate(vgg_traces[1])
    assert again.summary_json() == sparse_report.summary_json()
    assert again.layers_csv() == sparse_report.layers_csv()


def test_default_run_is_labelled_synthetic():
    report = simulate(workload="resnet18_cifar", batch=2)
    assert report.header["trace"]["synthetic"] is True
    assert "SYNTHETIC" in report.format_table()


def test_skip_none_matches_dense_work(vgg_traces):
    report = simulate(vgg_traces[1], skip="FW=none,BW=none,WU=none", layout="dense")
    for counters, _ in report.sparse_rows:
        assert counters.effective_macs == counters.dense_macs
