"""Small workloads, masks and brute-force counts shared by the tests."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np

from procrustes_sim.work import expand_weights
from procrustes_sim.workload import Layer, Tensor

SMALL_LAYERS = (
    Layer("padded", "conv", C=5, K=7, H=6, W=6, R=3, S=3, stride=1, padding=1),
    Layer("grouped", "conv", C=4, K=6, H=7, W=7, R=3, S=3, stride=2, padding=1, groups=2),
    Layer("wide", "conv", C=20, K=18, H=5, W=5, R=3, S=3),
    Layer("depthwise", "conv", C=6, K=6, H=5, W=5, R=3, S=3, padding=1, groups=6),
    Layer("fc", "fc", C=33, K=21, H=1, W=1, R=1, S=1),
)


def random_masks(layer: Layer, batch: int, seed: int, density: float = 0.3):
    """Bernoulli masks of one layer with the attribute names of LayerMasks."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(weights=rng.random(layer.weight_shape) < density,
                           inputs=rng.random(layer.input_shape(batch)) < 0.5,
                           output_grads=rng.random(layer.output_shape(batch)) < 0.5)


def brute_force_macs(layer: Layer, batch: int, skip: Tensor | None, masks) -> int:
    """Count effective MACs by visiting every (n, k, c, r, s, p, q) product."""
    weights = expand_weights(layer, masks.weights) if skip == Tensor.W else None
    total = 0
    for k, c, r, s, p, q in itertools.product(range(layer.K), range(layer.C), range(layer.R),
                                              range(layer.S), range(layer.P), range(layer.Q)):
        if k // layer.filters_per_group != c // layer.channels_per_group:
            continue
        h = p * layer.stride + r - layer.padding
        w = q * layer.stride + s - layer.padding
        if not (0 <= h < layer.H and 0 <= w < layer.W):
            continue
        for n in range(batch):
            if skip == Tensor.W and not weights[k, c, r, s]:
                continue
            if skip == Tensor.X and not masks.inputs[n, c, h, w]:
                continue
            if skip == Tensor.DY and not masks.output_grads[n, k, p, q]:
                continue
            total += 1
    return total
