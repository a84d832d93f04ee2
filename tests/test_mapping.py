"""Mapping: resolved extents, buffer limits and the GLB order search."""

import dataclasses

import pytest

import dataflows
from procrustes_sim.config import load_arch
from procrustes_sim.errors import InputError
from procrustes_sim.layouts import get_layout
from procrustes_sim.mapping import (SEARCH_TIE, dense_compute_cycles, dram_words, map_pass,
                                    mapping_score)
from procrustes_sim.traffic import tile_traffic
from procrustes_sim.workload import DIMS, PASSES, Dim, Layer, Pass, load_workload

ARCH = load_arch()


@pytest.mark.parametrize("dataflow", dataflows.available())
@pytest.mark.parametrize("pass_", PASSES, ids=lambda p: p.value)
def test_vgg_tiles_fit_buffers(dataflow, pass_):
    for layer in load_workload("vgg_s").layers:
        mapping = map_pass(layer, pass_, 16, ARCH, dataflows.load(dataflow))
        assert mapping.rf_words_used <= ARCH.rf_words, layer.name
        assert mapping.glb_words_used <= ARCH.glb_words, layer.name


def test_cxn_maps_channels_and_batch():
    layer = load_workload("vgg_s").layer("conv3_2")
    mapping = map_pass(layer, Pass.FW, 16, ARCH, dataflows.load("CxN"))
    assert mapping.rows == Dim.C
    assert mapping.cols == Dim.N
    assert mapping.step_count(Dim.C) == 256 // 16
    assert mapping.step_count(Dim.N) == 1


def test_steps_cover_every_index():
    layer = Layer("odd", "conv", C=37, K=11, H=9, W=9, R=3, S=3, padding=1)
    mapping = map_pass(layer, Pass.FW, 5, ARCH, dataflows.load("CxN"))
    for dim in DIMS:
        covered = mapping.step_count(dim) * mapping.block(dim)
        assert covered >= mapping.sizes[dim], dim
        assert covered - mapping.block(dim) < mapping.sizes[dim], dim


def test_partial_tile_counts_idle_rows():
    layer = Layer("rgb", "conv", C=3, K=16, H=8, W=8, R=3, S=3, padding=1)
    mapping = map_pass(layer, Pass.FW, 16, ARCH, dataflows.load("CxN"))
    assert mapping.step_count(Dim.C) == 1
    assert min(mapping.array_size(Dim.C), layer.C) == 3


def test_oversized_fixed_tile_rejected(tmp_path):
    spec = tmp_path / "big.yaml"
    passes = "\n".join(f"  {p.value}:\n    spatial: {{rows: C, cols: N}}\n"
                       "    loop_order: [N, C, P, Q, K, R, S]\n"
                       "    rf_tile: {R: full, S: full, P: full, Q: full}\n"
                       "    glb_tile: search" for p in PASSES)
    spec.write_text(f"name: big\npasses:\n{passes}\n")
    layer = Layer("big", "conv", C=16, K=16, H=32, W=32, R=3, S=3, padding=1)
    with pytest.raises(InputError, match="RF tile needs"):
        map_pass(layer, Pass.FW, 16, ARCH, dataflows.load(spec))


def test_small_glb_rejected():
    small = dataclasses.replace(ARCH, glb_kib=1)
    layer = load_workload("vgg_s").layer("conv3_2")
    with pytest.raises(InputError, match="GLB"):
        map_pass(layer, Pass.FW, 16, small, dataflows.load("CxK"))


def test_dram_estimate_matches_traffic():
    layer = Layer("pointwise", "conv", C=64, K=64, H=16, W=16, R=1, S=1)
    for name in dataflows.available():
        for pass_ in PASSES:
            mapping = map_pass(layer, pass_, 16, ARCH, dataflows.load(name))
            traffic = tile_traffic(mapping, ARCH, get_layout("dense"), None)
            moved = (traffic.dram_read_bits.sum() + traffic.dram_write_bits.sum()) / 32
            assert moved == dram_words(mapping), (name, pass_)


def test_search_beats_listed_order():
    layer = load_workload("resnet50_imagenet").layer("layer2.0.conv1")
    searched = map_pass(layer, Pass.FW, 16, ARCH, dataflows.load("CxN"))
    fixed = dataclasses.replace(searched, glb_order=searched.loop_order,
                                glb_extent={d: 1 for d in DIMS})
    compute = dense_compute_cycles(searched, ARCH)
    searched_cycles = mapping_score(searched, ARCH, compute)[0]
    fixed_cycles = mapping_score(fixed, ARCH, compute)[0]
    assert searched_cycles <= fixed_cycles * (1 + SEARCH_TIE)
