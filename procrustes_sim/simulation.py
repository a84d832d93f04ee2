"""The one entry point: replay a trace and compare it with the dense baseline.

:func:`simulate` is pure: it reads its input files, keeps no module-level
state, prints nothing and returns a :class:`~procrustes_sim.report.Report`,
so sweeps can call it in other processes.

For every replayed iteration, layer and pass it maps the pass onto the
array, counts per-step, per-PE work from the masks, counts data movement
per GLB tile, and runs the tile pipeline. The dense baseline runs the same
engine with no skipping and no metadata, on whichever bundled dataflow is
fastest for that layer and pass; it does not depend on the masks, so it
runs once and applies to every iteration.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import dataflows as dataflow_files
import workloads
from procrustes_sim import __version__
from procrustes_sim.balancers import apply_balancer, check_balancer
from procrustes_sim.config import Arch, EnergyTable, load_arch, load_energy_table
from procrustes_sim.counters import PassCounters
from procrustes_sim.energy import energy_breakdown
from procrustes_sim.engine import TileSchedule, run_pass
from procrustes_sim.errors import InputError
from procrustes_sim.layouts import (DEFAULT_POINTER_BITS, DEFAULT_RUN_BITS, Layout,
                                    get_layout)
from procrustes_sim.mapping import PassMapping, map_pass, tensor_words
from procrustes_sim.overheads import decay_schedule, training_counts
from procrustes_sim.policy import format_policy, parse_policy
from procrustes_sim.report import LIMITATIONS, Report
from procrustes_sim.trace import Trace, synthesize
from procrustes_sim.traffic import TileTraffic, tile_traffic
from procrustes_sim.work import TileWork, pe_work, tile_work
from procrustes_sim.workload import PASSES, Layer, Pass, Tensor, Workload, load_workload

log = logging.getLogger(__name__)

DEFAULT_WORKLOAD = "vgg_s"
# Replayed when no trace, workload or batch is given: VGG-S trained with
# Dropback to 10% weight density by procrustes_sim.training (docs/training.md).
BUNDLED_TRACE = "vgg_s-dropback.pstrace"
# Trace label of a synthetic trace generated for one run and then deleted.
GENERATED_LABEL = "generated synthetic trace (not kept)"
DEFAULT_CONFIG = "procrustes"

# Dense-baseline candidates within this fraction of the fastest count as
# equally fast; the one with the least energy is chosen among them.
DENSE_TIE = 0.01

# Named configurations: a dataflow, a weight layout and a balancer.
NAMED_CONFIGS = {
    "procrustes": {"dataflow": "CxN", "layout": "block-mask", "balancer": "block-reorder"},
    "procrustes-lockstep": {"dataflow": "CxN", "layout": "block-mask", "balancer": "none"},
}
DEFAULT_BATCH = 16
DEFAULT_DENSITY = 0.1
DEFAULT_SEED = 0

# Layers whose pass has at most this many (step, PE) pairs may run in the
# per-PE mode.
PER_PE_LIMIT = 2_000_000


@dataclass(frozen=True)
class RunSettings:
    """Resolved inputs of one simulation."""

    arch: Arch
    energy: EnergyTable
    dataflow: dataflow_files.Dataflow
    dense_dataflows: tuple
    layout: Layout
    balancer: str
    policy: dict
    per_pe: bool
    max_events: int
    config: str
    rf_density: float | None
    mappings: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)
    record_pe: set = dataclasses.field(default_factory=set, compare=False, repr=False)
    dense_cache: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def map(self, layer: Layer, pass_: Pass, batch: int,
            dataflow: dataflow_files.Dataflow) -> PassMapping:
        """Map one layer and pass; layers of the same shape share one search."""
        key = (dataclasses.replace(layer, name=""), pass_, batch, dataflow.name, dataflow.source)
        if key not in self.mappings:
            # map_pass raises InputError naming this layer if it cannot fit.
            self.mappings[key] = map_pass(layer, pass_, batch, self.arch, dataflow)
        return dataclasses.replace(self.mappings[key], layer=layer)


def simulate(trace: str | Path | Trace | None = None, *, workload: str | Workload | None = None,
             arch: str | Path | Arch = "procrustes-256",
             energy: str | Path | EnergyTable = "default-45nm",
             config: str | None = None, dataflow: str | Path | None = None,
             layout: str | None = None, balancer: str | None = None,
             pointer_bits: int = DEFAULT_POINTER_BITS, run_bits: int = DEFAULT_RUN_BITS,
             transpose: str = "reencode", rf_density: float | None = None,
             skip: str | dict | None = None, batch: int | None = None,
             iterations: int | None = None, per_pe: bool = False,
             max_events: int = 128, record_pe: list[str] | tuple = (),
             dense_cache: dict | None = None) -> Report:
    """Replay *trace* and return the sparse run, the dense baseline and their ratios.

    With no trace, workload or batch, the bundled trace of VGG-S trained
    with Dropback is replayed. With a workload or batch but no trace, a
    synthetic Bernoulli trace at 10% weight density (seed 0) is generated
    and replayed, and the report labels it synthetic.
    *iterations* replays the first that many iterations of the trace.
    *per_pe* simulates every PE as its own process (small layers only).
    *record_pe* names ``LAYER:PASS`` pairs whose per-step, per-PE work of
    the sparse run the report keeps (``Report.pe_work``) and writes to
    ``pe_work.npz``.
    *config* names a preset of dataflow, layout and balancer (see
    :data:`NAMED_CONFIGS`, default ``procrustes``); explicit arguments
    override it. *pointer_bits*, *run_bits* and *transpose* set the layout's
    pointer width, run-field width and transposed access; *rf_density* is
    the weight density each PE's RF is sized for (default: the layer's).
    *dense_cache* is a dict that keeps dense-baseline results between calls
    (the baseline depends only on the layer shapes, batch, architecture,
    energy table and engine settings); pass the same dict to calls that
    compare designs on one trace.
    Raises InputError for invalid input.
    """
    preset = _preset(config)
    layout_object = get_layout(layout or preset["layout"], pointer_bits=pointer_bits,
                               run_bits=run_bits, transpose=transpose)
    if rf_density is not None and not (isinstance(rf_density, (int, float))
                                       and 0.0 < rf_density <= 1.0):
        raise InputError(f"RF density {rf_density!r} is invalid; give a number in (0, 1]")
    settings = _settings(arch, energy, dataflow or preset["dataflow"], layout_object,
                         balancer or preset["balancer"], skip, per_pe, max_events,
                         config or DEFAULT_CONFIG, rf_density)
    settings.record_pe.update(_parse_record(record_pe))
    if dense_cache is not None:
        settings = dataclasses.replace(settings, dense_cache=dense_cache)
    if trace is None and workload is None and batch is None:
        bundled = workloads.trace_path(BUNDLED_TRACE)
        log.info("replaying the bundled trace %s", BUNDLED_TRACE)
        with Trace.open(bundled) as opened:
            return _simulate_trace(opened, _workload(opened.workload_name), settings, None,
                                   iterations, trace_label=str(bundled))
    if trace is None:
        model = _workload(workload or DEFAULT_WORKLOAD)
        _check_mappings(model, batch or DEFAULT_BATCH, settings)
        with tempfile.TemporaryDirectory(prefix="procrustes-sim-") as folder:
            path = Path(folder) / f"{model.name}-synthetic.pstrace"
            log.info("generating a synthetic trace of %s at weight density %.2f (seed %d)",
                     model.name, DEFAULT_DENSITY, DEFAULT_SEED)
            synthesize(model, batch or DEFAULT_BATCH, path, density=DEFAULT_DENSITY,
                       seed=DEFAULT_SEED)
            with Trace.open(path) as opened:
                return _simulate_trace(opened, model, settings, batch, iterations,
                                       trace_label=GENERATED_LABEL)
    opened = trace if isinstance(trace, Trace) else Trace.open(trace)
    try:
        model = _workload(workload or opened.workload_name)
    except InputError as error:
        if workload:
            raise
        raise InputError(f"{error}; the trace was made for workload {opened.workload_name!r}: "
                         "pass its topology CSV with --workload") from None
    return _simulate_trace(opened, model, settings, batch, iterations,
                           trace_label=str(getattr(opened, "path", "")))


def _workload(value: str | Workload) -> Workload:
    return value if isinstance(value, Workload) else load_workload(value)


def _preset(name: str | None) -> dict:
    name = name or DEFAULT_CONFIG
    if name not in NAMED_CONFIGS:
        raise InputError(f"unknown configuration {name!r}; valid names: "
                         f"{', '.join(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[name]


def _settings(arch, energy, dataflow, layout, balancer, skip, per_pe, max_events,
              config, rf_density) -> RunSettings:
    if not isinstance(max_events, int) or max_events < 1:
        raise InputError(f"max_events={max_events!r} is invalid; give a positive integer")
    dense = tuple(dataflow_files.load(name) for name in dataflow_files.available())
    return RunSettings(
        arch=arch if isinstance(arch, Arch) else load_arch(arch),
        energy=energy if isinstance(energy, EnergyTable) else load_energy_table(energy),
        dataflow=dataflow if isinstance(dataflow, dataflow_files.Dataflow)
        else dataflow_files.load(dataflow),
        dense_dataflows=dense,
        layout=layout,
        balancer=check_balancer(balancer),
        config=config,
        rf_density=rf_density,
        policy=parse_policy(skip),
        per_pe=bool(per_pe),
        max_events=max_events,
    )


def _parse_record(pairs) -> set:
    """Parse ``LAYER:PASS`` strings into (layer, pass) pairs."""
    if isinstance(pairs, str):
        pairs = [pairs]
    parsed = set()
    for text in pairs:
        layer, _, pass_name = str(text).rpartition(":")
        if not layer or pass_name not in [p.value for p in PASSES]:
            raise InputError(f"invalid --record-pe value {text!r}; give LAYER:PASS with PASS "
                             "one of FW, BW, WU, for example conv1_1:FW")
        parsed.add((layer, pass_name))
    return parsed


def _mapped_fraction(mapping: PassMapping) -> float:
    """Fraction of the PEs that the spatial dimensions fill in a full step."""
    used = 1.0
    for dim in (mapping.rows, mapping.cols):
        size = mapping.array_size(dim)
        used *= min(size, mapping.sizes[dim]) / size
    return used


def _check_mappings(model: Workload, batch: int, settings: RunSettings,
                    warn: bool = False) -> None:
    """Map every layer and pass before any work, so bad tiles fail fast."""
    names = {layer.name for layer in model.layers}
    for layer_name, _ in sorted(settings.record_pe):
        if layer_name not in names:
            raise InputError(f"--record-pe names layer {layer_name!r}, which {model.name} does "
                             f"not have; its layers are {', '.join(l.name for l in model.layers)}")
    weighted = total = 0.0
    largest_tile = (0, "")  # weights of the largest GLB weight tile, and its layer
    for layer in model.layers:
        for pass_ in PASSES:
            mapping = settings.map(layer, pass_, batch, settings.dataflow)
            weighted += _mapped_fraction(mapping) * layer.macs(batch)
            total += layer.macs(batch)
            if Tensor.W in mapping.operands:
                # Pointers address the weights of one GLB tile.
                extent = {d: min(mapping.sizes[d], mapping.glb_extent[d] * mapping.block(d))
                          for d in mapping.sizes}
                largest_tile = max(largest_tile,
                                   (tensor_words(layer, Tensor.W, extent), layer.name))
    # One check over the whole network, so the width in its message fits every layer.
    settings.layout.check_widths(largest_tile[1], largest_tile[0])
    if warn and weighted < 0.5 * total:
        log.warning("%s leaves %.0f%% of the PEs without work, weighted by MACs, at batch %d; "
                    "the dense baseline picks the fastest dataflow per layer, so the speedup "
                    "reflects the mapping more than the sparsity", settings.dataflow.name,
                    100 * (1 - weighted / total), batch)


def _simulate_trace(trace: Trace, model: Workload, settings: RunSettings, batch: int | None,
                    iterations: int | None, trace_label: str) -> Report:
    trace.check_workload(model)
    if batch is not None and batch != trace.batch:
        raise InputError(f"batch {batch} does not match the trace's batch {trace.batch}; "
                         "leave the batch out or give the trace's value")
    available = list(trace.iterations)
    if iterations is not None:
        if not isinstance(iterations, int) or iterations < 1:
            raise InputError(f"iterations={iterations!r} is invalid; give a positive integer")
        if iterations > len(available):
            hint = (f"give at most {len(available)}" if trace_label != GENERATED_LABEL else
                    "write a longer trace with procrustes-sim trace synth --iterations N "
                    "and pass it with --trace")
            raise InputError(f"the trace has {len(available)} iteration(s), fewer than the "
                             f"{iterations} requested; {hint}")
        available = available[:iterations]
    batch = trace.batch
    _check_mappings(model, batch, settings, warn=True)

    log.info("simulating %s, batch %d, %d iteration(s), %s on %s, layout %s",
             model.name, batch, len(available), settings.dataflow.name, settings.arch.name,
             settings.layout.name)
    dense_rows = {}
    # Layers of the same shape have the same dense baseline; run it once.
    dense_by_shape = settings.dense_cache
    for layer in model.layers:
        shape = dataclasses.replace(layer, name="")
        for pass_ in PASSES:
            key = (shape, pass_, batch, settings.arch, settings.energy.source,
                   tuple(settings.energy.pj.items()), settings.max_events, settings.per_pe)
            if key not in dense_by_shape:
                dense_by_shape[key] = _dense_pass(layer, pass_, batch, settings)
            counters, energy = dense_by_shape[key]
            dense_rows[(layer.name, pass_.value)] = (dataclasses.replace(counters, layer=layer.name),
                                                     energy)

    sparse_rows = []
    pe_records = {}
    decay = decay_schedule(trace.provenance)
    for iteration in available:
        for layer in model.layers:
            masks = trace.load(iteration, layer.name)
            for pass_ in PASSES:
                dense_macs = dense_rows[(layer.name, pass_.value)][0].dense_macs
                sparse_rows.append(_sparse_pass(layer, pass_, batch, iteration, masks, settings,
                                                dense_macs, decay))
                if (layer.name, pass_.value) in settings.record_pe:
                    mapping = settings.map(layer, pass_, batch, settings.dataflow)
                    steps = pe_work(mapping, settings.policy[pass_], masks)
                    pe_records[(iteration, layer.name, pass_.value)] = steps.reshape(
                        -1, mapping.array_rows, mapping.array_cols).astype(np.int32)
        log.info("iteration %d done", iteration)

    return Report.build(
        workload=model.name, arch=settings.arch, energy=settings.energy,
        dataflow=settings.dataflow.name, balancer=settings.balancer,
        layout=settings.layout.name, policy=format_policy(settings.policy),
        config=settings.config, layout_options={
            "pointer_bits": settings.layout.pointer_bits, "run_bits": settings.layout.run_bits,
            "transpose": settings.layout.transpose, "rf_density": settings.rf_density},
        decay=decay,
        run_options={"per_pe": settings.per_pe, "max_events": settings.max_events,
                     "energy_table_source": settings.energy.source,
                     "arch_file": settings.arch.path},
        trace={"path": trace_label, "description": trace.describe(),
               "synthetic": trace.synthetic, "provenance": trace.provenance},
        batch=batch, iterations=available, sparse=sparse_rows, dense=dense_rows,
        version=__version__, limitations=LIMITATIONS, pe_work=pe_records)


def _sparse_pass(layer: Layer, pass_: Pass, batch: int, iteration: int, masks,
                 settings: RunSettings, dense_macs: int,
                 decay: dict | None) -> tuple[PassCounters, dict]:
    mapping = settings.map(layer, pass_, batch, settings.dataflow)
    skip = settings.policy[pass_]
    reads_weights = Tensor.W in mapping.operands
    weights = masks.weights if reads_weights else None
    layout = settings.layout if reads_weights else get_layout("dense")
    counters = _run(mapping, skip, masks, layout, weights, settings, "sparse", iteration,
                    dense_macs)
    counters.extra.update(training_counts(
        mapping, masks, settings.layout, settings.arch.word_bits, settings.arch.rf_words, decay,
        iteration, dense_macs, settings.rf_density))
    return counters, energy_breakdown(counters, settings.energy, settings.arch)


def _dense_pass(layer: Layer, pass_: Pass, batch: int, settings: RunSettings):
    """Run the dense baseline of one layer and pass on its fastest bundled dataflow.

    Every candidate's cycles are at least the largest of its compute, DRAM
    and GLB port totals, so a candidate whose bound is beyond the tie margin
    of the fastest simulated so far cannot win and is not simulated.
    """
    dense_layout = get_layout("dense")
    candidates = []
    for dataflow in settings.dense_dataflows:
        try:
            mapping = settings.map(layer, pass_, batch, dataflow)
        except InputError:
            # A dataflow whose tiles cannot fit this layer is not a candidate.
            continue
        work = tile_work(mapping, None, None)
        traffic = tile_traffic(mapping, settings.arch, dense_layout, None)
        schedule = _schedule(work, traffic, settings.arch, None)
        bound = max(schedule.compute_cycles.sum(), schedule.port_cycles.sum(),
                    schedule.load_cycles.sum() + schedule.drain_cycles.sum())
        candidates.append((bound, mapping, work, traffic))
    if not candidates:
        raise InputError(f"layer {layer.name!r} {pass_.value}: no bundled dataflow fits this "
                         f"layer on {settings.arch.name}; use an architecture with larger buffers")
    simulated = []
    for bound, mapping, work, traffic in sorted(candidates, key=lambda c: c[0]):
        fastest = min((c.cycles for c, _ in simulated), default=None)
        if fastest is not None and bound > fastest * (1 + DENSE_TIE):
            break
        counters = _run(mapping, None, None, dense_layout, None, settings, "dense", -1, None,
                        analysed=(work, traffic))
        simulated.append((counters, energy_breakdown(counters, settings.energy, settings.arch)))
    # Near-ties go to the lower energy, so that a change in cycles too small
    # to matter does not swap the baseline's energy.
    fastest = min(c.cycles for c, _ in simulated)
    close = [(c, e) for c, e in simulated if c.cycles <= fastest * (1 + DENSE_TIE)]
    return min(close, key=lambda item: (sum(item[1].values()), item[0].cycles))


def _run(mapping: PassMapping, skip: Tensor | None, masks, layout: Layout,
         weights: np.ndarray | None, settings: RunSettings, run: str,
         iteration: int, dense_macs: int | None, analysed=None) -> PassCounters:
    """Simulate one mapped pass; *dense_macs* None means this run skips nothing.

    *analysed* passes in the pass's work and traffic when already computed.
    """
    arch = settings.arch
    if analysed is None:
        analysed = (tile_work(mapping, skip, masks), tile_traffic(mapping, arch, layout, weights))
    work, traffic = analysed
    moved = np.zeros(0)
    if run == "sparse":
        work, traffic, moved = apply_balancer(settings.balancer, mapping, skip, masks, work,
                                              traffic, arch, settings.layout)
    pe_steps = None
    # Per-PE processes replay lock-step steps, so they apply to the balancer
    # that keeps lock step.
    if (settings.per_pe and mapping.steps * arch.pe_count <= PER_PE_LIMIT
            and (run == "dense" or settings.balancer == "none")):
        pe_steps = pe_work(mapping, skip, masks)
    schedule = _schedule(work, traffic, arch, pe_steps)
    # The per-PE mode runs one event per tile in every pass, including the
    # passes too large for per-PE processes, so its figures are comparable.
    timing = run_pass(schedule, mapping.tiles if settings.per_pe else settings.max_events)

    mpc = arch.macs_per_cycle
    useful = float(work.spread_macs.sum()) / mpc
    balanced = float(work.balanced_macs.sum())
    busiest = float(work.busiest_macs.sum())
    counters = PassCounters(
        iteration=iteration, layer=mapping.layer.name, pass_=mapping.pass_.value, run=run,
        dataflow=mapping.dataflow, mapping=mapping.describe(),
        padded_macs=mapping.layer.macs(mapping.batch),
        dense_macs=work.total_effective_macs if dense_macs is None else dense_macs,
        effective_macs=work.total_effective_macs,
        cycles=timing.cycles, useful_cycles=useful,
        imbalance_stall_cycles=(busiest - balanced) / mpc,
        mapping_stall_cycles=(balanced / mpc) - useful,
        memory_stall_cycles=timing.memory_wait_cycles + timing.port_stall_cycles
        + timing.drain_tail_cycles + (timing.compute_cycles - busiest / mpc),
        busiest_pe_macs=busiest, balanced_pe_macs=balanced,
        steps=int(work.steps.sum()), tiles=mapping.tiles, events=timing.events,
        pe_count=arch.pe_count, macs_per_cycle=mpc,
        accesses=_accesses(work, traffic, arch), metadata=_metadata(traffic, arch),
        extra={"moved_blocks": float(moved.sum()),
               "transpose_scatter_bits": float(traffic.transpose_glb_read_bits.sum())})
    counters.check()
    return counters


def _schedule(work: TileWork, traffic: TileTraffic, arch: Arch, pe_steps) -> TileSchedule:
    mpc = arch.macs_per_cycle
    port_cycles = np.maximum(traffic.glb_array_bits / arch.glb_bits_per_cycle,
                             traffic.noc_unique_words / arch.noc_words_per_cycle)
    return TileSchedule(load_cycles=traffic.dram_read_bits / arch.dram_bits_per_cycle,
                        compute_cycles=work.busiest_macs / mpc,
                        port_cycles=port_cycles,
                        drain_cycles=traffic.dram_write_bits / arch.dram_bits_per_cycle,
                        pe_steps=pe_steps, macs_per_cycle=mpc)


def _accesses(work: TileWork, traffic: TileTraffic, arch: Arch) -> dict:
    macs = float(work.effective_macs.sum())
    width = arch.glb_bank_width_bits

    def total(array: np.ndarray) -> float:
        return float(array.sum())

    return {
        "mac": macs,
        # Each MAC reads two operands and the partial sum, and writes it back.
        "rf_read": 3 * macs + total(traffic.psum_out_words),
        "rf_write": macs + total(traffic.rf_fill_words),
        "glb_read": (total(traffic.glb_read_bits) - total(traffic.metadata_glb_read_bits)) / width,
        "glb_write": (total(traffic.glb_write_bits) - total(traffic.metadata_glb_write_bits))
        / width,
        "noc_word": total(traffic.noc_words) - total(traffic.metadata_noc_words),
        "dram_read_bit": total(traffic.dram_read_bits) - total(traffic.metadata_dram_bits),
        "dram_write_bit": total(traffic.dram_write_bits),
    }


def _metadata(traffic: TileTraffic, arch: Arch) -> dict:
    width = arch.glb_bank_width_bits
    return {
        "metadata_dram_read_bit": float(traffic.metadata_dram_bits.sum()),
        "metadata_glb_read": float(traffic.metadata_glb_read_bits.sum()) / width,
        "metadata_glb_write": float(traffic.metadata_glb_write_bits.sum()) / width,
        "metadata_noc_word": float(traffic.metadata_noc_words.sum()),
        "metadata_decode": float(traffic.metadata_decodes.sum()),
    }
