"""Architecture and energy configurations, loaded from YAML and validated.

An architecture names the hardware blocks and their sizes: the PE array,
each PE's register file (RF), the global buffer (GLB) with its banks, the
network-on-chip (NoC) and DRAM. An energy table gives the energy of each
action in pJ, each with its source. Both are plain frozen data; every
problem in a file is reported at once, with its key path.

Bundled files live in ``procrustes_sim/configs/``: ``arch-<name>.yaml`` and
``energy-<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from procrustes_sim.errors import InputError
from procrustes_sim.yamlio import Fields, load_yaml, raise_problems, read_yaml_file

DATATYPE_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int16": 16}


@dataclass(frozen=True)
class Arch:
    """Sizes and capabilities of one accelerator."""

    name: str
    pe_rows: int
    pe_cols: int
    rf_words: int
    mac_datatype: str
    macs_per_cycle: int
    glb_kib: float
    glb_banks: int
    glb_bank_width_bits: int
    dram_bytes_per_cycle: float
    noc_words_per_cycle: float
    noc_multicast: bool
    noc_spatial_reduction: bool
    clock_ghz: float
    source: str = ""
    path: str = field(default="", compare=False)  # the YAML file it was read from

    @property
    def word_bits(self) -> int:
        """Bits of one data word, from the MAC datatype."""
        return DATATYPE_BITS[self.mac_datatype]

    @property
    def pe_count(self) -> int:
        """PEs in the array."""
        return self.pe_rows * self.pe_cols

    @property
    def glb_words(self) -> int:
        """GLB capacity in data words."""
        return int(self.glb_kib * 1024 * 8) // self.word_bits

    @property
    def glb_bits_per_cycle(self) -> int:
        """GLB port bandwidth: every bank moves one bank-width access per cycle."""
        return self.glb_banks * self.glb_bank_width_bits

    @property
    def dram_bits_per_cycle(self) -> float:
        """DRAM bandwidth in bits per cycle."""
        return self.dram_bytes_per_cycle * 8


@dataclass(frozen=True)
class EnergyTable:
    """Energy per action in pJ; see :data:`ENERGY_ACTIONS` for each unit."""

    name: str
    pj: dict
    sources: dict
    source: str = ""

    def __getitem__(self, action: str) -> float:
        return self.pj[action]


# Every action the counters record, with the unit its energy is given per.
ENERGY_ACTIONS = {
    "mac": "one multiply-accumulate of the MAC datatype",
    "rf_read": "one word read from a PE register file",
    "rf_write": "one word written to a PE register file",
    "glb_read": "one bank-width access read from the global buffer",
    "glb_write": "one bank-width access written to the global buffer",
    "noc_word": "one word delivered to one PE over the network-on-chip",
    "dram_read_bit": "one bit read from DRAM",
    "dram_write_bit": "one bit written to DRAM",
    "metadata_decode": "one metadata lookup at a PE to locate a non-zero",
    "weight_compare": "one 32-bit compare: a weight with zero, or a gradient with the threshold",
    "threshold_update": "one multiply of the quantile threshold by its step factor",
    "prng_value": "one initial weight regenerated from the PRNG and scaled by the decay",
}


def _bundled(prefix: str) -> list[str]:
    root = resources.files("procrustes_sim").joinpath("configs")
    names = [item.name for item in root.iterdir()]
    return sorted(n[len(prefix) + 1:-5] for n in names if n.startswith(prefix + "-") and n.endswith(".yaml"))


def available_archs() -> list[str]:
    """Names of the bundled architectures."""
    return _bundled("arch")


def available_energy_tables() -> list[str]:
    """Names of the bundled energy tables."""
    return _bundled("energy")


def _read(prefix: str, name_or_path: str | Path, valid: list[str]) -> tuple[object, str, str]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return read_yaml_file(path), str(path), path.stem
    name = str(name_or_path)
    if name not in valid:
        raise InputError(f"unknown {prefix} {name!r}; valid names: {', '.join(valid)}, "
                         "or the path of a YAML file")
    member = resources.files("procrustes_sim").joinpath("configs", f"{prefix}-{name}.yaml")
    where = f"procrustes_sim/configs/{prefix}-{name}.yaml"
    return load_yaml(member.read_text(), where), where, name


def load_arch(name_or_path: str | Path = "procrustes-256") -> Arch:
    """Load a bundled architecture by name or an architecture YAML by path."""
    data, where, default_name = _read("arch", name_or_path, available_archs())
    return parse_arch(data, where, default_name)


def parse_arch(data: object, where: str, default_name: str = "custom") -> Arch:
    """Validate an architecture mapping; raise InputError listing every problem."""
    problems: list[str] = []
    root = Fields(data, "arch", problems)
    name = root.text("name", default_name)
    root.optional("description", "")
    source = root.optional("source", "")
    array = root.section("pe_array")
    pe = root.section("pe")
    glb = root.section("glb")
    noc = root.section("noc")
    dram = root.section("dram")
    arch = Arch(
        name=name,
        pe_rows=array.number("rows", integer=True),
        pe_cols=array.number("cols", integer=True),
        rf_words=pe.number("rf_words", integer=True, unit="words"),
        mac_datatype=pe.text("mac_datatype", choices=tuple(DATATYPE_BITS)),
        macs_per_cycle=pe.number("macs_per_cycle", 1, integer=True),
        glb_kib=glb.number("size_kib", unit="KiB"),
        glb_banks=glb.number("banks", integer=True),
        glb_bank_width_bits=glb.number("bank_width_bits", integer=True, unit="bits"),
        dram_bytes_per_cycle=dram.number("bandwidth_bytes_per_cycle", unit="bytes/cycle"),
        noc_words_per_cycle=noc.number("bandwidth_words_per_cycle", unit="words/cycle"),
        noc_multicast=noc.flag("multicast", True),
        noc_spatial_reduction=noc.flag("spatial_reduction", True),
        clock_ghz=root.number("clock_ghz", unit="GHz"),
        source=str(source or ""),
        path=where,
    )
    for fields in (root, array, pe, glb, noc, dram):
        fields.reject_unknown()
    raise_problems(problems, where)
    return arch


def load_energy_table(name_or_path: str | Path = "default-45nm") -> EnergyTable:
    """Load a bundled energy table by name or an energy YAML by path."""
    data, where, default_name = _read("energy", name_or_path, available_energy_tables())
    return parse_energy_table(data, where, default_name)


def parse_energy_table(data: object, where: str, default_name: str = "custom") -> EnergyTable:
    """Validate an energy mapping; every action needs energy_pj and a source."""
    problems: list[str] = []
    root = Fields(data, "energy", problems)
    name = root.text("name", default_name)
    root.optional("description", "")
    actions = root.section("actions")
    pj: dict[str, float] = {}
    sources: dict[str, str] = {}
    for action in ENERGY_ACTIONS:
        entry = actions.section(action)
        pj[action] = float(entry.number("energy_pj", minimum=0.0, strict=False, unit="pJ"))
        sources[action] = entry.text("source")
        given_source = entry.mapping.get("source")
        if isinstance(given_source, str) and not given_source.strip():
            problems.append(f"{entry.path}.source: empty; say where the energy comes from")
        entry.optional("per", "")
        entry.reject_unknown()
    actions.reject_unknown()
    root.reject_unknown()
    raise_problems(problems, where)
    return EnergyTable(name=name, pj=pj, sources=sources, source=where)
