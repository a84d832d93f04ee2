"""The tile pipeline: exact timelines, the closed form and the per-PE mode."""

import dataclasses

import numpy as np
import pytest

from helpers import SMALL_LAYERS
from procrustes_sim import simulate
from procrustes_sim.config import load_arch
from procrustes_sim.engine import TileSchedule, run_pass
from procrustes_sim.errors import SimulationError
from procrustes_sim.trace import synthesize
from procrustes_sim.workload import Workload


def schedule(load, compute, ports, drain, **extra):
    return TileSchedule(load_cycles=np.array(load, dtype=float),
                        compute_cycles=np.array(compute, dtype=float),
                        port_cycles=np.array(ports, dtype=float),
                        drain_cycles=np.array(drain, dtype=float), **extra)


def test_single_tile_timeline():
    timing = run_pass(schedule([10], [5], [0], [3]))
    assert timing.cycles == 18
    assert timing.memory_wait_cycles == 10
    assert timing.drain_tail_cycles == 3


def test_double_buffering_hides_loads():
    # Loads of 4 cycles overlap computes of 10: only the first load shows.
    timing = run_pass(schedule([4, 4, 4], [10, 10, 10], [0, 0, 0], [0, 0, 0]))
    assert timing.cycles == 34
    assert timing.memory_wait_cycles == 4


def test_memory_bound_pipeline():
    # Loads of 10 and computes of 2: the array waits for DRAM every tile.
    timing = run_pass(schedule([10, 10, 10], [2, 2, 2], [0, 0, 0], [0, 0, 0]))
    assert timing.cycles == 32
    assert timing.memory_wait_cycles == 26


def test_drain_shares_dram_channel():
    # Loads 0-1 and 1-2 fill both halves. Tile 0 computes 1-4 and drains
    # 4-9; tile 1 computes 4-7 and its drain queues until 9 (9-14).
    # The third load needs the half freed at 9, but drain 1 asked for the
    # channel first, so it loads 14-15, computes 15-18 and drains 18-23.
    timing = run_pass(schedule([1, 1, 1], [3, 3, 3], [0, 0, 0], [5, 5, 5]))
    assert timing.cycles == 23
    assert timing.memory_wait_cycles == 1 + 8


def test_port_limit_stretches_compute():
    timing = run_pass(schedule([0], [4], [9], [0]))
    assert timing.cycles == 9
    assert timing.port_stall_cycles == 5


def test_empty_pass_takes_no_time():
    timing = run_pass(schedule([], [], [], []))
    assert timing.cycles == 0


def test_per_pe_mode_is_lock_step():
    # Two steps: PE maxima 3 and 7 give 10 cycles.
    steps = np.array([[[[1, 3], [2, 0]], [[7, 7], [1, 0]]]], dtype=float)
    timing = run_pass(schedule([0], [10], [0], [0], pe_steps=steps))
    assert timing.cycles == 10
    assert timing.compute_cycles == 10


def test_stuck_pipeline_is_reported(monkeypatch):
    import simpy

    original = simpy.Container

    def tiny_container(env, capacity, init):
        # One GLB half that is never freed: the second fill waits forever.
        return original(env, capacity=capacity, init=1)

    monkeypatch.setattr(simpy, "Container", tiny_container)
    with pytest.raises(SimulationError, match="did not drain"):
        run_pass(schedule([1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 1, 1]))


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    workload = Workload("small", SMALL_LAYERS)
    path = tmp_path_factory.mktemp("trace") / "small.pstrace"
    synthesize(workload, 4, path, density=0.3, seed=5)
    return workload, path


def unlimited_memory_arch():
    arch = load_arch()
    return dataclasses.replace(arch, dram_bytes_per_cycle=float("inf"),
                               glb_bank_width_bits=10**12, noc_words_per_cycle=float("inf"))


def test_closed_form_without_memory_limit(small_trace):
    workload, path = small_trace
    report = simulate(path, workload=workload, arch=unlimited_memory_arch(), balancer="none")
    for counters, _ in report.sparse_rows:
        assert counters.cycles == counters.busiest_pe_macs, (counters.layer, counters.pass_)
        assert counters.memory_stall_cycles == 0


def test_per_pe_mode_matches_coarse(small_trace):
    workload, path = small_trace
    coarse = simulate(path, workload=workload, max_events=10**6, balancer="none")
    fine = simulate(path, workload=workload, max_events=10**6, per_pe=True, balancer="none")
    for (a, _), (b, _) in zip(coarse.sparse_rows, fine.sparse_rows):
        assert a.cycles == b.cycles, (a.layer, a.pass_)
    assert sum(b.events for b, _ in fine.sparse_rows) > sum(a.events for a, _ in coarse.sparse_rows)


def test_chunking_error_is_small(small_trace):
    workload, path = small_trace
    exact = simulate(path, workload=workload, max_events=10**6)
    merged = simulate(path, workload=workload, max_events=2)
    ratio = merged.sparse["cycles"] / exact.sparse["cycles"]
    assert 0.8 < ratio < 1.25
