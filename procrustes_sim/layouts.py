"""Storage layouts of the weight tensor: encoding, size and access costs.

A layout stores a (K, C, R, S) weight tensor, or one GLB tile of it, as
data words plus metadata. Every layout here encodes and decodes a mask
exactly (:meth:`Layout.encode`, :meth:`Layout.decode`) and states its size
by formula (:meth:`Layout.tile_bits`); the tests check that both agree.

Sizes of a tile with ``nnz`` non-zeros, ``blocks`` (k, c) pairs of ``taps``
R x S positions each, ``rows`` filters and ``cols`` = channels x taps
positions per filter, with w-bit words:

* ``dense``: every weight, blocks * taps * w; no metadata.
* ``bitmask``: non-zeros, nnz * w; one bit per weight, blocks * taps.
* ``csr``: rows are filters. nnz * w; per non-zero a column index of
  ceil(log2 cols) bits, and rows + 1 pointers of ``pointer_bits``.
* ``csc``: columns are (c, r, s) positions. nnz * w; per non-zero a row
  index of ceil(log2 rows) bits, and cols + 1 pointers.
* ``block-mask``: nnz * w; per block an R*S-bit mask and one pointer
  (20 bits by default, the width the Procrustes authors' model charges).
* ``rle``: per entry a word and a ``run_bits`` count of the zeros before
  it; a run longer than 2**run_bits - 1 zeros needs filler entries that
  each stand for 2**run_bits zeros (the last one an explicit zero word).

The backward pass reads the weights transposed. ``block-mask`` reorders
whole blocks and flips each mask, so it needs no re-encoding. The other
compressed layouts either re-encode the tensor in transposed order every
iteration (``transpose="reencode"``) or read the non-zeros one by one
(``transpose="scatter"``), paying a whole GLB access for each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from procrustes_sim.errors import InputError

DEFAULT_POINTER_BITS = 20
DEFAULT_RUN_BITS = 4
TRANSPOSE_MODES = ("reencode", "scatter")


def index_bits(count: int | np.ndarray) -> np.ndarray:
    """Return the bits of an index that distinguishes *count* positions (at least 1)."""
    count = np.maximum(np.asarray(count, dtype=np.float64), 2.0)
    return np.ceil(np.log2(count))


@dataclass(frozen=True)
class TileStats:
    """Counts of one or more weight tiles; arrays broadcast against each other."""

    nnz: np.ndarray
    blocks: np.ndarray  # (k, c) pairs inside the tile
    taps: np.ndarray  # R x S positions of each block inside the tile
    rows: np.ndarray  # filters K inside the tile
    nonempty: np.ndarray  # blocks with at least one non-zero
    fillers: np.ndarray | None = None  # rle filler entries, if computed


@dataclass(frozen=True)
class Layout:
    """A weight layout; ``compressed`` layouts store non-zeros only."""

    name: str
    compressed: bool
    pointer_bits: int = 0
    run_bits: int = 0
    transpose: str = "free"
    description: str = ""

    # Sizes -------------------------------------------------------------

    def tile_bits(self, stats: TileStats, word_bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Data bits and metadata bits of each tile described by *stats*."""
        dense = stats.blocks * stats.taps
        cols = np.where(stats.rows > 0, dense / np.maximum(stats.rows, 1), 0)
        name = self.name
        if name == "dense":
            return dense * word_bits, 0 * dense
        if name == "bitmask":
            return stats.nnz * word_bits, dense * 1
        if name == "csr":
            return stats.nnz * word_bits, (stats.nnz * index_bits(cols)
                                           + (stats.rows + 1) * self.pointer_bits)
        if name == "csc":
            return stats.nnz * word_bits, (stats.nnz * index_bits(stats.rows)
                                           + (cols + 1) * self.pointer_bits)
        if name == "block-mask":
            return stats.nnz * word_bits, stats.blocks * (stats.taps + self.pointer_bits)
        if name == "rle":
            entries = stats.nnz + stats.fillers
            return entries * word_bits, entries * self.run_bits
        raise ValueError(f"no size formula for layout {name!r}")

    def decode_ops(self, stats: TileStats) -> np.ndarray:
        """Metadata lookups a PE makes to find the non-zeros of each tile.

        One per non-zero, plus one per pointer read (csr rows, csc columns,
        non-empty blocks) or filler entry skipped (rle). Zero for dense.
        """
        dense = stats.blocks * stats.taps
        if self.name == "dense":
            return 0 * dense
        if self.name == "bitmask":
            return stats.nnz * 1
        if self.name == "csr":
            return stats.nnz + stats.rows
        if self.name == "csc":
            cols = np.where(stats.rows > 0, dense / np.maximum(stats.rows, 1), 0)
            return stats.nnz + cols
        if self.name == "block-mask":
            return stats.nnz + stats.nonempty
        return stats.nnz + stats.fillers

    def tensor_bits(self, mask: np.ndarray, word_bits: int = 32) -> tuple[int, int]:
        """Data bits and metadata bits of a whole (K, C, R, S) mask, by formula."""
        stats = whole_tensor_stats(mask, self.run_bits if self.name == "rle" else 0)
        data, meta = self.tile_bits(stats, word_bits)
        return int(data), int(meta)

    # Encoding ----------------------------------------------------------

    def encode(self, mask: np.ndarray) -> dict:
        """Encode a (K, C, R, S) boolean mask into a dict of arrays and their bit widths."""
        mask = np.asarray(mask, dtype=bool)
        k, c, r, s = mask.shape
        flat = mask.reshape(-1)
        if self.name == "dense":
            return {"values": np.ones(flat.size, dtype=bool) & flat, "fields": {}}
        if self.name == "bitmask":
            return {"bits": np.packbits(flat), "count": flat.size,
                    "fields": {"bits": (flat.size, 1)}}
        if self.name in ("csr", "csc"):
            matrix = mask.reshape(k, c * r * s)
            if self.name == "csc":
                matrix = matrix.T
            rows, cols = np.nonzero(matrix)
            pointers = np.searchsorted(rows, np.arange(matrix.shape[0] + 1))
            width = int(index_bits(matrix.shape[1]))
            return {"pointers": pointers, "indices": cols, "shape": matrix.shape,
                    "fields": {"indices": (cols.size, width),
                               "pointers": (pointers.size, self.pointer_bits)}}
        if self.name == "block-mask":
            blocks = mask.reshape(k * c, r * s)
            counts = blocks.sum(axis=1)
            pointers = np.concatenate(([0], np.cumsum(counts)[:-1]))
            return {"masks": np.packbits(blocks, axis=1), "pointers": pointers,
                    "taps": r * s,
                    "fields": {"masks": (k * c, r * s), "pointers": (k * c, self.pointer_bits)}}
        if self.name == "rle":
            runs, fillers = _run_lengths(flat, self.run_bits)
            return {"runs": runs, "fillers": fillers, "count": flat.size,
                    "fields": {"entries": (runs.size, self.run_bits)}}
        raise ValueError(f"no encoder for layout {self.name!r}")

    def decode(self, encoded: dict, shape: tuple[int, int, int, int]) -> np.ndarray:
        """Rebuild the boolean mask that :meth:`encode` produced *encoded* from."""
        k, c, r, s = shape
        if self.name == "dense":
            return encoded["values"].reshape(shape)
        if self.name == "bitmask":
            return np.unpackbits(encoded["bits"], count=encoded["count"]).astype(bool).reshape(shape)
        if self.name in ("csr", "csc"):
            matrix = np.zeros(encoded["shape"], dtype=bool)
            pointers = encoded["pointers"]
            rows = np.repeat(np.arange(matrix.shape[0]), np.diff(pointers))
            matrix[rows, encoded["indices"]] = True
            if self.name == "csc":
                matrix = matrix.T
            return matrix.reshape(shape)
        if self.name == "block-mask":
            blocks = np.unpackbits(encoded["masks"], axis=1, count=encoded["taps"]).astype(bool)
            return blocks.reshape(shape)
        if self.name == "rle":
            flat = np.zeros(encoded["count"], dtype=bool)
            # Every entry, filler or not, covers its run of zeros and one word.
            positions = np.cumsum(encoded["runs"] + 1) - 1
            real = ~encoded["fillers"]
            flat[positions[real]] = True
            return flat.reshape(shape)
        raise ValueError(f"no decoder for layout {self.name!r}")

    @staticmethod
    def encoded_metadata_bits(encoded: dict) -> int:
        """Metadata bits of an encoded tensor, counted field by field."""
        return int(sum(count * width for count, width in encoded["fields"].values()))

    def check_widths(self, layer_name: str, weight_count: int) -> None:
        """Raise InputError if a pointer cannot address *weight_count* weights of a layer's tile.

        Callers pass the largest tile of the network, so the width in the
        message fits every layer.
        """
        if self.pointer_bits and weight_count:
            needed = int(index_bits(weight_count + 1))
            if self.pointer_bits < needed:
                raise InputError(f"layout {self.name}: a {self.pointer_bits}-bit pointer cannot "
                                 f"index the {weight_count} weights of a GLB tile of layer "
                                 f"{layer_name!r}; give --pointer-bits {needed} or more")


