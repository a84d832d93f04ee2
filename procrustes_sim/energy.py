"""Energy: counters times the energy table, split by component.

The timing model never sees energies; this module prices the access
counts afterwards, so another technology is a different YAML table and no
change to the model.
"""

from __future__ import annotations

from procrustes_sim.config import Arch, EnergyTable
from procrustes_sim.counters import PassCounters

COMPONENTS = ("mac", "rf", "glb", "noc", "dram", "metadata")


def energy_breakdown(counters: PassCounters, table: EnergyTable, arch: Arch) -> dict[str, float]:
    """Energy of one pass in pJ per component (per minibatch)."""
    a = counters.accesses
    m = counters.metadata
    return {
        "mac": a["mac"] * table["mac"],
        "rf": a["rf_read"] * table["rf_read"] + a["rf_write"] * table["rf_write"],
        "glb": a["glb_read"] * table["glb_read"] + a["glb_write"] * table["glb_write"],
        "noc": a["noc_word"] * table["noc_word"],
        "dram": a["dram_read_bit"] * table["dram_read_bit"]
        + a["dram_write_bit"] * table["dram_write_bit"],
        "metadata": m["metadata_dram_read_bit"] * table["dram_read_bit"]
        + m["metadata_glb_read"] * table["glb_read"]
        + m["metadata_glb_write"] * table["glb_write"]
        + m["metadata_noc_word"] * table["noc_word"]
        + m["metadata_decode"] * table["metadata_decode"],
    }
