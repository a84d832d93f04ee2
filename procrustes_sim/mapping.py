"""Mapping: the loop nest and tiles of one layer and pass on one array.

A dataflow names two spatial dimensions and per-dimension tile extents; this
module resolves those extents for a concrete layer (``full`` and ``auto``
become integers), checks that each tile fits its buffer, and describes the
resulting two-level loop nest:

* a *step* is one iteration of the temporal loops in which every PE works on
  its own RF tile; PEs advance in lock step from step to step;
* a *GLB tile* is a block of consecutive steps whose operands DRAM delivers
  to the global buffer together.

Both levels iterate their loops in the dataflow's loop order. Along a
spatial dimension each PE takes one index, so the dimension needs
ceil(D / array size) steps.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import dataflows as dataflow_files
from procrustes_sim.config import Arch
from procrustes_sim.errors import InputError
from procrustes_sim.workload import (DIMS, PASS_OPERANDS, TENSOR_DIMS, Dim, Layer, Pass,
                                     Tensor)

# The X-shaped tensors (X and dX) span input rows (P - 1) * stride + R and
# input columns (Q - 1) * stride + S, clipped to H and W.
_INPUT_SHAPED = (Tensor.X, Tensor.DX)

# Relative margin within which two GLB mappings count as equally fast.
SEARCH_TIE = 0.02

# Largest share of the GLB that one step of the array may take, double
# buffered; RF extents given as auto are sized to respect it.
STEP_SHARE_OF_GLB = 0.5


@dataclass(frozen=True)
class PassMapping:
    """Resolved loop nest of one layer and pass; all extents are integers."""

    layer: Layer
    pass_: Pass
    batch: int
    dataflow: str
    rows: Dim
    cols: Dim
    array_rows: int
    array_cols: int
    loop_order: tuple[Dim, ...]
    glb_order: tuple[Dim, ...]
    sizes: dict = field(hash=False)
    rf_extent: dict = field(hash=False)
    glb_extent: dict = field(hash=False)
    rf_words_used: int = 0
    glb_words_used: int = 0

    def array_size(self, dim: Dim) -> int:
        """PEs along *dim*: the array size for spatial dimensions, else 1."""
        if dim == self.rows:
            return self.array_rows
        if dim == self.cols:
            return self.array_cols
        return 1

    def block(self, dim: Dim) -> int:
        """Indices of *dim* that one step covers across the whole array."""
        return self.rf_extent[dim] * self.array_size(dim)

    def step_count(self, dim: Dim) -> int:
        """Steps along *dim* over the whole layer."""
        return math.ceil(self.sizes[dim] / self.block(dim))

    def tile_count(self, dim: Dim) -> int:
        """GLB tiles along *dim*."""
        return math.ceil(self.step_count(dim) / self.glb_extent[dim])

    @property
    def steps(self) -> int:
        """Steps of the whole loop nest, partial tiles included."""
        return math.prod(self.tile_count(d) * self.glb_extent[d] for d in DIMS)

    @property
    def tiles(self) -> int:
        """GLB tiles of the loop nest."""
        return math.prod(self.tile_count(d) for d in DIMS)

    @property
    def operands(self) -> tuple[Tensor, Tensor]:
        """Tensors the pass reads."""
        return PASS_OPERANDS[self.pass_][0]

    @property
    def output(self) -> Tensor:
        """Tensor the pass writes."""
        return PASS_OPERANDS[self.pass_][1]

    def describe(self) -> str:
        """One-line summary of the mapping."""
        rf = ",".join(f"{d.value}{self.rf_extent[d]}" for d in DIMS if self.rf_extent[d] > 1)
        glb = ",".join(f"{d.value}{self.glb_extent[d]}" for d in self.glb_order
                       if self.tile_count(d) > 1 or self.glb_extent[d] > 1)
        order = "".join(d.value for d in self.glb_order if self.step_count(d) > 1)
        return (f"{self.dataflow} {self.rows.value}x{self.cols.value} rf[{rf}] "
                f"glb[{glb}] order {order or '-'}, {self.tiles} tiles, {self.steps} steps")


def tensor_words(layer: Layer, tensor: Tensor, extent: dict) -> int:
    """Dense words of *tensor* covered by per-dimension *extent* values."""
    if tensor in _INPUT_SHAPED:
        rows = min(layer.H, (extent[Dim.P] - 1) * layer.stride + extent[Dim.R])
        cols = min(layer.W, (extent[Dim.Q] - 1) * layer.stride + extent[Dim.S])
        return extent[Dim.N] * extent[Dim.C] * rows * cols
    return math.prod(extent[d] for d in TENSOR_DIMS[tensor])


def pass_tensors(pass_: Pass) -> tuple[Tensor, ...]:
    """Tensors a pass touches: its two operands and its output."""
    inputs, output = PASS_OPERANDS[pass_]
    return (*inputs, output)


def map_pass(layer: Layer, pass_: Pass, batch: int, arch: Arch,
             dataflow: dataflow_files.Dataflow) -> PassMapping:
    """Resolve *dataflow* for one layer and pass; raise InputError if a tile cannot fit."""
    spec = dataflow.for_pass(pass_)
    sizes = layer.dims(batch)
    base = PassMapping(layer=layer, pass_=pass_, batch=batch, dataflow=dataflow.name,
                       rows=spec.rows, cols=spec.cols, array_rows=arch.pe_rows,
                       array_cols=arch.pe_cols, loop_order=spec.loop_order,
                       glb_order=spec.loop_order, sizes=sizes,
                       rf_extent={d: 1 for d in DIMS}, glb_extent={d: 1 for d in DIMS})
    where = f"layer {layer.name!r} {pass_.value} on dataflow {dataflow.name!r}"
    unit_glb = {d: 1 for d in DIMS}
    block = layer.R * layer.S
    if arch.rf_words < block:
        raise InputError(f"{where}: the RF has {arch.rf_words} words, too small for one "
                         f"{layer.R}x{layer.S} weight block of {block} words; use an "
                         "architecture with a larger RF")

    def rf_problem(extent: dict, share: float = 1.0) -> str:
        rf_words = _rf_words(layer, pass_, extent)
        if rf_words > arch.rf_words:
            return (f"{where}: the RF tile needs {rf_words} words but the RF holds "
                    f"{arch.rf_words}; lower the rf_tile extents or use an architecture "
                    "with a larger RF")
        # One step of the whole array is the smallest GLB tile, so it must fit.
        glb_words = _glb_words(_replace(base, rf_extent=extent), unit_glb)
        if glb_words > arch.glb_words * share:
            return (f"{where}: one step of the array needs {glb_words} GLB words, double "
                    f"buffered, but the GLB holds {arch.glb_words}; lower the rf_tile "
                    "extents or use an architecture with a larger GLB")
        return ""

    def rf_target(extent: dict) -> str:
        # Automatic extents stop growing once a step takes a fixed share of
        # the GLB, which leaves room for GLB tiles of many steps, so that
        # operands fetched from DRAM are reused across steps.
        return rf_problem(extent, STEP_SHARE_OF_GLB)

    rf_extent = _resolve(spec.rf_tile, sizes, rf_problem, rf_target)
    mapping = _replace(base, rf_extent=rf_extent)
    step_counts = {d: mapping.step_count(d) for d in DIMS}

    def glb_problem(extent: dict) -> str:
        glb_words = _glb_words(mapping, extent)
        if glb_words > arch.glb_words:
            return (f"{where}: the GLB tile needs {glb_words} words, double buffered, but "
                    f"the GLB holds {arch.glb_words}; lower the glb_tile extents or use an "
                    "architecture with a larger GLB")
        return ""

    if spec.glb_search:
        glb_order, glb_extent = _search_glb(mapping, arch, glb_problem)
        mapping = _replace(mapping, glb_order=glb_order)
    else:
        glb_extent = _resolve(spec.glb_tile, step_counts, glb_problem)
    return _replace(mapping, glb_extent=glb_extent,
                    rf_words_used=_rf_words(layer, pass_, rf_extent),
                    glb_words_used=_glb_words(mapping, glb_extent))


def _search_glb(mapping: PassMapping, arch: Arch, problem) -> tuple[tuple[Dim, ...], dict]:
    """Pick the GLB loop order and tile that move data fastest.

    For every order of the dimensions that take more than one step, the
    tile covers the innermost loops whole and the next one as far as the GLB
    allows; the tile of a single step is tried as well. Each candidate's time
    is the largest of its dense compute, DRAM and GLB port times (the latter
    two in closed form for dense tensors) plus its first fill. Among the
    candidates within SEARCH_TIE of the fastest, the least DRAM traffic
    wins, which saves energy, then the fewest tiles.
    """
    compute = dense_compute_cycles(mapping, arch)
    iterating = [d for d in mapping.loop_order if mapping.step_count(d) > 1]
    fixed = [d for d in mapping.loop_order if d not in iterating]
    scored = []
    for inner in itertools.permutations(iterating):
        order = tuple(fixed) + inner
        extent = {d: 1 for d in DIMS}
        if problem(extent):
            break
        for dim in reversed(inner):
            extent[dim] = mapping.step_count(dim)
            if not problem(extent):
                continue
            extent[dim] = _largest_fitting(extent, dim, mapping.step_count(dim) - 1, problem)
            break
        # The one-step tile is a candidate too: it exposes the least fill time.
        for tile in (dict(extent), {d: 1 for d in DIMS}):
            candidate = _replace(mapping, glb_order=order, glb_extent=tile)
            scored.append((mapping_score(candidate, arch, compute), order, tile))
    if not scored:
        return tuple(mapping.loop_order), {d: 1 for d in DIMS}
    # Candidates within SEARCH_TIE of the fastest count as equally fast;
    # among them the least DRAM traffic wins, then the fewest tiles.
    fastest = min(score[0] for score, _, _ in scored)
    close = [item for item in scored if item[0][0] <= fastest * (1 + SEARCH_TIE)]
    _, order, tile = min(close, key=lambda item: (item[0][1], item[0][2]))
    return order, tile


def dense_compute_cycles(mapping: PassMapping, arch: Arch) -> float:
    """Upper estimate of compute cycles: every step at a full dense RF tile."""
    return mapping.steps * math.prod(mapping.rf_extent.values()) / arch.macs_per_cycle


def mapping_score(mapping: PassMapping, arch: Arch, compute: float) -> tuple:
    """Search key: estimated cycles, then DRAM words, then tiles (lower is better)."""
    dram = dram_words(mapping)
    dram_cycles = dram * arch.word_bits / arch.dram_bits_per_cycle
    ports = array_words(mapping) * arch.word_bits / arch.glb_bits_per_cycle
    # The first fill and the last drain do not overlap with compute; with
    # fewer, larger tiles they take longer.
    exposed = dram_cycles / mapping.tiles
    cycles = max(compute, dram_cycles, ports) + exposed
    return (cycles, dram, mapping.tiles)


def dram_words(mapping: PassMapping) -> int:
    """Closed-form count of the DRAM words a mapping moves, tensors taken dense.

    Exact for the traffic model in :mod:`procrustes_sim.traffic` when every
    tensor is dense and has no groups.
    """
    counts = {d: mapping.tile_count(d) for d in DIMS}
    iterating = [d for d in mapping.glb_order if counts[d] > 1]
    total = 0
    for tensor in pass_tensors(mapping.pass_):
        relevant = TENSOR_DIMS[tensor]
        words = _distinct_words(mapping, tensor)
        positions = [i for i, d in enumerate(iterating) if d in relevant]
        repeat = 1
        if positions:
            repeat = math.prod(counts[d] for d in iterating[:positions[-1]] if d not in relevant)
        if tensor == mapping.output:
            # Each revisit writes partial sums back and reads them again.
            total += words * (2 * repeat - 1)
        else:
            total += words * repeat
    return total


def _tile_extents(mapping: PassMapping, dim: Dim) -> list[int]:
    span = mapping.glb_extent[dim] * mapping.block(dim)
    return [min(span, mapping.sizes[dim] - t * span) for t in range(mapping.tile_count(dim))]


def _distinct_words(mapping: PassMapping, tensor: Tensor) -> int:
    """Words of *tensor* summed over all its distinct GLB tiles."""
    layer = mapping.layer
    if tensor in _INPUT_SHAPED:
        rows = sum(min(layer.H, (p - 1) * layer.stride + r)
                   for p in _tile_extents(mapping, Dim.P) for r in _tile_extents(mapping, Dim.R))
        cols = sum(min(layer.W, (q - 1) * layer.stride + s)
                   for q in _tile_extents(mapping, Dim.Q) for s in _tile_extents(mapping, Dim.S))
        return mapping.sizes[Dim.N] * mapping.sizes[Dim.C] * rows * cols
    return math.prod(mapping.sizes[d] for d in TENSOR_DIMS[tensor])


def array_words(mapping: PassMapping) -> int:
    """Closed-form estimate of the words the array moves through the GLB ports.

    A tensor that changes inside a tile is delivered once per change there;
    one that stays put for a whole tile is delivered only when the next
    tile needs a different block of it.
    """
    counts = {d: mapping.tile_count(d) for d in DIMS}
    extent = {d: min(mapping.sizes[d], mapping.glb_extent[d] * mapping.block(d)) for d in DIMS}
    between = [d for d in mapping.glb_order if counts[d] > 1]
    inside = [d for d in mapping.loop_order
              if mapping.glb_extent[d] > 1 and mapping.step_count(d) > 1]
    total = 0
    for tensor in pass_tensors(mapping.pass_):
        relevant = TENSOR_DIMS[tensor]
        words = tensor_words(mapping.layer, tensor, extent)
        changing = [i for i, d in enumerate(inside) if d in relevant]
        if changing:
            repeat = math.prod(mapping.glb_extent[d] for d in inside[:changing[-1]]
                               if d not in relevant)
            moved = words * repeat * mapping.tiles
        else:
            positions = [i for i, d in enumerate(between) if d in relevant]
            repeat = 1
            if positions:
                repeat = math.prod(counts[d] for d in between[:positions[-1]] if d not in relevant)
            moved = words * repeat * math.prod(counts[d] for d in between if d in relevant)
        total += 2 * moved if tensor == mapping.output else moved
    return total


def _replace(mapping: PassMapping, **changes) -> PassMapping:
    values = {name: getattr(mapping, name) for name in mapping.__dataclass_fields__}
    values.update(changes)
    return PassMapping(**values)


def _rf_words(layer: Layer, pass_: Pass, extent: dict) -> int:
    return sum(tensor_words(layer, t, extent) for t in pass_tensors(pass_))


def _glb_words(mapping: PassMapping, glb_steps: dict) -> int:
    extent = {d: min(mapping.sizes[d], glb_steps[d] * mapping.block(d)) for d in DIMS}
    # Double buffering: one tile is computed on while the next one fills.
    return 2 * sum(tensor_words(mapping.layer, t, extent) for t in pass_tensors(mapping.pass_))


def _resolve(requested, limits: dict, problem, target=None) -> dict:
    """Turn full/auto/integer extents into integers for which *problem* is empty.

    Fixed extents must pass *problem*, else InputError. Each ``auto`` extent
    then grows, in the order listed, to the largest value that passes
    *target* (by default *problem* itself).
    """
    target = target or problem
    extent = {d: 1 for d in DIMS}
    autos = []
    for dim, value in requested:
        if value == "full":
            extent[dim] = limits[dim]
        elif value == "auto":
            autos.append(dim)
        else:
            extent[dim] = min(int(value), limits[dim])
    message = problem(extent)
    if message:
        raise InputError(message)
    for dim in autos:
        extent[dim] = _largest_fitting(extent, dim, limits[dim], target)
    return extent


def _largest_fitting(extent: dict, dim: Dim, limit: int, problem) -> int:
    """Largest value from 1 to *limit* of extent[dim] for which *problem* is empty.

    Binary search, since the words a tile needs grow with every extent.
    Leaves *extent* unchanged except for *dim*, which the caller sets.
    """
    low, high = 1, limit
    while low < high:
        middle = (low + high + 1) // 2
        extent[dim] = middle
        if problem(extent):
            high = middle - 1
        else:
            low = middle
    return low
