"""Load balancers: how work is reassigned across PEs before it runs.

Work arrives per GLB tile as the MACs of every (step, row) pair, where a
row's work is the largest over the PEs of that row (exact when the columns
are multicast copies, as in CxN's FW and BW). A balancer turns it into the
tile's compute time:

* ``none``: lock step; each step lasts as long as its busiest PE.
* ``ideal``: every step takes the mean work of its mapped PEs. No real
  design beats it; it costs nothing.
* ``block-reorder``: the GLB gives each row of the array its sub-tile of
  weight blocks for the whole GLB tile; rows run through their own blocks
  and meet at the end of the tile. The busiest row then hands its longest
  block that still helps to the least-loaded row, round after round
  (greedy, longest first). A block run on another row than its own
  channel's needs that channel's inputs and its block pointer delivered
  there.
* ``sparten``: steps (filters, in CxN) are sorted by work and paired
  densest with sparsest; each pair runs as one lock-step step, as SparTen
  pairs dense and sparse filters.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.mapping import PassMapping, tensor_words
from procrustes_sim.work import row_work
from procrustes_sim.workload import Tensor

BALANCERS = {
    "none": "lock step; the busiest PE of each step sets its length",
    "ideal": "perfect balance over the mapped PEs; a bound, with no cost",
    "block-reorder": "per-row weight sub-tiles per GLB tile, evened out longest block first",
    "sparten": "steps sorted by work and paired densest with sparsest",
}


def check_balancer(name: str) -> str:
    """Return *name* if it is a known balancer; raise InputError listing the valid ones."""
    if name not in BALANCERS:
        raise InputError(f"unknown balancer {name!r}; valid names: {', '.join(BALANCERS)}")
    return name


@dataclass(frozen=True)
class Balanced:
    """Per-tile compute after balancing, and the blocks it moved between rows."""

    busiest_macs: np.ndarray  # per tile: MACs of the longest row or PE, summed over syncs
    moved_blocks: np.ndarray  # per tile: blocks run on another row than their own


def deal_blocks(row_work: np.ndarray, rounds: int | None = None) -> Balanced:
    """Even out the rows of every tile by moving weight blocks, longest first.

    *row_work* has shape (tiles, steps, rows). Rows first keep their own
    blocks and run through them without waiting for each other, meeting at
    the end of the tile. Then, for at most *rounds* rounds (default: twice
    the rows), every tile moves the longest block of its busiest row that
    still shortens the tile to its least-loaded row. Returns each tile's
    makespan and how many blocks changed rows.
    """
    tiles, steps, rows = row_work.shape
    remaining = row_work.astype(np.float64).copy()
    loads = remaining.sum(axis=1)
    moved = np.zeros(tiles, dtype=np.int64)
    index = np.arange(tiles)
    for _ in range(2 * rows if rounds is None else rounds):
        busiest = loads.argmax(axis=1)
        idlest = loads.argmin(axis=1)
        gap = loads[index, busiest] - loads[index, idlest]
        blocks = remaining[index, :, busiest]  # (tiles, steps)
        # A block shortens the tile only if it is smaller than the gap.
        fitting = np.where(blocks < gap[:, None], blocks, 0.0)
        step = fitting.argmax(axis=1)
        size = fitting[index, step]
        active = size > 0
        if not active.any():
            break
        tiles_moving = index[active]
        remaining[tiles_moving, step[active], busiest[active]] = 0.0
        loads[tiles_moving, busiest[active]] -= size[active]
        loads[tiles_moving, idlest[active]] += size[active]
        moved += active
    return Balanced(busiest_macs=loads.max(axis=1), moved_blocks=moved)


def pair_steps(row_work: np.ndarray) -> Balanced:
    """Pair each tile's steps densest with sparsest and run each pair in lock step."""
    tiles, steps, rows = row_work.shape
    totals = row_work.sum(axis=2)
    order = np.argsort(-totals, axis=1, kind="stable")
    ranked = np.take_along_axis(row_work, order[:, :, None], axis=1)
    half = steps // 2
    dense = ranked[:, :half]
    sparse = ranked[:, steps - half:][:, ::-1]
    busiest = (dense + sparse).max(axis=2).sum(axis=1)
    if steps % 2:
        busiest = busiest + ranked[:, half].max(axis=1)
    return Balanced(busiest_macs=busiest.astype(np.float64),
                    moved_blocks=np.zeros(tiles, dtype=np.int64))


