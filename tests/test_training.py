"""Tests of the numpy Dropback trainer on a tiny network and of its building blocks."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from procrustes_sim.cli import main
from procrustes_sim.errors import InputError
from procrustes_sim.trace import Trace
from procrustes_sim.training import DecaySchedule, QuantileSelector, TopKSelector
from procrustes_sim.training.network import (Network, init_weights, plan_network,
                                             softmax_cross_entropy)
from procrustes_sim.workload import load_workload, parse_topology

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn (extra 'train') provides the digits data set")

# Two convolutions on the 8 x 8 digits: conv1, a 2 x 2 max-pool, conv2, flatten, fc.
TINY_NET = (
    ("conv1", "conv", 1, 4, 8, 8, 3, 3, 1, 1, 1, 0, 1),
    ("conv2", "conv", 4, 8, 4, 4, 3, 3, 1, 1, 1, 0, 1),
    ("fc", "fc", 128, 10, 1, 1, 1, 1, 1, 0, 1, 0, 0),
)

GRAD_NET = """name,type,C,K,H,W,R,S,stride,padding,groups,bias,batchnorm
c1,conv,2,4,8,8,3,3,1,1,1,1,1
c2,conv,4,6,4,4,3,3,2,1,1,0,0
c3,conv,6,5,2,2,3,3,1,1,1,0,1
f1,fc,5,7,1,1,1,1,1,0,1,0,1
f2,fc,7,10,1,1,1,1,1,0,1,1,0
"""


def sequential_quantile(arrays, k, total, lam, threshold):
    """The estimator's recurrence, one value at a time."""
    q = 1 - k / total
    decisions = []
    for array in arrays:
        flat = []
        for value in np.abs(array).reshape(-1):
            if value > threshold:
                flat.append(True)
                threshold *= 1 + lam * q
            else:
                flat.append(False)
                threshold *= 1 - lam * (1 - q)
        decisions.append(np.array(flat).reshape(array.shape))
    return decisions, threshold


def test_quantile_matches_recurrence():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(20000).astype(np.float32) * 1e-2,
              rng.standard_normal((30, 40)).astype(np.float32) * 1e-3]
    selector = QuantileSelector(2000, 21200, lam=1e-3, threshold=1e-2)
    masks = selector.select(arrays)
    expected, threshold = sequential_quantile(arrays, 2000, 21200, 1e-3, 1e-2)
    for mask, reference in zip(masks, expected):
        assert np.array_equal(mask, reference)
    assert selector.threshold == pytest.approx(threshold, rel=1e-9)


def test_quantile_converges_near_k():
    rng = np.random.default_rng(4)
    values = [rng.standard_normal(50000).astype(np.float32)]
    selector = QuantileSelector(5000, 50000, lam=1e-3)
    for _ in range(5):
        masks = selector.select(values)
    tracked = int(masks[0].sum())
    assert abs(tracked - 5000) < 500


def test_topk_selects_largest():
    arrays = [np.array([0.5, -3.0, 0.1], np.float32), np.array([[2.0, -0.2]], np.float32)]
    masks = TopKSelector(2, 5).select(arrays)
    assert masks[0].tolist() == [False, True, False]
    assert masks[1].tolist() == [[True, False]]


def test_decay_reaches_exact_zero():
    schedule = DecaySchedule(0.5, epsilon=0.1)
    assert schedule.zero_from == 4
    assert schedule.scale(3) == 0.125
    assert schedule.scale(4) == 0.0


def test_plan_vgg_pools_and_flattens():
    stages = plan_network(load_workload("vgg_s"))
    pooled = [stage.layer.name for stage in stages if stage.pool_after]
    assert pooled == ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"]
    assert stages[13].flatten_before
    assert not stages[14].relu


def test_plan_rejects_residual_net():
    with pytest.raises(InputError, match="plain chain"):
        plan_network(load_workload("resnet18_cifar"))


