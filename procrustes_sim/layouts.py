"""Storage layouts of the weight tensor and what they cost.

A layout decides how many bits a block of weights occupies in DRAM, the
global buffer and on the network-on-chip, split into data and metadata,
and how many compressed blocks a PE decodes. Blocks are the R x S filter
planes of one (k, c) pair.

* ``dense``: every weight is stored; no metadata.
* ``block-mask``: only non-zero weights are stored, and each block carries
  an R*S-bit mask plus a block pointer (20 bits by default, the width the
  Procrustes authors' model charges). The backward pass reads the same
  blocks in transposed order with each mask flipped, so it needs no
  re-encoding and costs the same as the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from procrustes_sim.errors import InputError

DEFAULT_POINTER_BITS = 20


@dataclass(frozen=True)
class Layout:
    """A weight layout; ``compressed`` layouts store non-zeros only."""

    name: str
    compressed: bool
    pointer_bits: int = 0
    description: str = ""

    def weight_bits(self, nnz: np.ndarray, blocks: np.ndarray, taps: np.ndarray,
                    word_bits: int) -> tuple[np.ndarray, np.ndarray]:
        """Data bits and metadata bits of weight tiles.

        *nnz* are the non-zero weights of each tile and *blocks* its (k, c)
        blocks, each with *taps* of its R x S positions in the tile. The
        arrays broadcast against each other.
        """
        dense_bits = blocks * taps * word_bits
        if not self.compressed:
            return dense_bits, np.zeros_like(dense_bits)
        return nnz * word_bits + 0 * dense_bits, blocks * (taps + self.pointer_bits)

    def decoded_blocks(self, nonempty_blocks: np.ndarray) -> np.ndarray:
        """Blocks a PE decodes per delivery: the non-empty ones, if compressed."""
        if not self.compressed:
            return np.zeros_like(nonempty_blocks)
        return nonempty_blocks


LAYOUTS = {
    "dense": Layout("dense", compressed=False,
                    description="every weight stored, no metadata"),
    "block-mask": Layout("block-mask", compressed=True, pointer_bits=DEFAULT_POINTER_BITS,
                         description="non-zeros of each R x S block, an R*S-bit mask and a "
                                     f"{DEFAULT_POINTER_BITS}-bit pointer per block"),
}


def get_layout(name: str) -> Layout:
    """Return the layout called *name*; raise InputError listing the valid ones."""
    if name not in LAYOUTS:
        raise InputError(f"unknown layout {name!r}; valid names: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]
