"""Data movement of every GLB tile: DRAM, global buffer, NoC and metadata.

Reuse follows the loop nest. A tensor moves from DRAM into the GLB only in
tiles where one of its own dimensions changes from the previous tile; an
output tile goes back to DRAM when the next tile works on another output
tile, and is read back if a later tile revisits it (partial sums). Inside a
tile, a tensor is delivered to the PEs again each time a loop outside its
innermost iterating dimension that it does not depend on advances.

Weights are counted through the layout (data and metadata bits apart);
activations and gradients move dense, 32 bits a word for fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from procrustes_sim.config import Arch
from procrustes_sim.layouts import Layout, TileStats
from procrustes_sim.mapping import PassMapping
from procrustes_sim.work import block_sums, expand_weights, group_structure
from procrustes_sim.workload import DIMS, TENSOR_DIMS, Dim, Pass, Tensor

_AXIS = {dim: index for index, dim in enumerate(DIMS)}
_WEIGHT_SHAPED = (Tensor.W, Tensor.DW)
_INPUT_SHAPED = (Tensor.X, Tensor.DX)


@dataclass(frozen=True)
class TileTraffic:
    """Per-tile data movement in run order; every array has one entry per tile.

    Bits include metadata; the ``metadata_*`` arrays repeat that part alone.
    """

    dram_read_bits: np.ndarray
    dram_write_bits: np.ndarray
    glb_read_bits: np.ndarray  # array side and DRAM writebacks
    glb_write_bits: np.ndarray  # array side and DRAM fills
    glb_array_bits: np.ndarray  # what the array moves through the GLB ports
    noc_words: np.ndarray  # words delivered, one per destination PE
    noc_unique_words: np.ndarray  # words on the NoC before multicast fan-out
    rf_fill_words: np.ndarray  # operand words written into PE register files
    psum_out_words: np.ndarray  # partial-sum words read out of PE register files
    metadata_dram_bits: np.ndarray
    metadata_glb_read_bits: np.ndarray
    metadata_glb_write_bits: np.ndarray
    metadata_noc_words: np.ndarray
    metadata_decodes: np.ndarray  # metadata lookups at the PEs
    transpose_glb_read_bits: np.ndarray  # extra GLB bits of scattered BW weight reads


def _along(vector: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * 7
    shape[axis] = len(vector)
    return np.asarray(vector).reshape(shape)


def _flatten(grid: np.ndarray, mapping: PassMapping) -> np.ndarray:
    """Broadcast a 7-axis tile grid to every tile and flatten it in run order."""
    shape = tuple(mapping.tile_count(d) for d in DIMS)
    grid = np.broadcast_to(grid, shape)
    order = [_AXIS[d] for d in mapping.glb_order]
    return np.ascontiguousarray(grid.transpose(order)).reshape(-1).astype(np.float64)


def _tile_extent(mapping: PassMapping, dim: Dim) -> np.ndarray:
    """Raw indices of *dim* covered by each tile."""
    span = mapping.glb_extent[dim] * mapping.block(dim)
    starts = np.arange(mapping.tile_count(dim)) * span
    return np.minimum(mapping.sizes[dim] - starts, span)


def _block_sum(array: np.ndarray, axis: int, unit: int, length: int) -> np.ndarray:
    padded = length * unit
    if padded != array.shape[axis]:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, padded - array.shape[axis])
        array = np.pad(array, widths)
    shape = array.shape[:axis] + (length, unit) + array.shape[axis + 1:]
    return array.reshape(shape).sum(axis=axis + 1)


def _weight_tiles(mapping: PassMapping, weights: np.ndarray | None,
                  run_bits: int = 0) -> TileStats:
    """Per-tile counts of the weight tensor as a broadcastable 7-axis tile grid.

    With no *weights* every structural weight counts as non-zero. With
    *run_bits*, the run-length fillers of every tile are counted too.
    """
    layer = mapping.layer
    spans = {d: mapping.glb_extent[d] * mapping.block(d) for d in DIMS}
    counts = {d: mapping.tile_count(d) for d in DIMS}
    structure = group_structure(layer).astype(np.int64)
    blocks = _block_sum(_block_sum(structure, 0, spans[Dim.K], counts[Dim.K]),
                        1, spans[Dim.C], counts[Dim.C])
    taps = _along(_tile_extent(mapping, Dim.R), _AXIS[Dim.R]) \
        * _along(_tile_extent(mapping, Dim.S), _AXIS[Dim.S])
    rows = _along(_tile_extent(mapping, Dim.K), _AXIS[Dim.K])
    block_grid = blocks[None, :, :, None, None, None, None]
    if weights is None:
        dense = block_grid * taps
        return TileStats(nnz=dense, blocks=block_grid, taps=taps, rows=rows,
                         nonempty=block_grid * 1, fillers=0 * dense)
    full = expand_weights(layer, weights)
    dims = (Dim.K, Dim.C, Dim.R, Dim.S)
    nnz = block_sums(full, tuple(spans[d] for d in dims), tuple(counts[d] for d in dims))
    # A block is non-empty if any of its taps inside the tile is non-zero.
    taps_per_block = block_sums(full, (1, 1, spans[Dim.R], spans[Dim.S]),
                                (layer.K, layer.C, counts[Dim.R], counts[Dim.S]))
    nonempty = block_sums(taps_per_block > 0, (spans[Dim.K], spans[Dim.C], 1, 1),
                          (counts[Dim.K], counts[Dim.C], counts[Dim.R], counts[Dim.S]))
    fillers = 0
    if run_bits:
        fillers = _tile_fillers(full, spans, counts, run_bits)[None, :, :, :, :, None, None]
    return TileStats(nnz=nnz[None, :, :, :, :, None, None], blocks=block_grid, taps=taps,
                     rows=rows, nonempty=nonempty[None, :, :, :, :, None, None],
                     fillers=fillers + 0 * block_grid)


def _tile_fillers(full: np.ndarray, spans: dict, counts: dict, run_bits: int) -> np.ndarray:
    """Run-length fillers of every (K, C, R, S) tile, each tile encoded on its own.

    Tiles are read in K, C, R, S order. Padding added to split the tensor
    evenly is skipped, so it never lengthens a run.
    """
    dims = (Dim.K, Dim.C, Dim.R, Dim.S)
    padded_shape = [counts[d] * spans[d] for d in dims]
    widths = [(0, p - n) for p, n in zip(padded_shape, full.shape)]
    values = np.pad(full, widths)
    valid = np.pad(np.ones(full.shape, dtype=bool), widths)
    split = []
    for d in dims:
        split += [counts[d], spans[d]]
    order = (0, 2, 4, 6, 1, 3, 5, 7)
    tiles = int(np.prod([counts[d] for d in dims]))
    values = values.reshape(split).transpose(order).reshape(tiles, -1)
    valid = valid.reshape(split).transpose(order).reshape(tiles, -1)
    position = np.cumsum(valid, axis=1) - 1
    longest = 2 ** run_bits - 1
    rows, cols = np.nonzero(values)
    fillers = np.zeros(tiles, dtype=np.int64)
    if rows.size:
        real = position[rows, cols]
        previous = np.concatenate(([-1], real[:-1]))
        previous[np.concatenate(([True], rows[1:] != rows[:-1]))] = -1
        gaps = real - previous - 1
        fillers = np.bincount(rows, weights=gaps // (longest + 1), minlength=tiles)
    return fillers.astype(np.int64).reshape([counts[d] for d in dims])


def _dense_words(mapping: PassMapping, tensor: Tensor) -> np.ndarray:
    """Dense words of *tensor* in every tile, as a broadcastable 7-axis grid."""
    layer = mapping.layer
    ext = {d: _along(_tile_extent(mapping, d), _AXIS[d]) for d in DIMS}
    if tensor in _INPUT_SHAPED:
        rows = np.minimum(layer.H, (ext[Dim.P] - 1) * layer.stride + ext[Dim.R])
        cols = np.minimum(layer.W, (ext[Dim.Q] - 1) * layer.stride + ext[Dim.S])
        return ext[Dim.N] * ext[Dim.C] * rows * cols
    words = np.ones([1] * 7, dtype=np.int64)
    for dim in TENSOR_DIMS[tensor]:
        words = words * ext[dim]
    return words


def _changes(mapping: PassMapping, tensor: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per tile: whether the tensor's tile differs from the previous one, and first visits."""
    counts = [mapping.tile_count(d) for d in mapping.glb_order]
    total = int(np.prod(counts))
    indices = np.unravel_index(np.arange(total), counts)
    relevant = [indices[i] for i, d in enumerate(mapping.glb_order)
                if d in TENSOR_DIMS[tensor] and counts[i] > 1]
    changed = np.zeros(total, dtype=bool)
    changed[0] = True
    key = np.zeros(total, dtype=np.int64)
    for index in relevant:
        changed[1:] |= index[1:] != index[:-1]
        key = key * (int(index.max()) + 1) + index
    first = np.zeros(total, dtype=bool)
    _, first_positions = np.unique(key, return_index=True)
    first[first_positions] = True
    return changed, first


