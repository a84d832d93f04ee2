"""The result of a simulation: totals, per-layer rows, files and a text table.

A :class:`Report` holds the counters and energies of every (iteration,
layer, pass) of the sparse run and of every (layer, pass) of the dense
baseline. The dense baseline does not depend on the masks, so its totals
are its per-iteration figures times the number of replayed iterations.

Cycles and energies are per minibatch of ``batch`` samples. Files are
written atomically: each goes to a temporary name in the output folder
and is renamed into place once complete.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import secrets
from dataclasses import dataclass, field

import numpy as np
from pathlib import Path

from procrustes_sim.config import Arch, EnergyTable
from procrustes_sim.counters import PassCounters
from procrustes_sim.energy import COMPONENTS

RESULTS_FORMAT = 1

# Array name in pe_work.npz of the per-PE work of one iteration, layer and pass.
PE_WORK_KEY = "{0}/{1}/{2}"

# Model limitations, repeated in every report.
LIMITATIONS = (
    "Layers run one after another; overlap between layers is not modelled.",
    "Activations and gradients move dense; zeros of X or dY are skipped by zero "
    "detection at the PE, which saves MAC cycles and RF reads but no traffic.",
    "The spatial reduction of partial sums is pipelined: it costs NoC energy and its "
    "reduced output counts against the NoC bandwidth, but the tree adds no latency.",
    "GLB bank conflicts between DRAM fills and array reads are not modelled.",
    "DRAM is one channel of fixed bandwidth with no row-buffer effects.",
    "Consecutive GLB tiles are merged into at most max_events chunks per layer and pass.",
    "The optimizer step is not modelled in either run; RF overflow adds energy, not cycles.",
    "The mapper searches GLB loop orders with closed-form estimates, not exhaustively.",
    "Balancers see a row's work as the largest of its PEs', exact for multicast columns.",
    "Energy table entries marked 'estimate' in the energy YAML are not published figures.",
)

CSV_COLUMNS = (
    "iteration", "layer", "pass", "padded_macs", "dense_macs", "effective_macs",
    "sparse_cycles", "dense_cycles", "speedup", "sparse_energy_pj", "dense_energy_pj",
    "energy_ratio", "utilization", "imbalance", "useful_cycles", "imbalance_stall_cycles",
    "mapping_stall_cycles", "memory_stall_cycles", "dense_utilization", "dataflow",
    "dense_dataflow", "steps", "tiles",
    *(f"sparse_energy_{c}_pj" for c in COMPONENTS),
    *(f"dense_energy_{c}_pj" for c in COMPONENTS),
)


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """Create a new hidden file in *folder* and return its descriptor and path.

    ``os.open`` with mode 0o666 lets the umask set the permissions, as for
    any other file the user writes. ``tempfile.mkstemp`` would give 0o600.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = folder / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(path, flags, 0o666), str(path)
        except FileExistsError:
            continue


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


