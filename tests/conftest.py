"""Fixtures shared by the CLI, config and report tests: a tiny workload and its trace.

The tiny workload has two 8 x 8 convolutions and a fully connected layer,
so one simulation of it takes a fraction of a second. Tests must not change
the files of session fixtures, so a test that changes files makes its own
in ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from procrustes_sim.trace import synthesize
from procrustes_sim.workload import CSV_COLUMNS, load_workload

# (name, type, C, K, H, W, R, S, stride, padding, groups, bias, batchnorm)
TINY_LAYERS = (
    ("conv1", "conv", 16, 32, 8, 8, 3, 3, 1, 1, 1, 0, 0),
    ("conv2", "conv", 32, 32, 8, 8, 3, 3, 1, 1, 1, 0, 0),
    ("fc", "fc", 32, 10, 1, 1, 1, 1, 1, 0, 1, 0, 0),
)
TINY_BATCH = 4
TINY_ITERATIONS = 2
TINY_SEED = 7


def write_topology(path: Path, layers) -> Path:
    """Write a topology CSV with one row per tuple of *layers* and return *path*."""
    lines = [",".join(CSV_COLUMNS)]
    lines += [",".join(str(value) for value in layer) for layer in layers]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def make_topology():
    """write_topology, for tests that build their own topologies."""
    return write_topology


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The tiny topology CSV and a seeded synthetic trace of it (batch 4, 2 iterations)."""
    folder = tmp_path_factory.mktemp("tiny")
    csv_path = write_topology(folder / "tiny.csv", TINY_LAYERS)
    workload = load_workload(csv_path)
    trace_path = synthesize(workload, TINY_BATCH, folder / "tiny.pstrace", density=0.3,
                            iterations=TINY_ITERATIONS, seed=TINY_SEED)
    return SimpleNamespace(csv=csv_path, trace=trace_path, workload=workload,
                           layers=TINY_LAYERS, layer_names=[row[0] for row in TINY_LAYERS],
                           batch=TINY_BATCH, iterations=TINY_ITERATIONS)


@pytest.fixture(scope="session")
def tiny_report(tiny):
    """The report of one simulation of the tiny trace with default settings."""
    from procrustes_sim.simulation import simulate

    return simulate(tiny.trace, workload=str(tiny.csv))