def test_gradients_match_differences():
    workload = parse_topology(GRAD_NET, "grad")
    stages = plan_network(workload)
    rng = np.random.default_rng(0)
    weights = [w.astype(np.float64) for w in init_weights(stages, rng)]
    network = Network(stages)
    images = rng.standard_normal((3, 8, 8, 2))
    labels = np.array([1, 2, 3])

    def loss():
        return softmax_cross_entropy(network.forward(images, weights, True), labels)[0]

    logits = network.forward(images, weights, True)
    _, dlogits = softmax_cross_entropy(logits, labels)
    grads = network.backward(dlogits.astype(np.float64), weights)
    for index, weight in enumerate(weights):
        position = tuple(int(rng.integers(0, size)) for size in weight.shape)
        weight[position] += 1e-5
        above = loss()
        weight[position] -= 2e-5
        below = loss()
        weight[position] += 1e-5
        numeric = (above - below) / 2e-5
        assert grads["weights"][index][position] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory, make_topology):
    return make_topology(tmp_path_factory.mktemp("net") / "tinynet.csv", TINY_NET)


def generate(csv, out, *extra):
    return main(["trace", "generate", "--workload", str(csv), "--iterations", "12",
                 "--batch", "8", "--record", "0,5,11", "--decay", "0.5", "--lam", "1e-3",
                 "--lr", "0.05", "--out", str(out), "-q", *extra])


@needs_sklearn
def test_generate_writes_real_trace(tiny_csv, tmp_path):
    out = tmp_path / "t.pstrace"
    assert generate(tiny_csv, out) == 0
    with Trace.open(out) as trace:
        assert trace.iterations == (0, 5, 11)
        assert trace.synthetic is False
        assert trace.provenance["dataset"] == "sklearn-digits-8x8"
        assert trace.provenance["seed"] == 0
        assert trace.provenance["settings"]["selection"] == "quantile"


@needs_sklearn
def test_generate_is_bit_for_bit(tiny_csv, tmp_path):
    first, second = tmp_path / "a.pstrace", tmp_path / "b.pstrace"
    generate(tiny_csv, first)
    generate(tiny_csv, second)
    assert hashlib.sha256(first.read_bytes()).digest() == \
        hashlib.sha256(second.read_bytes()).digest()


@needs_sklearn
def test_dense_selection_writes_trace(tiny_csv, tmp_path):
    out = tmp_path / "d.pstrace"
    assert generate(tiny_csv, out, "--selection", "dense") == 0
    with Trace.open(out) as trace:
        assert trace.provenance["algorithm"] == "dense SGD"


@needs_sklearn
def test_topk_density_after_decay(tiny_csv, tmp_path):
    out = tmp_path / "k.pstrace"
    generate(tiny_csv, out, "--selection", "topk", "--density", "0.2")
    with Trace.open(out) as trace:
        nonzero = sum(int(trace.load(11, name).weights.sum()) for name in trace.layer_names)
        total = sum(trace.load(11, name).weights.size for name in trace.layer_names)
        assert nonzero <= round(0.2 * total)
        # Iteration 0 still holds every initial weight.
        assert all(trace.load(0, name).weights.all() for name in trace.layer_names)


@needs_sklearn
def test_generate_metrics_file(tiny_csv, tmp_path):
    import json

    metrics = tmp_path / "m.json"
    generate(tiny_csv, tmp_path / "t.pstrace", "--metrics", str(metrics))
    data = json.loads(metrics.read_text())
    assert len(data["history"]) == 12
    assert 0.0 <= data["held_out_accuracy"] <= 1.0


def test_generate_bad_record(tiny_csv, tmp_path, capsys):
    out = tmp_path / "t.pstrace"
    assert generate(tiny_csv, out, "--record", "0,99") == 2
    assert "record iteration 99" in capsys.readouterr().err
    assert not out.exists()


def test_generate_rejects_resnet(tmp_path, capsys):
    out = tmp_path / "t.pstrace"
    code = main(["trace", "generate", "--workload", "resnet18_cifar", "--out", str(out), "-q"])
    assert code == 2
    assert "plain chain" in capsys.readouterr().err
    assert not out.exists()