def _run_lengths(flat: np.ndarray, run_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Entries of a run-length encoding: zeros before each entry, and which are fillers."""
    longest = 2 ** run_bits - 1
    positions = np.flatnonzero(flat)
    gaps = np.diff(np.concatenate(([-1], positions))) - 1
    # A run of g zeros needs g // (longest + 1) fillers of `longest` zeros
    # plus an explicit zero word each, then the real entry.
    filler_counts = gaps // (longest + 1)
    remainders = gaps - filler_counts * (longest + 1)
    total = int(filler_counts.sum()) + positions.size
    runs = np.empty(total, dtype=np.int64)
    fillers = np.zeros(total, dtype=bool)
    ends = np.cumsum(filler_counts + 1)
    starts = ends - filler_counts - 1
    filler_index = np.repeat(starts, filler_counts) + _ramp(filler_counts)
    runs[filler_index] = longest
    fillers[filler_index] = True
    runs[ends - 1] = remainders
    return runs, fillers


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for every n in *counts*, concatenated."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - offsets


def rle_fillers(flat_rows: np.ndarray, run_bits: int) -> np.ndarray:
    """Filler entries of every row of a 2-D boolean array, each row encoded on its own."""
    longest = 2 ** run_bits - 1
    rows, cols = np.nonzero(flat_rows)
    if rows.size == 0:
        return np.zeros(flat_rows.shape[0], dtype=np.int64)
    previous = np.concatenate(([-1], cols[:-1]))
    new_row = np.concatenate(([True], rows[1:] != rows[:-1]))
    previous[new_row] = -1
    gaps = cols - previous - 1
    return np.bincount(rows, weights=gaps // (longest + 1),
                       minlength=flat_rows.shape[0]).astype(np.int64)


def whole_tensor_stats(mask: np.ndarray, run_bits: int = DEFAULT_RUN_BITS) -> TileStats:
    """Tile statistics of a whole (K, C, R, S) mask taken as one tile."""
    mask = np.asarray(mask, dtype=bool)
    k, c, r, s = mask.shape
    fillers = rle_fillers(mask.reshape(1, -1), run_bits)[0] if run_bits else np.int64(0)
    return TileStats(nnz=np.int64(mask.sum()), blocks=np.int64(k * c), taps=np.int64(r * s),
                     rows=np.int64(k),
                     nonempty=np.int64(mask.reshape(k * c, r * s).any(axis=1).sum()),
                     fillers=np.int64(fillers))


_DESCRIPTIONS = {
    "dense": "every weight stored, no metadata",
    "bitmask": "non-zeros plus one mask bit per weight",
    "csr": "non-zeros per filter with column indices and row pointers",
    "csc": "non-zeros per (c, r, s) column with row indices and column pointers",
    "block-mask": "non-zeros of each R x S block, an R*S-bit mask and a pointer per block",
    "rle": "non-zeros with the count of zeros before each, and fillers for long runs",
}
LAYOUT_NAMES = tuple(_DESCRIPTIONS)


def get_layout(name: str, *, pointer_bits: int = DEFAULT_POINTER_BITS,
               run_bits: int = DEFAULT_RUN_BITS, transpose: str = "reencode") -> Layout:
    """Return the layout called *name*; raise InputError for unknown names or widths."""
    if name not in _DESCRIPTIONS:
        raise InputError(f"unknown layout {name!r}; valid names: {', '.join(LAYOUT_NAMES)}")
    if not isinstance(pointer_bits, int) or not 1 <= pointer_bits <= 64:
        raise InputError(f"pointer width {pointer_bits!r} is invalid; give 1 to 64 bits")
    if not isinstance(run_bits, int) or not 1 <= run_bits <= 32:
        raise InputError(f"run width {run_bits!r} is invalid; give 1 to 32 bits")
    if transpose not in TRANSPOSE_MODES:
        raise InputError(f"transposed access {transpose!r} is invalid; give one of "
                         f"{', '.join(TRANSPOSE_MODES)}")
    uses_pointers = name in ("csr", "csc", "block-mask")
    return Layout(name=name, compressed=name != "dense",
                  pointer_bits=pointer_bits if uses_pointers else 0,
                  run_bits=run_bits if name == "rle" else 0,
                  transpose="free" if name in ("dense", "bitmask", "block-mask") else transpose,
                  description=_DESCRIPTIONS[name])


LAYOUTS = {name: get_layout(name) for name in LAYOUT_NAMES}


def pointer_bits_needed(count: int) -> int:
    """Smallest pointer width that addresses *count* positions and one past the end."""
    return int(math.ceil(math.log2(count + 1))) if count > 0 else 1
