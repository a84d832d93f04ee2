"""Energy: counters times the energy table, split by component.

The timing model never sees energies; this module prices the access
counts afterwards, so another technology is a different YAML table and no
change to the model.
"""

from __future__ import annotations

from procrustes_sim.config import Arch, EnergyTable
from procrustes_sim.counters import PassCounters

COMPONENTS = ("mac", "rf", "glb", "noc", "dram", "metadata", "encode", "quantile", "prng",
              "overflow", "transpose")


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
        **_training_energy(counters.extra, table, arch),
    }


def _training_energy(extra: dict, table: EnergyTable, arch: Arch) -> dict[str, float]:
    """Energy of the costs in procrustes_sim.overheads, one line each."""
    def count(name: str) -> float:
        return extra.get(name, 0.0)

    glb_word_read = table["glb_read"] * arch.word_bits / arch.glb_bank_width_bits
    return {
        "encode": count("encode_compares") * table["weight_compare"]
        + count("encode_bits") * table["dram_write_bit"],
        "quantile": count("quantile_compares") * table["weight_compare"]
        + count("quantile_updates") * table["threshold_update"],
        "prng": count("prng_values") * table["prng_value"],
        # An overflowed weight is read from the GLB instead of the RF.
        "overflow": count("overflow_accesses") * max(glb_word_read - table["rf_read"], 0.0),
        "transpose": count("transpose_bits") / 2
        * (table["dram_read_bit"] + table["dram_write_bit"])
        + count("transpose_compares") * table["weight_compare"]
        + count("transpose_scatter_bits") / arch.glb_bank_width_bits * table["glb_read"],
    }
