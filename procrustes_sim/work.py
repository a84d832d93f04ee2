"""Work analysis: per-step, per-PE effective MACs from the masks.

For one mapped layer and pass this module counts, for every lock-step step
and every PE, the MACs that PE performs once the skipped operand's zeros are
left out, and folds them into what the engine needs per GLB tile: the sum
over steps of the busiest PE's work (the tile's compute cycles), the
effective MACs, and the work the mapped PEs would need if perfectly
balanced.

The work of a (step, PE) pair is a sum over the PE's RF tile of an
indicator over the seven dimensions N, K, C, R, S, P, Q. That indicator is a
product of the skipped operand's mask, the padding validity of (R, P) and
(S, Q) (products with the zero padding around X are never computed), and
the group structure of (K, C). The sums are taken with numpy over axes that
each cover one RF extent; an axis the work does not depend on stays of
length 1 and is broadcast, and repeated padding patterns along P and Q are
computed once. That keeps a layer at arrays the size of its step count.

Products with padding are excluded in the dense baseline too, so at
density 1.0 the sparse and dense MAC counts agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from procrustes_sim.mapping import PassMapping
from procrustes_sim.workload import DIMS, Dim, Layer, Tensor

_AXIS = {dim: index for index, dim in enumerate(DIMS)}


@dataclass(frozen=True)
class TileWork:
    """Work of every GLB tile of one mapped pass, in the tiles' run order.

    Every array has one entry per GLB tile. Cycles assume one MAC per PE per
    cycle scaled by the architecture's MACs per cycle.
    """

    busiest_macs: np.ndarray  # sum over steps of the busiest PE's MACs
    effective_macs: np.ndarray  # MACs after skipping, summed over PEs
    balanced_macs: np.ndarray  # sum over steps of mean MACs per mapped PE
    spread_macs: np.ndarray  # sum over steps of MACs per PE of the whole array
    steps: np.ndarray  # steps with non-zero work

    @property
    def total_effective_macs(self) -> int:
        """Effective MACs of the whole pass."""
        return int(self.effective_macs.sum())


def group_structure(layer: Layer) -> np.ndarray:
    """Boolean (K, C) matrix: True where filter k reads input channel c."""
    k_group = np.arange(layer.K) // layer.filters_per_group
    c_group = np.arange(layer.C) // layer.channels_per_group
    return k_group[:, None] == c_group[None, :]


def expand_weights(layer: Layer, weights: np.ndarray) -> np.ndarray:
    """Place a (K, C/groups, R, S) weight mask into a (K, C, R, S) one.

    Channels outside a filter's group become False.
    """
    if layer.groups == 1:
        return weights
    full = np.zeros((layer.K, layer.C, layer.R, layer.S), dtype=weights.dtype)
    cg = layer.channels_per_group
    for k in range(layer.K):
        start = (k // layer.filters_per_group) * cg
        full[k, start:start + cg] = weights[k]
    return full


def _block_sum(array: np.ndarray, axis: int, unit: int, length: int) -> np.ndarray:
    """Sum groups of *unit* consecutive entries along *axis*, padded to *length* groups."""
    size = array.shape[axis]
    padded = length * unit
    if padded != size:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, padded - size)
        array = np.pad(array, widths)
    shape = array.shape[:axis] + (length, unit) + array.shape[axis + 1:]
    return array.reshape(shape).sum(axis=axis + 1)


def block_sums(array: np.ndarray, units: tuple[int, ...], lengths: tuple[int, ...]) -> np.ndarray:
    """Sum every axis of *array* in groups of *units*, padded to *lengths* groups.

    One padding and one reduction over all axes at once, which is much
    faster on boolean masks than summing one axis after another.
    """
    padded = tuple(unit * length for unit, length in zip(units, lengths))
    widths = [(0, total - size) for total, size in zip(padded, array.shape)]
    if any(width for _, width in widths):
        array = np.pad(array, widths)
    split = []
    for unit, length in zip(units, lengths):
        split += [length, unit]
    return array.reshape(split).sum(axis=tuple(range(1, 2 * array.ndim, 2)), dtype=np.int64)


class _Grid:
    """Axis lengths and index helpers of one mapped pass."""

    def __init__(self, mapping: PassMapping):
        self.mapping = mapping
        self.layer = mapping.layer
        self.unit = {d: mapping.rf_extent[d] for d in DIMS}
        # Entries along each dimension's axis: one per PE position for spatial
        # dimensions, one per step otherwise. Each entry covers `unit` indices.
        self.length = {d: mapping.step_count(d) * mapping.array_size(d) for d in DIMS}

    def counts(self, dim: Dim) -> np.ndarray:
        """Indices of *dim* that each axis entry covers (edge entries cover fewer)."""
        starts = np.arange(self.length[dim]) * self.unit[dim]
        return np.clip(self.mapping.sizes[dim] - starts, 0, self.unit[dim])


def _unique_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(matrix, axis=1, return_inverse=True)
    return unique, inverse.reshape(-1)


@dataclass(frozen=True)
class CoreWork:
    """Work per axis entry before multiplicities, axes (N, K, C, R, S, P, Q).

    ``independent`` lists the dimensions the work does not depend on: their
    axis has length 1 and each entry's multiplicity is applied later.
    ``expand`` maps P and Q to index arrays that expand unique padding
    patterns back to every entry.
    """

    array: np.ndarray
    independent: frozenset
    expand: dict


def core_work(mapping: PassMapping, skip: Tensor | None, masks) -> CoreWork:
    """Effective MACs per axis entry of one pass when zeros of *skip* are skipped."""
    grid = _Grid(mapping)
    layer = grid.layer
    taps_rp = _tap_validity(grid, Dim.P, Dim.R)
    taps_sq = _tap_validity(grid, Dim.Q, Dim.S)
    r_in = _filter_blocks(layer.R, grid.unit[Dim.R], grid.length[Dim.R])
    s_in = _filter_blocks(layer.S, grid.unit[Dim.S], grid.length[Dim.S])

    if skip in (None, Tensor.W):
        # Work depends on P and Q only through padding: compute each
        # distinct pattern of valid taps once.
        taps_rp, expand_p = _unique_columns(taps_rp)
        taps_sq, expand_q = _unique_columns(taps_sq)
        expand = {Dim.P: expand_p, Dim.Q: expand_q}
        if skip is None:
            kc = group_structure(layer).astype(np.int64)
            kc = _block_sum(_block_sum(kc, 0, grid.unit[Dim.K], grid.length[Dim.K]),
                            1, grid.unit[Dim.C], grid.length[Dim.C])
            rows = r_in.T @ taps_rp
            cols = s_in.T @ taps_sq
            array = np.einsum("kc,ap,bq->kcabpq", kc, rows, cols)
        else:
            weights = expand_weights(layer, masks.weights).astype(np.int64)
            weights = _block_sum(weights, 0, grid.unit[Dim.K], grid.length[Dim.K])
            weights = _block_sum(weights, 1, grid.unit[Dim.C], grid.length[Dim.C])
            array = np.einsum("kcrs,ra,rp,sb,sq->kcabpq", weights, r_in, taps_rp, s_in, taps_sq,
                              optimize=True)
        return CoreWork(array[None], frozenset({Dim.N}), expand)

    no_expand = {Dim.P: None, Dim.Q: None}
    if skip == Tensor.X:
        array = _input_work(grid, masks.inputs)[:, None]  # (N, 1, C, R, S, P, Q)
        independent = {Dim.K}
        if layer.groups > 1:
            # Filters of other groups do not read channel c.
            per_k = _block_sum(group_structure(layer).astype(np.int64), 0,
                               grid.unit[Dim.K], grid.length[Dim.K])
            array = array * per_k[None, :, :, None, None, None, None]
            independent = set()
        array = _block_sum(array, 2, grid.unit[Dim.C], grid.length[Dim.C])
        return CoreWork(array, frozenset(independent), no_expand)

    if skip == Tensor.DY:
        grads = masks.output_grads.astype(np.int64)
        grads = _block_sum(grads, 0, grid.unit[Dim.N], grid.length[Dim.N])
        rows = _output_placement(grid, Dim.P, taps_rp, r_in)
        cols = _output_placement(grid, Dim.Q, taps_sq, s_in)
        array = np.einsum("nkpq,apx,bqy->nkabxy", grads, rows, cols, optimize=True)[:, :, None]
        independent = {Dim.C}
        if layer.groups > 1:
            per_c = _block_sum(group_structure(layer).astype(np.int64), 1,
                               grid.unit[Dim.C], grid.length[Dim.C])
            array = array * per_c[None, :, :, None, None, None, None]
            independent = set()
        array = _block_sum(array, 1, grid.unit[Dim.K], grid.length[Dim.K])
        return CoreWork(array, frozenset(independent), no_expand)

    raise ValueError(f"cannot skip zeros of {skip}")


def _tap_validity(grid: _Grid, spatial: Dim, filter_dim: Dim) -> np.ndarray:
    """Count matrix (raw taps, output entries) of in-bounds products.

    Entry (r, b) counts the outputs p of entry b whose input row
    p * stride + r - padding lies inside X.
    """
    valid = _raw_validity(grid.layer, spatial, filter_dim)
    return _block_sum(valid, 1, grid.unit[spatial], grid.length[spatial])


def _raw_validity(layer: Layer, spatial: Dim, filter_dim: Dim) -> np.ndarray:
    size = layer.H if spatial == Dim.P else layer.W
    outputs = layer.P if spatial == Dim.P else layer.Q
    taps = layer.R if filter_dim == Dim.R else layer.S
    rows = np.arange(outputs)[None, :] * layer.stride + np.arange(taps)[:, None] - layer.padding
    return ((rows >= 0) & (rows < size)).astype(np.int64)


def _output_placement(grid: _Grid, spatial: Dim, taps: np.ndarray, filter_in: np.ndarray):
    """Matrix (filter entries, raw outputs, output entries) of valid taps per output."""
    layer = grid.layer
    filter_dim = Dim.R if spatial == Dim.P else Dim.S
    per_output = filter_in.T @ _raw_validity(layer, spatial, filter_dim)
    outputs = per_output.shape[1]
    placement = np.zeros((outputs, grid.length[spatial]), dtype=np.int64)
    placement[np.arange(outputs), np.arange(outputs) // grid.unit[spatial]] = 1
    return per_output[:, :, None] * placement[None, :, :]


def _filter_blocks(taps: int, unit: int, length: int) -> np.ndarray:
    matrix = np.zeros((taps, length), dtype=np.int64)
    matrix[np.arange(taps), np.arange(taps) // unit] = 1
    return matrix


def _input_work(grid: _Grid, inputs: np.ndarray) -> np.ndarray:
    """Non-zero inputs per (N, C, R, S, P, Q) entry, padding excluded."""
    layer = grid.layer
    pad = layer.padding
    stride = layer.stride
    padded = np.pad(inputs, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else inputs
    unit, length = grid.unit, grid.length
    shape = (length[Dim.N], layer.C, length[Dim.R], length[Dim.S], length[Dim.P], length[Dim.Q])
    core = np.zeros(shape, dtype=np.int64)
    for r in range(layer.R):
        for s in range(layer.S):
            window = padded[:, :, r:r + stride * (layer.P - 1) + 1:stride,
                            s:s + stride * (layer.Q - 1) + 1:stride]
            counts = window.astype(np.int32)
            counts = _block_sum(counts, 0, unit[Dim.N], length[Dim.N])
            counts = _block_sum(counts, 2, unit[Dim.P], length[Dim.P])
            counts = _block_sum(counts, 3, unit[Dim.Q], length[Dim.Q])
            core[:, :, r // unit[Dim.R], s // unit[Dim.S]] += counts
    return core


def _block_channels(core: np.ndarray, grid: _Grid) -> np.ndarray:
    return _block_sum(core, 2, grid.unit[Dim.C], grid.length[Dim.C])


def tile_work(mapping: PassMapping, skip: Tensor | None, masks) -> TileWork:
    """Fold per-step, per-PE work into per-tile sums in run order."""
    core = core_work(mapping, skip, masks)
    grid = _Grid(mapping)
    step_max, step_sum = _reduce_over_pes(core, mapping)

    for dim in DIMS:
        axis = _AXIS[dim]
        if core.expand.get(dim) is not None:
            step_max = np.take(step_max, core.expand[dim], axis=axis)
            step_sum = np.take(step_sum, core.expand[dim], axis=axis)
        if dim in core.independent and dim not in (mapping.rows, mapping.cols):
            counts = _along(grid.counts(dim), axis)
            step_max = step_max * counts
            step_sum = step_sum * counts

    full_shape = tuple(mapping.step_count(d) for d in DIMS)
    step_max = np.broadcast_to(step_max, full_shape)
    step_sum = np.broadcast_to(step_sum, full_shape)
    balanced = step_sum / _mapped_pes(mapping)
    spread = step_sum / (mapping.array_rows * mapping.array_cols)
    nonzero = (step_sum > 0).astype(np.int64)
    return TileWork(busiest_macs=_fold_tiles(step_max, mapping),
                    effective_macs=_fold_tiles(step_sum, mapping),
                    balanced_macs=_fold_tiles(balanced, mapping),
                    spread_macs=_fold_tiles(spread, mapping),
                    steps=_fold_tiles(nonzero, mapping))


def _along(vector: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * 7
    shape[axis] = len(vector)
    return vector.reshape(shape)


def _active(mapping: PassMapping, dim: Dim) -> np.ndarray:
    """Mapped PEs along spatial *dim* in each of its steps."""
    size = mapping.array_size(dim)
    return np.clip(mapping.sizes[dim] - np.arange(mapping.step_count(dim)) * size, 0, size)


def _reduce_over_pes(core: CoreWork, mapping: PassMapping) -> tuple[np.ndarray, np.ndarray]:
    """Max and sum over the PEs of each step; spatial axes become step axes."""
    step_max = core.array
    step_sum = core.array
    for dim in (mapping.rows, mapping.cols):
        axis = _AXIS[dim]
        if dim in core.independent:
            # Every PE along this dimension has the same work; only the
            # mapped ones add to the sum.
            step_sum = step_sum * _along(_active(mapping, dim), axis)
            continue
        split = (mapping.step_count(dim), mapping.array_size(dim))
        step_max = step_max.reshape(step_max.shape[:axis] + split + step_max.shape[axis + 1:])
        step_sum = step_sum.reshape(step_sum.shape[:axis] + split + step_sum.shape[axis + 1:])
        step_max = step_max.max(axis=axis + 1)
        step_sum = step_sum.sum(axis=axis + 1)
    return step_max, step_sum


def _mapped_pes(mapping: PassMapping) -> np.ndarray:
    """PEs holding real indices in each step, broadcastable to the step grid."""
    rows = _along(_active(mapping, mapping.rows), _AXIS[mapping.rows])
    cols = _along(_active(mapping, mapping.cols), _AXIS[mapping.cols])
    return rows * cols


def _fold_tiles(steps: np.ndarray, mapping: PassMapping) -> np.ndarray:
    """Sum a full step grid into GLB tiles and flatten them in run order."""
    array = np.asarray(steps)
    for dim in DIMS:
        array = _block_sum(array, _AXIS[dim], mapping.glb_extent[dim], mapping.tile_count(dim))
    order = [_AXIS[d] for d in mapping.glb_order]
    return np.ascontiguousarray(array.transpose(order)).reshape(-1)


def pe_work(mapping: PassMapping, skip: Tensor | None, masks) -> np.ndarray:
    """Per-PE work of every step, shape (tiles, steps per tile, rows, cols).

    Tiles and the steps inside them follow the run order; steps past the end
    of a partial tile have zero work. This materializes every (step, PE)
    pair, so it is meant for small layers.
    """
    core = core_work(mapping, skip, masks)
    grid = _Grid(mapping)
    array = core.array
    for dim in DIMS:
        axis = _AXIS[dim]
        if core.expand.get(dim) is not None:
            array = np.take(array, core.expand[dim], axis=axis)
        if dim in core.independent:
            if dim in (mapping.rows, mapping.cols):
                mapped = (grid.counts(dim) > 0).astype(np.int64)
                array = array * _along(mapped, axis)
            else:
                array = array * _along(grid.counts(dim), axis)
    array = np.broadcast_to(array, tuple(grid.length[d] for d in DIMS))

    # Split every axis into (tile, step in tile, PE position).
    split = []
    padded = array
    for dim in DIMS:
        axis = _AXIS[dim]
        size = mapping.array_size(dim)
        length = mapping.tile_count(dim) * mapping.glb_extent[dim] * size
        widths = [(0, 0)] * 7
        widths[axis] = (0, length - padded.shape[axis])
        padded = np.pad(padded, widths)
        split += [mapping.tile_count(dim), mapping.glb_extent[dim], size]
    padded = padded.reshape(split)
    tile_axes = [3 * _AXIS[d] for d in mapping.glb_order]
    step_axes = [3 * _AXIS[d] + 1 for d in mapping.loop_order]
    pe_axes = [3 * _AXIS[mapping.rows] + 2, 3 * _AXIS[mapping.cols] + 2]
    rest = [3 * _AXIS[d] + 2 for d in DIMS if d not in (mapping.rows, mapping.cols)]
    ordered = padded.transpose(tile_axes + step_axes + pe_axes + rest)
    tiles = math.prod(mapping.tile_count(d) for d in DIMS)
    steps = math.prod(mapping.glb_extent[d] for d in DIMS)
    return ordered.reshape(tiles, steps, mapping.array_rows, mapping.array_cols)


@dataclass(frozen=True)
class RowWork:
    """Per-tile (step, row) work of the distinct tiles of a pass, and where each tile maps.

    ``work`` has shape (distinct tiles, steps per tile, rows); entry ``i`` of
    ``tile_index`` is the distinct tile that run-order tile ``i`` equals.
    Tiles that differ only along dimensions the work does not depend on, or
    only in a repeated padding pattern, are computed once.
    """

    work: np.ndarray
    tile_index: np.ndarray


def row_work(mapping: PassMapping, skip: Tensor | None, masks) -> RowWork | None:
    """Work of every (step, row) pair per tile; a row's work is the largest of its PEs'.

    Returns None when every row has the same work, since moving work
    between rows then changes nothing.
    """
    core = core_work(mapping, skip, masks)
    if mapping.rows in core.independent:
        return None
    grid = _Grid(mapping)
    array = core.array
    # A dimension stays compressed (its distinct entries only) when each
    # tile contains a single step of it.
    compressed = {}
    for dim in DIMS:
        axis = _AXIS[dim]
        single = mapping.glb_extent[dim] == 1
        if core.expand.get(dim) is not None:
            if single:
                compressed[dim] = core.expand[dim]
            else:
                array = np.take(array, core.expand[dim], axis=axis)
        if dim in core.independent and dim not in (mapping.rows, mapping.cols):
            counts = grid.counts(dim)
            if single and np.all(counts == counts[0]):
                array = array * int(counts[0])
                compressed[dim] = np.zeros(grid.length[dim], dtype=np.int64)
            else:
                array = array * _along(counts, axis)

    cols_axis = _AXIS[mapping.cols]
    if mapping.cols not in core.independent:
        split = (mapping.step_count(mapping.cols), mapping.array_size(mapping.cols))
        array = array.reshape(array.shape[:cols_axis] + split + array.shape[cols_axis + 1:])
        array = array.max(axis=cols_axis + 1)
    elif mapping.glb_extent[mapping.cols] == 1:
        compressed[mapping.cols] = np.zeros(mapping.step_count(mapping.cols), dtype=np.int64)
    rows_axis = _AXIS[mapping.rows]
    split = (mapping.step_count(mapping.rows), mapping.array_size(mapping.rows))
    array = array.reshape(array.shape[:rows_axis] + split + array.shape[rows_axis + 1:])
    array = np.moveaxis(array, rows_axis + 1, -1)  # (7 step axes..., rows)
    shape = tuple(array.shape[_AXIS[d]] if d in compressed else mapping.step_count(d)
                  for d in DIMS) + (mapping.array_size(mapping.rows),)
    array = np.broadcast_to(array, shape)

    split = []
    tile_counts = {}
    for dim in DIMS:
        axis = _AXIS[dim]
        if dim in compressed:
            tile_counts[dim] = array.shape[axis]
            split += [array.shape[axis], 1]
            continue
        length = mapping.tile_count(dim) * mapping.glb_extent[dim]
        if length != array.shape[axis]:
            widths = [(0, 0)] * 8
            widths[axis] = (0, length - array.shape[axis])
            array = np.pad(array, widths)
        tile_counts[dim] = mapping.tile_count(dim)
        split += [mapping.tile_count(dim), mapping.glb_extent[dim]]
    array = np.ascontiguousarray(array).reshape(split + [mapping.array_size(mapping.rows)])
    tile_axes = [2 * _AXIS[d] for d in mapping.glb_order]
    step_axes = [2 * _AXIS[d] + 1 for d in mapping.loop_order]
    ordered = array.transpose(tile_axes + step_axes + [14])
    steps = math.prod(mapping.glb_extent[d] for d in DIMS)
    distinct = math.prod(tile_counts.values())
    work = ordered.reshape(distinct, steps, mapping.array_size(mapping.rows))

    # Run-order tile -> distinct tile.
    full_counts = [mapping.tile_count(d) for d in mapping.glb_order]
    indices = np.unravel_index(np.arange(mapping.tiles), full_counts)
    mapped = []
    for dim, index in zip(mapping.glb_order, indices):
        mapped.append(compressed[dim][index] if dim in compressed else index)
    tile_index = np.ravel_multi_index(mapped, [tile_counts[d] for d in mapping.glb_order])
    return RowWork(work=work, tile_index=tile_index)
