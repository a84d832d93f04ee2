"""Tests of importing the Procrustes authors' masks and PyTorch-ordered weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from procrustes_sim.cli import main
from procrustes_sim.errors import InputError
from procrustes_sim.importers import import_timeloop_masks, import_weight_arrays
from procrustes_sim.simulation import simulate
from procrustes_sim.trace import LayerMasks, Trace, TraceWriter


def random_weight_masks(workload, seed, samples=None):
    """{layer: bool (K, C, R, S)} or, with *samples*, (samples, K, C, R, S)."""
    rng = np.random.default_rng(seed)
    masks = {}
    for layer in workload.layers:
        shape = layer.weight_shape if samples is None else (samples, *layer.weight_shape)
        masks[layer.name] = rng.random(shape) < 0.3
    return masks


def save_timeloop(folder, workload, masks, model="net"):
    """Write *masks* (..., K, C, R, S) in the authors' layout: (..., R, S, C, K) or (..., C, K)."""
    folder.mkdir(exist_ok=True)
    for layer in workload.layers:
        mask = masks[layer.name]
        if layer.kind == "fc":
            array = np.swapaxes(mask[..., 0, 0], -1, -2)
        else:
            array = np.moveaxis(mask, (-4, -3, -2, -1), (-1, -2, -4, -3))
        np.save(folder / f"{model}_{layer.name}.npy", array)
    return folder


def test_timeloop_replays_like_direct(tiny, tmp_path):
    masks = random_weight_masks(tiny.workload, 1)
    folder = save_timeloop(tmp_path / "masks", tiny.workload, masks)
    imported = import_timeloop_masks(folder, tiny.workload, tiny.batch, tmp_path / "imp.pstrace")

    direct = tmp_path / "direct.pstrace"
    with TraceWriter(direct, tiny.workload, tiny.batch, synthetic=False,
                     provenance={"generator": "test"}) as writer:
        for layer in tiny.workload.layers:
            ones_x = np.ones(layer.input_shape(tiny.batch), bool)
            ones_dy = np.ones(layer.output_shape(tiny.batch), bool)
            writer.add(0, layer.name, LayerMasks(masks[layer.name], ones_x, ones_dy))

    from_import = simulate(imported, workload=str(tiny.csv))
    from_direct = simulate(direct, workload=str(tiny.csv))
    assert from_import.speedup == from_direct.speedup
    assert from_import.energy_ratio == from_direct.energy_ratio


def test_timeloop_samples_axis(tiny, tmp_path):
    masks = random_weight_masks(tiny.workload, 2, samples=3)
    folder = save_timeloop(tmp_path / "masks", tiny.workload, masks)
    out = import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace",
                                iterations=[0, 50, 100])
    with Trace.open(out) as trace:
        assert trace.iterations == (0, 50, 100)
        loaded = trace.load(50, "conv2")
        assert np.array_equal(loaded.weights, masks["conv2"][1])
        assert loaded.inputs.all()
        assert "dense" in trace.provenance["note"]


def test_timeloop_fc_transposed(tiny, tmp_path):
    masks = random_weight_masks(tiny.workload, 3)
    folder = save_timeloop(tmp_path / "masks", tiny.workload, masks)
    out = import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")
    with Trace.open(out) as trace:
        assert np.array_equal(trace.load(0, "fc").weights, masks["fc"])


def test_timeloop_label_says_dense(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 4))
    out = import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")
    with Trace.open(out) as trace:
        assert "X, dY dense" in trace.describe()


def test_timeloop_empty_directory(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .npy files"):
        import_timeloop_masks(tmp_path / "empty", tiny.workload, 2, tmp_path / "t.pstrace")


def test_timeloop_shape_mismatch(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 5))
    np.save(folder / "net_conv2.npy", np.ones((3, 3, 32, 31), bool))
    with pytest.raises(InputError, match=r"layer 'conv2'.*\(3, 3, 32, 31\).*\(3, 3, 32, 32\)"):
        import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")
    assert not (tmp_path / "t.pstrace").exists()


def test_timeloop_rejects_nan(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 6))
    values = np.ones((3, 3, 16, 32))
    values[0, 0, 0, 0] = np.nan
    np.save(folder / "net_conv1.npy", values)
    with pytest.raises(InputError, match="value nan"):
        import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")


def test_timeloop_rejects_pickle(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 7))
    np.save(folder / "net_conv1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="allow_pickle=False"):
        import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")


def test_timeloop_rejects_text_file(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 9))
    (folder / "net_conv1.npy").write_text("not numpy at all\n")
    with pytest.raises(InputError, match="not a .npy file"):
        import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")


