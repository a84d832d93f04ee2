"""A double-buffered tile pipeline on SimPy.

Three kinds of process share one SimPy environment:

* the *loader* fills GLB tiles from DRAM, one at a time, into one of two GLB
  halves (double buffering), holding the DRAM channel while it transfers;
* the *array* computes on a filled tile. Its time is the largest of the
  PEs' compute (lock step: each step lasts as long as its busiest PE), the
  GLB port time of the tile's array-side traffic and the NoC time;
* a *drain* per tile writes the tile's outputs back to DRAM over the same
  channel, then frees the GLB half for the next fill.

Consecutive GLB tiles are merged into at most ``max_events`` chunks so that
a layer costs a bounded number of events; a chunk's times are the sums of
its tiles'. In the per-PE mode every PE is a process of its own and each
step ends with a barrier, instead of the step maxima that numpy computes.

After the run the engine checks that every process finished and every
buffer drained; a request that could never be met would otherwise leave
SimPy's run returning quietly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from procrustes_sim.errors import SimulationError


@dataclass(frozen=True)
class TileSchedule:
    """Per-tile durations in cycles, in run order."""

    load_cycles: np.ndarray
    compute_cycles: np.ndarray  # sum over steps of the busiest PE
    port_cycles: np.ndarray  # GLB ports and NoC: the array cannot go faster
    drain_cycles: np.ndarray
    pe_steps: np.ndarray | None = None  # (tiles, steps, rows, cols) MACs, per-PE mode
    macs_per_cycle: int = 1


@dataclass(frozen=True)
class PassTiming:
    """Cycles of one pass and where the array waited."""

    cycles: float
    compute_cycles: float
    memory_wait_cycles: float  # array idle, waiting for a fill or a free half
    port_stall_cycles: float  # array busy longer than compute, limited by GLB or NoC
    drain_tail_cycles: float  # last writebacks after the array finished
    events: int


def _chunks(count: int, max_events: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, count, min(count, max_events) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run_pass(schedule: TileSchedule, max_events: int = 128) -> PassTiming:
    """Simulate one pass; raise SimulationError if the pipeline does not drain."""
    count = len(schedule.compute_cycles)
    if count == 0:
        return PassTiming(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    per_pe = schedule.pe_steps is not None
    chunks = _chunks(count, count if per_pe else max_events)
    starts = np.array([start for start, _ in chunks])
    sums = {name: np.add.reduceat(getattr(schedule, name), starts).tolist()
            for name in ("load_cycles", "compute_cycles", "port_cycles", "drain_cycles")}

    env = simpy.Environment()
    dram = simpy.Resource(env, capacity=1)
    halves = simpy.Container(env, capacity=2, init=2)
    filled = [env.event() for _ in chunks]
    state = {"memory_wait": 0.0, "port_stall": 0.0, "compute": 0.0, "array_end": 0.0,
             "events": 0}

    def loader():
        for index, (start, end) in enumerate(chunks):
            yield halves.get(1)
            with dram.request() as request:
                yield request
                yield env.timeout(sums["load_cycles"][index])
            filled[index].succeed()
            state["events"] += 1

    def drain(index: int):
        with dram.request() as request:
            yield request
            yield env.timeout(sums["drain_cycles"][index])
        yield halves.put(1)
        state["events"] += 1

    def pe(work: np.ndarray, barrier: simpy.Event, arrivals: dict):
        # One PE of the lock-step array: compute this step, then wait for all.
        yield env.timeout(float(work) / schedule.macs_per_cycle)
        arrivals["count"] -= 1
        if arrivals["count"] == 0:
            barrier.succeed()

    def compute_per_pe(start: int, end: int):
        for tile in range(start, end):
            for step in schedule.pe_steps[tile]:
                if not step.any():
                    continue
                barrier = env.event()
                arrivals = {"count": step.size}
                for work in step.reshape(-1):
                    env.process(pe(work, barrier, arrivals))
                yield barrier
                state["events"] += 1

    def array():
        drains = []
        for index, (start, end) in enumerate(chunks):
            waited_from = env.now
            yield filled[index]
            state["memory_wait"] += env.now - waited_from
            began = env.now
            compute = sums["compute_cycles"][index]
            if per_pe:
                yield env.process(compute_per_pe(start, end))
                compute = env.now - began
            else:
                yield env.timeout(compute)
            ports = sums["port_cycles"][index]
            if ports > compute:
                yield env.timeout(ports - compute)
                state["port_stall"] += ports - compute
            state["compute"] += compute
            drains.append(env.process(drain(index)))
        state["array_end"] = env.now
        yield simpy.AllOf(env, drains)

    load_process = env.process(loader())
    array_process = env.process(array())
    env.run()

    stuck = [name for name, process in (("loader", load_process), ("array", array_process))
             if process.is_alive]
    if stuck or halves.level != 2:
        raise SimulationError(f"the tile pipeline did not drain: still waiting in "
                              f"{', '.join(stuck) or 'none'}, {2 - halves.level} GLB half(s) held")
    cycles = env.now
    return PassTiming(cycles=cycles, compute_cycles=state["compute"],
                      memory_wait_cycles=state["memory_wait"],
                      port_stall_cycles=state["port_stall"],
                      drain_tail_cycles=cycles - state["array_end"],
                      events=state["events"] + len(chunks))
