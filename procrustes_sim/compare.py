"""Replay one trace through several layouts and balancers and tabulate them.

Every (layout, balancer) pair gets one row per layer, summed over the
layer's three passes and averaged over the replayed iterations, and one
row for the whole network (layer ``total``). The dense baseline is run once
and shared by every pair.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import os
import tempfile
from pathlib import Path

from procrustes_sim.balancers import check_balancer
from procrustes_sim.errors import InputError
from procrustes_sim.layouts import get_layout
from procrustes_sim.simulation import simulate

log = logging.getLogger(__name__)

COLUMNS = ("layout", "balancer", "layer", "cycles", "energy_pj", "speedup", "energy_ratio",
           "imbalance", "metadata_bits", "overflow_accesses", "moved_blocks", "dense_cycles",
           "dense_energy_pj")


def compare(trace, layouts: list[str], balancers: list[str], **options) -> list[dict]:
    """Simulate every layout and balancer pair on *trace*; return the rows of compare.csv.

    *options* go to :func:`procrustes_sim.simulate` (dataflow, arch, ...).
    Raises InputError for unknown names before anything runs.
    """
    if not layouts or not balancers:
        raise InputError("give at least one layout and one balancer to compare")
    for name in layouts:
        get_layout(name)
    for name in balancers:
        check_balancer(name)
    dense_cache: dict = {}
    rows = []
    for layout, balancer in itertools.product(layouts, balancers):
        log.info("comparing layout %s with balancer %s", layout, balancer)
        report = simulate(trace, layout=layout, balancer=balancer, dense_cache=dense_cache,
                          **options)
        rows.extend(_rows(report, layout, balancer))
    return rows


def _rows(report, layout: str, balancer: str) -> list[dict]:
    iterations = report.iteration_count
    per_layer: dict = {}
    for counters, energy in report.sparse_rows:
        dense, dense_energy = report.dense_rows[(counters.layer, counters.pass_)]
        entry = per_layer.setdefault(counters.layer, dict.fromkeys(
            ("cycles", "energy_pj", "busiest", "balanced", "metadata_bits", "overflow_accesses",
             "moved_blocks", "dense_cycles", "dense_energy_pj"), 0.0))
        entry["cycles"] += counters.cycles / iterations
        entry["energy_pj"] += sum(energy.values()) / iterations
        entry["busiest"] += counters.busiest_pe_macs
        entry["balanced"] += counters.balanced_pe_macs
        entry["metadata_bits"] += counters.metadata["metadata_dram_read_bit"] / iterations
        entry["overflow_accesses"] += counters.extra.get("overflow_accesses", 0.0) / iterations
        entry["moved_blocks"] += counters.extra.get("moved_blocks", 0.0) / iterations
        entry["dense_cycles"] += dense.cycles / iterations
        entry["dense_energy_pj"] += sum(dense_energy.values()) / iterations
    total = {key: sum(entry[key] for entry in per_layer.values())
             for key in next(iter(per_layer.values()))}
    rows = []
    for layer, entry in [*per_layer.items(), ("total", total)]:
        rows.append({
            "layout": layout, "balancer": balancer, "layer": layer,
            "cycles": entry["cycles"], "energy_pj": entry["energy_pj"],
            "speedup": entry["dense_cycles"] / entry["cycles"] if entry["cycles"] else 0.0,
            "energy_ratio": entry["dense_energy_pj"] / entry["energy_pj"]
            if entry["energy_pj"] else 0.0,
            "imbalance": entry["busiest"] / entry["balanced"] if entry["balanced"] else 1.0,
            "metadata_bits": entry["metadata_bits"],
            "overflow_accesses": entry["overflow_accesses"],
            "moved_blocks": entry["moved_blocks"],
            "dense_cycles": entry["dense_cycles"], "dense_energy_pj": entry["dense_energy_pj"],
        })
    return rows


def format_rows(rows: list[dict]) -> str:
    """A text table of the network totals, one line per layout and balancer."""
    lines = [f"{'layout':<11} {'balancer':<14} {'Mcycles':>9} {'speedup':>7} {'uJ':>11} "
             f"{'E ratio':>7} {'imbal':>6} {'meta Mbit':>9} {'overflow':>10}"]
    for row in rows:
        if row["layer"] != "total":
            continue
        lines.append(f"{row['layout']:<11} {row['balancer']:<14} {row['cycles'] / 1e6:>9.3f} "
                     f"{row['speedup']:>7.2f} {row['energy_pj'] / 1e6:>11.1f} "
                     f"{row['energy_ratio']:>7.2f} {row['imbalance']:>6.2f} "
                     f"{row['metadata_bits'] / 1e6:>9.2f} {row['overflow_accesses']:>10.3g}")
    lines.append("per iteration; speedup and energy ratio are dense over sparse")
    return "\n".join(lines)


def write_csv(rows: list[dict], folder: str | Path) -> Path:
    """Write compare.csv into *folder* atomically and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    handle, temporary = tempfile.mkstemp(prefix=".compare.csv.", dir=folder)
    try:
        with os.fdopen(handle, "w") as file:
            file.write(buffer.getvalue())
        os.chmod(temporary, 0o644)
        os.replace(temporary, folder / "compare.csv")
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return folder / "compare.csv"