def apply_balancer(name: str, mapping: PassMapping, skip: Tensor | None, masks, work, traffic,
                   arch, layout):
    """Balance one mapped pass; return (work, traffic, moved blocks per tile) after balancing.

    Per tile, ``block-reorder`` and ``sparten`` keep the original order
    where balancing would not shorten the tile once its extra deliveries
    are counted, as a GLB controller that compares both would.
    """
    moved = np.zeros(len(work.busiest_macs), dtype=np.int64)
    if name == "none":
        return work, traffic, moved
    if name == "ideal":
        return dataclasses.replace(work, busiest_macs=work.balanced_macs.copy()), traffic, moved

    if name == "block-reorder" and skip != Tensor.W:
        # There are no weight blocks to move.
        return work, traffic, moved
    rows = row_work(mapping, skip, masks)
    if rows is None:
        # Every row carries the same work.
        return work, traffic, moved
    distinct = deal_blocks(rows.work) if name == "block-reorder" else pair_steps(rows.work)
    result = Balanced(busiest_macs=distinct.busiest_macs[rows.tile_index],
                      moved_blocks=distinct.moved_blocks[rows.tile_index])

    extra_words = np.zeros_like(work.busiest_macs, dtype=np.float64)
    pointer_bits = np.zeros_like(extra_words)
    if name == "block-reorder":
        # A moved block needs its channel's inputs in every PE of its new
        # row, one RF tile each, and its block pointer.
        x_words = _rf_input_words(mapping)
        cols = min(mapping.array_size(mapping.cols), mapping.sizes[mapping.cols])
        extra_words = result.moved_blocks * x_words * cols
        pointer_bits = result.moved_blocks * layout.pointer_bits

    def array_time(busiest, glb_bits, noc_words):
        ports = np.maximum(glb_bits / arch.glb_bits_per_cycle, noc_words / arch.noc_words_per_cycle)
        return np.maximum(busiest / arch.macs_per_cycle, ports)

    glb_extra = extra_words * arch.word_bits + pointer_bits
    noc_extra = extra_words + pointer_bits / arch.word_bits
    before = array_time(work.busiest_macs, traffic.glb_array_bits, traffic.noc_unique_words)
    after = array_time(result.busiest_macs, traffic.glb_array_bits + glb_extra,
                       traffic.noc_unique_words + noc_extra)
    use = after < before
    busiest = np.where(use, result.busiest_macs, work.busiest_macs)
    moved = np.where(use, result.moved_blocks, 0)
    glb_extra = np.where(use, glb_extra, 0.0)
    noc_extra = np.where(use, noc_extra, 0.0)
    meta_bits = np.where(use, pointer_bits, 0.0)
    balanced_traffic = dataclasses.replace(
        traffic,
        glb_read_bits=traffic.glb_read_bits + glb_extra,
        glb_array_bits=traffic.glb_array_bits + glb_extra,
        noc_words=traffic.noc_words + noc_extra,
        noc_unique_words=traffic.noc_unique_words + noc_extra,
        rf_fill_words=traffic.rf_fill_words + noc_extra,
        metadata_glb_read_bits=traffic.metadata_glb_read_bits + meta_bits,
        metadata_noc_words=traffic.metadata_noc_words + meta_bits / arch.word_bits)
    # Dealing blocks can fill rows the mapping left idle, so the busiest row
    # may finish before the mean of the mapped PEs; that time is no longer lost.
    balanced = np.minimum(work.balanced_macs, busiest)
    return (dataclasses.replace(work, busiest_macs=busiest, balanced_macs=balanced),
            balanced_traffic, moved)


def _rf_input_words(mapping: PassMapping) -> int:
    """Words of the non-weight operand in one PE's RF tile."""
    other = [t for t in mapping.operands if t != Tensor.W]
    return sum(tensor_words(mapping.layer, t, mapping.rf_extent) for t in other)