def test_timeloop_missing_layer(tiny, tmp_path):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 8))
    (folder / "net_fc.npy").unlink()
    with pytest.raises(InputError, match="layer 'fc'"):
        import_timeloop_masks(folder, tiny.workload, 2, tmp_path / "t.pstrace")


def pytorch_weights(workload, seed):
    """Float weights in (K, C, R, S), or (K, C) for fc, with about 70% zeros."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for layer in workload.layers:
        values = rng.standard_normal(layer.weight_shape).astype(np.float32)
        values[rng.random(layer.weight_shape) < 0.7] = 0.0
        arrays[layer.name] = values[:, :, 0, 0] if layer.kind == "fc" else values
    return arrays


def test_pytorch_order_rule(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 1)
    archive = tmp_path / "state.npz"
    # PyTorch-style names with biases in between; the rule maps by order.
    entries = {}
    for index, (name, values) in enumerate(weights.items()):
        entries[f"features.{index}.weight"] = values
        entries[f"features.{index}.bias"] = np.zeros(values.shape[0], np.float32)
    np.savez(archive, **entries)
    out = import_weight_arrays(archive, tiny.workload, 2, tmp_path / "t.pstrace")
    with Trace.open(out) as trace:
        assert np.array_equal(trace.load(0, "conv2").weights, weights["conv2"] != 0)
        fc = trace.load(0, "fc").weights
        assert np.array_equal(fc[:, :, 0, 0], weights["fc"] != 0)


def test_pytorch_layer_names(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 2)
    folder = tmp_path / "npy"
    folder.mkdir()
    for name, values in weights.items():
        np.save(folder / f"{name}.weight.npy", values)
    out = import_weight_arrays(folder, tiny.workload, 2, tmp_path / "t.pstrace")
    with Trace.open(out) as trace:
        assert np.array_equal(trace.load(0, "conv1").weights, weights["conv1"] != 0)


def test_pytorch_mapping_file(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 3)
    np.savez(tmp_path / "w.npz", a=weights["fc"], b=weights["conv1"], c=weights["conv2"])
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"a": "fc", "b": "conv1", "c": "conv2"}))
    out = import_weight_arrays(tmp_path / "w.npz", tiny.workload, 2, tmp_path / "t.pstrace",
                               mapping=mapping)
    with Trace.open(out) as trace:
        assert np.array_equal(trace.load(0, "conv2").weights, weights["conv2"] != 0)
        assert trace.provenance["mapping"]["fc"] == "a"


def test_pytorch_shape_names_layer(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 4)
    weights["conv2"] = weights["conv2"][:, :, :2]
    np.savez(tmp_path / "w.npz", **weights)
    with pytest.raises(InputError, match=r"layer 'conv2'.*\(32, 32, 2, 3\).*\(32, 32, 3, 3\)"):
        import_weight_arrays(tmp_path / "w.npz", tiny.workload, 2, tmp_path / "t.pstrace")


def test_pytorch_rejects_nan(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 5)
    weights["conv1"][0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "w.npz", **weights)
    with pytest.raises(InputError, match="nan"):
        import_weight_arrays(tmp_path / "w.npz", tiny.workload, 2, tmp_path / "t.pstrace")


def test_pytorch_rejects_pickle(tiny, tmp_path):
    weights = pytorch_weights(tiny.workload, 6)
    weights["conv1"] = np.array([None], dtype=object)
    np.savez(tmp_path / "w.npz", **weights)
    with pytest.raises(InputError, match="allow_pickle=False"):
        import_weight_arrays(tmp_path / "w.npz", tiny.workload, 2, tmp_path / "t.pstrace")


def test_cli_import_timeloop(tiny, tmp_path, capsys):
    folder = save_timeloop(tmp_path / "m", tiny.workload, random_weight_masks(tiny.workload, 9))
    out = tmp_path / "t.pstrace"
    code = main(["trace", "import", str(folder), "--format", "timeloop", "--workload",
                 str(tiny.csv), "--batch", "2", "--out", str(out), "-q"])
    assert code == 0
    assert "dense" in capsys.readouterr().out
    assert out.exists()


def test_cli_import_empty_dir(tiny, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "t.pstrace"
    code = main(["trace", "import", str(tmp_path / "empty"), "--format", "timeloop",
                 "--workload", str(tiny.csv), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no .npy files" in err
    assert not out.exists()
