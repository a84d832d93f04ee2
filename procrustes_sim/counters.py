"""Counters that every stage fills for one layer, pass and run.

A run is either the sparse run (the trace's masks, the chosen dataflow,
layout and skipping policy) or the dense baseline (no skipping, no
metadata, each layer and pass on its fastest bundled dataflow).

Cycle identity, checked after every pass:

    cycles = useful + imbalance stall + mapping stall + memory stall

* useful: effective MACs spread over every PE of the array;
* imbalance stall: time the mapped PEs wait for the busiest PE of a step;
* mapping stall: time lost to PEs left without indices by partial tiles;
* memory stall: time the array waits for DRAM fills, GLB ports or the NoC,
  plus the final writebacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from procrustes_sim.errors import SimulationError

# Actions counted per pass; energy.py prices each one.
ACTIONS = ("mac", "rf_read", "rf_write", "glb_read", "glb_write", "noc_word",
           "dram_read_bit", "dram_write_bit")

# Metadata movement, priced like the data it travels with.
METADATA_ACTIONS = ("metadata_dram_read_bit", "metadata_glb_read", "metadata_glb_write",
                    "metadata_noc_word", "metadata_decode")


@dataclass
class PassCounters:
    """Cycles, stalls and accesses of one layer and pass in one run (per minibatch)."""

    iteration: int
    layer: str
    pass_: str
    run: str
    dataflow: str
    mapping: str
    padded_macs: int  # N*K*(C/groups)*R*S*P*Q, products with padding included
    dense_macs: int  # products with in-bounds inputs: what the dense baseline computes
    effective_macs: int  # products left after skipping zeros
    cycles: float
    useful_cycles: float
    imbalance_stall_cycles: float
    mapping_stall_cycles: float
    memory_stall_cycles: float
    busiest_pe_macs: float  # sum over steps of the busiest PE's MACs
    balanced_pe_macs: float  # sum over steps of the mean MACs of the mapped PEs
    steps: int
    tiles: int
    events: int
    pe_count: int
    macs_per_cycle: int = 1
    accesses: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # overheads.COUNTS, moved blocks, scatter bits

    @property
    def utilization(self) -> float:
        """Effective MACs over the MACs the whole array could do in these cycles."""
        if self.cycles <= 0:
            return 0.0
        return self.effective_macs / (self.cycles * self.pe_count * self.macs_per_cycle)

    @property
    def imbalance(self) -> float:
        """Busiest-PE work over mean mapped-PE work, summed over steps (1.0 = balanced)."""
        if self.balanced_pe_macs <= 0:
            return 1.0
        return self.busiest_pe_macs / self.balanced_pe_macs

    def check(self) -> None:
        """Raise SimulationError if the cycle identity or a sign does not hold."""
        parts = (self.useful_cycles, self.imbalance_stall_cycles, self.mapping_stall_cycles,
                 self.memory_stall_cycles)
        tolerance = 1e-6 * max(1.0, self.cycles)
        if any(part < -tolerance for part in parts):
            raise SimulationError(f"{self.layer} {self.pass_} {self.run}: negative cycle part {parts}")
        if abs(sum(parts) - self.cycles) > tolerance:
            raise SimulationError(f"{self.layer} {self.pass_} {self.run}: cycle parts {parts} "
                                  f"do not add up to {self.cycles}")
        if self.effective_macs > self.dense_macs:
            raise SimulationError(f"{self.layer} {self.pass_} {self.run}: {self.effective_macs} "
                                  f"effective MACs exceed the {self.dense_macs} dense MACs")
        busy = self.useful_cycles + self.imbalance_stall_cycles + self.mapping_stall_cycles
        if busy > self.cycles + tolerance:
            raise SimulationError(f"{self.layer} {self.pass_} {self.run}: busy time {busy} "
                                  f"exceeds total time {self.cycles}")

    def to_dict(self) -> dict:
        """Plain-data form, for JSON."""
        data = asdict(self)
        data["pass"] = data.pop("pass_")
        data["utilization"] = self.utilization
        data["imbalance"] = self.imbalance
        return data
