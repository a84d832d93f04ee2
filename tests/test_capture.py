"""Tests of the optional PyTorch mask recorder."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the optional extra 'torch'")

from procrustes_sim.capture import MaskRecorder  # noqa: E402
from procrustes_sim.errors import InputError  # noqa: E402
from procrustes_sim.trace import Trace  # noqa: E402


def tiny_model():
    """Torch twin of the tiny workload: conv1, conv2, global average pool, fc."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1, bias=False), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 32, 3, padding=1, bias=False), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))


def test_capture_records_masks(tiny, tmp_path):
    model = tiny_model()
    with torch.no_grad():
        model[2].weight[:, :4] = 0.0
    recorder = MaskRecorder(model, tiny.workload, tiny.batch, tmp_path / "c.pstrace")
    images = torch.randn(tiny.batch, 16, 8, 8)
    with recorder.capture(3):
        hidden = model[1](model[0](images))
        model(images).sum().backward()
    path = recorder.close()
    with Trace.open(path) as trace:
        assert trace.iterations == (3,)
        conv2 = trace.load(3, "conv2")
        assert not conv2.weights[:, :4].any()
        assert np.array_equal(conv2.inputs, (hidden != 0).numpy())
        assert trace.load(3, "fc").output_grads.shape == (tiny.batch, 10, 1, 1)


def test_capture_disabled_adds_nothing(tiny, tmp_path):
    model = tiny_model()
    recorder = MaskRecorder(model, tiny.workload, tiny.batch, tmp_path / "c.pstrace")
    with recorder.capture(0, enabled=False):
        model(torch.randn(tiny.batch, 16, 8, 8)).sum().backward()
    with pytest.raises(InputError, match="no masks"):
        recorder.close()


def test_capture_needs_backward(tiny, tmp_path):
    model = tiny_model()
    recorder = MaskRecorder(model, tiny.workload, tiny.batch, tmp_path / "c.pstrace")
    with pytest.raises(InputError, match="recorded no dY"):
        with recorder.capture(0):
            model(torch.randn(tiny.batch, 16, 8, 8))
    recorder.discard()
    assert not (tmp_path / "c.pstrace").exists()