def _changes_inside(mapping: PassMapping, tensor: Tensor) -> bool:
    """Return whether the tensor's block in the PEs changes between steps of a tile."""
    return any(mapping.glb_extent[d] > 1 and mapping.step_count(d) > 1
               for d in mapping.loop_order if d in TENSOR_DIMS[tensor])


def _repeats(mapping: PassMapping, tensor: Tensor) -> np.ndarray:
    """Deliveries of each tensor block to the PEs inside every tile, as a tile grid.

    Loops outside the innermost loop that changes the tensor, and that the
    tensor does not depend on, each deliver it again.
    """
    iterating = [d for d in mapping.loop_order
                 if mapping.glb_extent[d] > 1 and mapping.step_count(d) > 1]
    relevant = [d for d in iterating if d in TENSOR_DIMS[tensor]]
    repeats = np.ones([1] * 7, dtype=np.int64)
    if not relevant:
        # The tensor stays in the PEs for the whole tile.
        return repeats
    innermost = iterating.index(relevant[-1])
    for dim in iterating[:innermost]:
        if dim in TENSOR_DIMS[tensor]:
            continue
        g = mapping.glb_extent[dim]
        steps = np.minimum(mapping.step_count(dim) - np.arange(mapping.tile_count(dim)) * g, g)
        repeats = repeats * _along(steps, _AXIS[dim])
    return repeats