@dataclass
class Report:
    """Everything one simulation measured; see :meth:`summary` for the totals."""

    header: dict
    sparse_rows: list  # (PassCounters, energy dict) per iteration, layer and pass
    dense_rows: dict  # (layer, pass) -> (PassCounters, energy dict), per iteration
    # (iteration, layer, pass) -> MACs per step and PE, shape (steps, rows, cols)
    pe_work: dict = field(default_factory=dict)

    @classmethod
    def build(cls, *, workload: str, arch: Arch, energy: EnergyTable, dataflow: str,
              balancer: str, layout: str, policy: str, trace: dict, batch: int,
              iterations: list, sparse: list, dense: dict, version: str,
              limitations: tuple, pe_work: dict | None = None, config: str = "",
              layout_options: dict | None = None, decay: dict | None = None,
              run_options: dict | None = None) -> "Report":
        """Assemble a report from the simulation's rows."""
        header = {
            "results_format": RESULTS_FORMAT,
            "version": version,
            "workload": workload,
            "arch": arch.name,
            "arch_config": dataclasses.asdict(arch),
            "energy_table": energy.name,
            "dataflow": dataflow,
            "balancer": balancer,
            "layout": layout,
            "config": config,
            "layout_options": layout_options or {},
            "skip_policy": policy,
            "run_options": run_options or {},
            "initial_weight_decay": decay or "not in the trace: PRNG regeneration not charged",
            "trace": trace,
            "batch": batch,
            "iterations": list(iterations),
            "clock_ghz": arch.clock_ghz,
            "limitations": list(limitations),
            "pe_work_recorded": [PE_WORK_KEY.format(*key) for key in sorted(pe_work or {})],
        }
        return cls(header=header, sparse_rows=list(sparse), dense_rows=dict(dense),
                   pe_work=dict(pe_work or {}))

    # Totals -------------------------------------------------------------

    @property
    def iteration_count(self) -> int:
        """Replayed iterations."""
        return len(self.header["iterations"])

    def _totals(self, rows, repeat: int = 1) -> dict:
        cycles = sum(c.cycles for c, _ in rows) * repeat
        breakdown = {k: sum(e[k] for _, e in rows) * repeat for k in COMPONENTS}
        stalls = {
            "useful_cycles": sum(c.useful_cycles for c, _ in rows) * repeat,
            "imbalance_stall_cycles": sum(c.imbalance_stall_cycles for c, _ in rows) * repeat,
            "mapping_stall_cycles": sum(c.mapping_stall_cycles for c, _ in rows) * repeat,
            "memory_stall_cycles": sum(c.memory_stall_cycles for c, _ in rows) * repeat,
        }
        return {"cycles": cycles, "energy_pj": sum(breakdown.values()),
                "energy_breakdown_pj": breakdown,
                "effective_macs": sum(c.effective_macs for c, _ in rows) * repeat,
                "dense_macs": sum(c.dense_macs for c, _ in rows) * repeat,
                **stalls}

    @property
    def sparse(self) -> dict:
        """Totals of the sparse run over all replayed iterations."""
        return self._totals(self.sparse_rows)

    @property
    def dense(self) -> dict:
        """Totals of the dense baseline over the same number of iterations."""
        return self._totals(list(self.dense_rows.values()), self.iteration_count)

    @property
    def speedup(self) -> float:
        """Dense cycles over sparse cycles."""
        return _ratio(self.dense["cycles"], self.sparse["cycles"])

    @property
    def energy_ratio(self) -> float:
        """Dense energy over sparse energy."""
        return _ratio(self.dense["energy_pj"], self.sparse["energy_pj"])

    def summary(self) -> dict:
        """Return the content of summary.json."""
        sparse, dense = self.sparse, self.dense
        per_pass = {}
        for pass_ in ("FW", "BW", "WU"):
            s = self._totals([r for r in self.sparse_rows if r[0].pass_ == pass_])
            d = self._totals([v for k, v in self.dense_rows.items() if k[1] == pass_],
                             self.iteration_count)
            per_pass[pass_] = {"sparse_cycles": s["cycles"], "dense_cycles": d["cycles"],
                               "sparse_energy_pj": s["energy_pj"],
                               "dense_energy_pj": d["energy_pj"],
                               "speedup": _ratio(d["cycles"], s["cycles"]),
                               "energy_ratio": _ratio(d["energy_pj"], s["energy_pj"])}
        return {**self.header, "sparse": sparse, "dense": dense,
                "speedup": self.speedup, "energy_ratio": self.energy_ratio,
                "per_pass": per_pass, "per_iteration": self.per_iteration(),
                "units": {"cycles": "clock cycles, summed over the replayed iterations "
                                    "(one minibatch of `batch` samples each)",
                          "energy_pj": "picojoules, summed over the replayed iterations"}}

    def per_iteration(self) -> dict:
        """Sparse and dense totals of each replayed iteration, keyed by iteration number."""
        dense = self._totals(list(self.dense_rows.values()))
        result = {}
        for iteration in self.header["iterations"]:
            rows = [r for r in self.sparse_rows if r[0].iteration == iteration]
            sparse = self._totals(rows)
            result[str(iteration)] = {
                "sparse_cycles": sparse["cycles"], "dense_cycles": dense["cycles"],
                "sparse_energy_pj": sparse["energy_pj"], "dense_energy_pj": dense["energy_pj"],
                "speedup": _ratio(dense["cycles"], sparse["cycles"]),
                "energy_ratio": _ratio(dense["energy_pj"], sparse["energy_pj"]),
                "effective_macs": sparse["effective_macs"]}
        return result

    def layer_rows(self) -> list[dict]:
        """Return the rows of layers.csv: one dict per iteration, layer and pass."""
        rows = []
        for counters, energy in self.sparse_rows:
            dense, dense_energy = self.dense_rows[(counters.layer, counters.pass_)]
            sparse_pj = sum(energy.values())
            dense_pj = sum(dense_energy.values())
            row = {
                "iteration": counters.iteration, "layer": counters.layer,
                "pass": counters.pass_, "padded_macs": counters.padded_macs,
                "dense_macs": counters.dense_macs, "effective_macs": counters.effective_macs,
                "sparse_cycles": counters.cycles, "dense_cycles": dense.cycles,
                "speedup": _ratio(dense.cycles, counters.cycles),
                "sparse_energy_pj": sparse_pj, "dense_energy_pj": dense_pj,
                "energy_ratio": _ratio(dense_pj, sparse_pj),
                "utilization": counters.utilization, "imbalance": counters.imbalance,
                "useful_cycles": counters.useful_cycles,
                "imbalance_stall_cycles": counters.imbalance_stall_cycles,
                "mapping_stall_cycles": counters.mapping_stall_cycles,
                "memory_stall_cycles": counters.memory_stall_cycles,
                "dense_utilization": dense.utilization, "dataflow": counters.dataflow,
                "dense_dataflow": dense.dataflow, "steps": counters.steps,
                "tiles": counters.tiles,
            }
            for component in COMPONENTS:
                row[f"sparse_energy_{component}_pj"] = energy[component]
                row[f"dense_energy_{component}_pj"] = dense_energy[component]
            rows.append(row)
        return rows

    # Output -------------------------------------------------------------

    def summary_json(self) -> str:
        """summary.json as text."""
        return json.dumps(self.summary(), indent=2, sort_keys=False, default=str) + "\n"

    def layers_csv(self) -> str:
        """layers.csv as text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.layer_rows():
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
        return buffer.getvalue()

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write summary.json and layers.csv into *folder*, each atomically.

        Recorded per-PE work goes to pe_work.npz beside them.
        If a write or rename fails, the files it created are removed again.
        NOTE: a file that existed before and was already replaced keeps the
        new content, so a failed overwrite can mix two runs' files.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        contents = {"layers.csv": self.layers_csv(), "summary.json": self.summary_json()}
        if self.pe_work:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **{PE_WORK_KEY.format(*key): steps
                                           for key, steps in sorted(self.pe_work.items())})
            contents["pe_work.npz"] = buffer.getvalue()
        temporary = {}
        created = []
        try:
            for name, text in contents.items():
                handle, path = _create_temporary(folder, name)
                # Recorded before writing, so that a failed write is cleaned up too.
                temporary[name] = path
                with os.fdopen(handle, "wb" if isinstance(text, bytes) else "w") as file:
                    file.write(text)
            for name, path in temporary.items():
                final = folder / name
                existed = final.exists()
                os.replace(path, final)
                if not existed:
                    created.append(final)
        except BaseException:
            # A failed rename must not leave one new file without the other.
            for final in created:
                final.unlink(missing_ok=True)
            raise
        finally:
            for path in temporary.values():
                if os.path.exists(path):
                    os.unlink(path)
        return folder / "summary.json", folder / "layers.csv"

    def format_table(self) -> str:
        """Format a text table per layer and pass (mean per iteration) with totals."""
        groups: dict = {}
        for counters, energy in self.sparse_rows:
            key = (counters.layer, counters.pass_)
            entry = groups.setdefault(key, [0.0, 0.0, 0.0, 0.0])
            entry[0] += counters.cycles
            entry[1] += sum(energy.values())
            entry[2] += counters.utilization
            entry[3] += counters.imbalance
        n = self.iteration_count
        lines = [f"{'layer':<22} {'pass':<4} {'sparse Mcyc':>11} {'dense Mcyc':>10} "
                 f"{'speedup':>7} {'sparse uJ':>10} {'dense uJ':>10} {'E ratio':>7} "
                 f"{'util':>5} {'imbal':>5} {'dense on':>8}"]
        for (layer, pass_), (cycles, energy_pj, utilization, imbalance) in groups.items():
            dense, dense_energy = self.dense_rows[(layer, pass_)]
            dense_pj = sum(dense_energy.values())
            lines.append(
                f"{layer[:22]:<22} {pass_:<4} {cycles / n / 1e6:>11.3f} {dense.cycles / 1e6:>10.3f} "
                f"{_ratio(dense.cycles * n, cycles):>7.2f} {energy_pj / n / 1e6:>10.2f} "
                f"{dense_pj / 1e6:>10.2f} {_ratio(dense_pj * n, energy_pj):>7.2f} "
                f"{utilization / n:>5.2f} {imbalance / n:>5.2f} {dense.dataflow:>8}")
        sparse, dense = self.sparse, self.dense
        lines.append("")
        if n > 1:
            for iteration, entry in self.per_iteration().items():
                lines.append(f"iteration {iteration:>6}: speedup {entry['speedup']:.2f}x, energy "
                             f"ratio {entry['energy_ratio']:.2f}x, sparse "
                             f"{entry['sparse_cycles'] / 1e6:.3f} Mcycles")
        lines.append(f"total per iteration: sparse {sparse['cycles'] / n / 1e6:.3f} Mcycles, "
                     f"{sparse['energy_pj'] / n / 1e6:.1f} uJ; dense "
                     f"{dense['cycles'] / n / 1e6:.3f} Mcycles, {dense['energy_pj'] / n / 1e6:.1f} uJ")
        lines.append(f"speedup {self.speedup:.2f}x, energy ratio {self.energy_ratio:.2f}x "
                     f"(dense / sparse), batch {self.header['batch']}, "
                     f"{n} iteration(s)")
        trace = self.header["trace"]
        where = f" ({trace['path']})" if trace.get("path") else ""
        lines.append(f"trace: {trace['description']}{where}"
                     + (" [SYNTHETIC]" if trace.get("synthetic") else ""))
        return "\n".join(lines)
