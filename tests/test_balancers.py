"""Balancers and layouts on whole runs: the invariants they must keep."""

import numpy as np
import pytest

from helpers import SMALL_LAYERS
from procrustes_sim import simulate
from procrustes_sim.balancers import deal_blocks, pair_steps
from procrustes_sim.errors import InputError
from procrustes_sim.layouts import LAYOUT_NAMES
from procrustes_sim.trace import synthesize
from procrustes_sim.workload import Layer, Workload

BALANCERS = ("none", "ideal", "block-reorder", "sparten")
WORKLOAD = Workload("small", SMALL_LAYERS[:3] + (
    Layer("deep", "conv", C=48, K=40, H=6, W=6, R=3, S=3, padding=1),))


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("balance")
    sparse = synthesize(WORKLOAD, 4, folder / "sparse.pstrace", density=0.15, seed=11)
    full = synthesize(WORKLOAD, 4, folder / "full.pstrace", density=1.0, act_density=1.0,
                      grad_density=1.0, seed=11)
    return sparse, full


@pytest.fixture(scope="module")
def balanced_runs(traces):
    cache: dict = {}
    return {name: simulate(traces[0], workload=WORKLOAD, balancer=name, dense_cache=cache)
            for name in BALANCERS}


@pytest.mark.parametrize("name", BALANCERS)
def test_ideal_never_slower(balanced_runs, name):
    ideal = balanced_runs["ideal"]
    other = balanced_runs[name]
    for (a, _), (b, _) in zip(ideal.sparse_rows, other.sparse_rows):
        assert a.cycles <= b.cycles + 1e-6, (a.layer, a.pass_)


def test_block_reorder_never_slower_than_none(balanced_runs):
    reorder = balanced_runs["block-reorder"]
    none = balanced_runs["none"]
    for (a, _), (b, _) in zip(reorder.sparse_rows, none.sparse_rows):
        assert a.cycles <= b.cycles + 1e-6, (a.layer, a.pass_)


def test_block_reorder_moves_blocks(balanced_runs):
    moved = sum(c.extra["moved_blocks"] for c, _ in balanced_runs["block-reorder"].sparse_rows)
    assert moved > 0


def test_block_reorder_reduces_imbalance(balanced_runs):
    reorder = balanced_runs["block-reorder"].sparse["imbalance_stall_cycles"]
    none = balanced_runs["none"].sparse["imbalance_stall_cycles"]
    assert reorder < none


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_full_masks_no_layout_beats_dense(traces, layout):
    cache: dict = {}
    dense = simulate(traces[1], workload=WORKLOAD, layout="dense", dense_cache=cache)
    other = simulate(traces[1], workload=WORKLOAD, layout=layout, dense_cache=cache)
    for (a, _), (b, _) in zip(dense.sparse_rows, other.sparse_rows):
        assert b.cycles >= a.cycles - 1e-6, (layout, a.layer, a.pass_)


def test_overheads_have_own_energy_lines(balanced_runs):
    breakdown = balanced_runs["none"].sparse["energy_breakdown_pj"]
    for component in ("encode", "quantile", "overflow"):
        assert breakdown[component] > 0, component


def test_dense_baseline_has_no_training_overheads(balanced_runs):
    breakdown = balanced_runs["none"].dense["energy_breakdown_pj"]
    for component in ("encode", "quantile", "prng", "overflow", "transpose"):
        assert breakdown[component] == 0, component


def test_reencoded_transpose_is_charged(traces):
    report = simulate(traces[0], workload=WORKLOAD, layout="csr", transpose="reencode")
    assert report.sparse["energy_breakdown_pj"]["transpose"] > 0


def test_scattered_transpose_is_charged(traces):
    report = simulate(traces[0], workload=WORKLOAD, layout="csr", transpose="scatter")
    assert report.sparse["energy_breakdown_pj"]["transpose"] > 0


def test_block_mask_transpose_is_free(traces):
    report = simulate(traces[0], workload=WORKLOAD, layout="block-mask")
    assert report.sparse["energy_breakdown_pj"]["transpose"] == 0


def test_prng_charged_before_decay(tmp_path):
    path = tmp_path / "decay.pstrace"
    from procrustes_sim.trace import LayerMasks, TraceWriter

    rng = np.random.default_rng(3)
    provenance = {"generator": "test", "initial_values_zero_at": 1, "tracked_fraction": 0.25}
    with TraceWriter(path, WORKLOAD, 4, synthetic=True, provenance=provenance) as writer:
        for iteration in (0, 1):
            for layer in WORKLOAD.layers:
                writer.add(iteration, layer.name, LayerMasks(
                    weights=rng.random(layer.weight_shape) < 0.5,
                    inputs=rng.random(layer.input_shape(4)) < 0.5,
                    output_grads=rng.random(layer.output_shape(4)) < 0.5))
    report = simulate(path, workload=WORKLOAD)
    prng = {}
    for counters, energy in report.sparse_rows:
        prng[counters.iteration] = prng.get(counters.iteration, 0.0) + energy["prng"]
    assert prng[0] > 0
    assert prng[1] == 0


def test_rf_too_small_for_block_rejected(traces):
    with pytest.raises(InputError, match="too small for one"):
        simulate(traces[0], workload=WORKLOAD, rf_density=1.0, layout="block-mask",
                 arch=_tiny_rf_arch())


def _tiny_rf_arch():
    import dataclasses

    from procrustes_sim.config import load_arch
    # 8 words cannot hold one 3x3 block.
    return dataclasses.replace(load_arch(), rf_words=8)


def test_deal_blocks_hand_case():
    # One tile, two steps, two rows: loads 5+1 and 1+1; moving the 1 of
    # the busy row evens them to 5 and 3.
    work = np.array([[[5.0, 1.0], [1.0, 1.0]]])
    result = deal_blocks(work)
    assert result.busiest_macs[0] == 5.0
    assert result.moved_blocks[0] == 1


def test_pair_steps_hand_case():
    # Steps with totals 10, 2, 6, 4 pair as (10, 2) and (6, 4).
    work = np.array([[[6.0, 4.0], [1.0, 1.0], [3.0, 3.0], [2.0, 2.0]]])
    result = pair_steps(work)
    assert result.busiest_macs[0] == (6 + 1) + (3 + 2)