def _fan(mapping: PassMapping, tensor: Tensor) -> int:
    """PEs that share each word: the mapped PEs along spatial dimensions the tensor ignores."""
    fan = 1
    for dim in (mapping.rows, mapping.cols):
        if dim not in TENSOR_DIMS[tensor]:
            fan *= min(mapping.array_size(dim), mapping.sizes[dim])
    return fan


def tile_traffic(mapping: PassMapping, arch: Arch, layout: Layout, weights: np.ndarray | None
                 ) -> TileTraffic:
    """Data movement of every tile of one mapped pass.

    *weights* is the weight mask when the pass reads W through *layout*, or
    None for dense weights. In BW, a layout whose transposed access is
    ``scatter`` pays one GLB bank access per non-zero weight it reads.
    """
    word_bits = arch.word_bits
    tiles = mapping.tiles
    zeros = np.zeros(tiles)
    totals = {name: zeros.copy() for name in TileTraffic.__dataclass_fields__}

    for tensor in mapping.operands:
        scatter = zeros
        if tensor in _WEIGHT_SHAPED:
            stats = _weight_tiles(mapping, weights if layout.compressed else None,
                                  layout.run_bits)
            data, meta = layout.tile_bits(stats, word_bits)
            data, meta = _flatten(data, mapping), _flatten(meta, mapping)
            words = data / word_bits
            decoded = _flatten(layout.decode_ops(stats), mapping)
            if mapping.pass_ == Pass.BW and layout.transpose == "scatter":
                # Each non-zero is fetched alone, so it costs a whole bank access.
                scatter = words * (arch.glb_bank_width_bits - word_bits)
        else:
            words = _flatten(_dense_words(mapping, tensor), mapping)
            data, meta, decoded = words * word_bits, zeros, zeros
        changed, _ = _changes(mapping, tensor)
        repeats = _flatten(_repeats(mapping, tensor), mapping)
        if not _changes_inside(mapping, tensor):
            # The block stays in the PEs through the tile and across tiles
            # until the tile sequence moves to another block.
            repeats = repeats * changed
        fan = _fan(mapping, tensor)
        copies = 1 if arch.noc_multicast else fan
        meta_words = meta / word_bits

        totals["dram_read_bits"] += changed * (data + meta)
        totals["glb_write_bits"] += changed * (data + meta)
        totals["metadata_dram_bits"] += changed * meta
        totals["metadata_glb_write_bits"] += changed * meta
        totals["glb_read_bits"] += repeats * (data + meta) * copies
        totals["glb_array_bits"] += repeats * (data + meta + scatter) * copies
        totals["transpose_glb_read_bits"] += repeats * scatter * copies
        totals["metadata_glb_read_bits"] += repeats * meta * copies
        totals["noc_words"] += repeats * (words + meta_words) * fan
        totals["noc_unique_words"] += repeats * (words + meta_words) * copies
        totals["metadata_noc_words"] += repeats * meta_words * fan
        totals["rf_fill_words"] += repeats * (words + meta_words) * fan
        totals["metadata_decodes"] += repeats * decoded * fan

    output = mapping.output
    if output in _WEIGHT_SHAPED:
        dense = _weight_tiles(mapping, None)
        words = _flatten(dense.blocks * dense.taps, mapping)
    else:
        words = _flatten(_dense_words(mapping, output), mapping)
    bits = words * word_bits
    changed, first = _changes(mapping, output)
    leaves = np.append(changed[1:], True)
    repeats = _flatten(_repeats(mapping, output), mapping)
    if not _changes_inside(mapping, output):
        # Partial sums stay in the PEs until the tile sequence moves on.
        repeats = repeats * leaves
    fan_in = _fan(mapping, output)
    # Partial sums from the PEs along dimensions the output ignores meet in
    # the NoC when it reduces spatially, else each one reaches the GLB.
    arrivals = 1 if arch.noc_spatial_reduction else fan_in
    partials = repeats * words * fan_in
    totals["psum_out_words"] += partials
    totals["noc_words"] += partials
    # A reduction tree adds partial sums on the way, so the NoC's bandwidth
    # limit applies to the reduced words.
    totals["noc_unique_words"] += partials / (fan_in // arrivals if arch.noc_spatial_reduction else 1)
    totals["glb_write_bits"] += repeats * bits * arrivals
    accumulate = np.maximum(repeats * arrivals - 1, 0) * bits
    totals["glb_read_bits"] += accumulate
    totals["glb_array_bits"] += repeats * bits * arrivals + accumulate
    read_back = changed & ~first
    totals["dram_read_bits"] += read_back * bits
    totals["glb_write_bits"] += read_back * bits
    totals["dram_write_bits"] += leaves * bits
    totals["glb_read_bits"] += leaves * bits
    return TileTraffic(**totals)
