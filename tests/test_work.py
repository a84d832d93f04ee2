"""Work analysis against brute force, and the per-PE view against the folded one."""

import numpy as np
import pytest

import dataflows
from helpers import SMALL_LAYERS, brute_force_macs, random_masks
from procrustes_sim.config import load_arch
from procrustes_sim.mapping import map_pass
from procrustes_sim.work import expand_weights, group_structure, pe_work, tile_work
from procrustes_sim.workload import PASSES, Layer, Tensor

BATCH = 3
SKIPS = (None, Tensor.W, Tensor.X, Tensor.DY)


@pytest.fixture(scope="module")
def arch():
    return load_arch()


@pytest.mark.parametrize("layer", SMALL_LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("dataflow", dataflows.available())
def test_effective_macs_match_brute_force(arch, layer, dataflow):
    masks = random_masks(layer, BATCH, seed=1)
    expected = {skip: brute_force_macs(layer, BATCH, skip, masks) for skip in SKIPS}
    for pass_ in PASSES:
        mapping = map_pass(layer, pass_, BATCH, arch, dataflows.load(dataflow))
        for skip in SKIPS:
            work = tile_work(mapping, skip, masks)
            assert work.total_effective_macs == expected[skip], (pass_, skip)


@pytest.mark.parametrize("layer", SMALL_LAYERS, ids=lambda layer: layer.name)
@pytest.mark.parametrize("dataflow", dataflows.available())
def test_per_pe_view_matches_folded(arch, layer, dataflow):
    masks = random_masks(layer, BATCH, seed=2)
    for pass_ in PASSES:
        mapping = map_pass(layer, pass_, BATCH, arch, dataflows.load(dataflow))
        for skip in SKIPS:
            folded = tile_work(mapping, skip, masks)
            steps = pe_work(mapping, skip, masks)
            assert steps.shape[0] == mapping.tiles
            assert np.array_equal(steps.max(axis=(2, 3)).sum(axis=1), folded.busiest_macs)
            assert np.array_equal(steps.sum(axis=(1, 2, 3)), folded.effective_macs)


def test_dense_macs_exclude_padding(arch):
    layer = Layer("edge", "conv", C=1, K=1, H=2, W=2, R=3, S=3, padding=1)
    mapping = map_pass(layer, PASSES[0], 1, arch, dataflows.load("CxN"))
    work = tile_work(mapping, None, None)
    # Each of the 4 outputs sees the 2 x 2 input through 4 in-bounds taps.
    assert work.total_effective_macs == 16
    assert layer.macs(1) == 36


def test_all_zero_weights_do_no_work(arch):
    layer = SMALL_LAYERS[0]
    masks = random_masks(layer, BATCH, seed=3)
    masks.weights[:] = False
    mapping = map_pass(layer, PASSES[0], BATCH, arch, dataflows.load("CxN"))
    work = tile_work(mapping, Tensor.W, masks)
    assert work.total_effective_macs == 0
    assert work.busiest_macs.sum() == 0


def test_busiest_pe_bounds_mean(arch):
    layer = SMALL_LAYERS[2]
    masks = random_masks(layer, BATCH, seed=4, density=0.2)
    mapping = map_pass(layer, PASSES[0], BATCH, arch, dataflows.load("CxK"))
    work = tile_work(mapping, Tensor.W, masks)
    assert np.all(work.busiest_macs + 1e-9 >= work.balanced_macs)
    assert np.all(work.balanced_macs + 1e-9 >= work.spread_macs)


def test_group_structure_is_block_diagonal():
    layer = Layer("g", "conv", C=4, K=6, H=3, W=3, R=1, S=1, groups=2)
    structure = group_structure(layer)
    assert structure.sum() == layer.K * layer.channels_per_group
    assert structure[0, :2].all()
    assert not structure[0, 2:].any()


def test_expand_weights_places_groups():
    layer = Layer("g", "conv", C=4, K=2, H=3, W=3, R=1, S=1, groups=2)
    weights = np.ones(layer.weight_shape, dtype=bool)
    full = expand_weights(layer, weights)
    assert full.shape == (2, 4, 1, 1)
    assert full[:, :, 0, 0].tolist() == [[True, True, False, False], [False, False, True, True]]
