"""Costs that sparse training adds beyond the data movement of the passes.

Counted once per iteration and layer, on the pass where they happen:

* WU, ``encode``: the weights change every iteration, so after the update
  the new weights are compared with zero and re-encoded; the new metadata
  is written to DRAM.
* WU, ``quantile``: the quantile-estimation unit compares every weight's
  accumulated gradient with the threshold and updates the threshold, one
  multiply per weight.
* FW and BW, ``prng``: while the initial values of untracked weights have
  not decayed to zero, the PEs regenerate them from a PRNG seed instead of
  reading them, once per pass that reads weights.
* BW, ``transpose``: a layout that cannot be read transposed is re-encoded
  in transposed order (read and write through DRAM, a compare per weight).
* FW and BW, ``overflow``: each PE's RF holds the weights of its sub-tile
  at the expected density; a denser sub-tile keeps the excess in the GLB
  and reads it from there at every use.
"""

from __future__ import annotations

import math

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.layouts import Layout, whole_tensor_stats
from procrustes_sim.mapping import PassMapping, pass_tensors, tensor_words
from procrustes_sim.work import block_sums, expand_weights
from procrustes_sim.workload import Dim, Pass, Tensor

COUNTS = ("encode_compares", "encode_bits", "quantile_compares", "quantile_updates",
          "prng_values", "transpose_bits", "transpose_compares", "overflow_accesses")


def training_counts(mapping: PassMapping, masks, layout: Layout, word_bits: int,
                    rf_words: int, decay: dict | None, iteration: int, dense_macs: int,
                    rf_density: float | None) -> dict:
    """Per-iteration overhead counts of one sparse pass; see the module notes."""
    counts = dict.fromkeys(COUNTS, 0.0)
    layer = mapping.layer
    weights = masks.weights
    total = layer.weight_count
    if mapping.pass_ == Pass.WU:
        counts["quantile_compares"] = float(total)
        counts["quantile_updates"] = float(total)
        if layout.compressed:
            _, meta = layout.tensor_bits(weights, word_bits)
            counts["encode_compares"] = float(total)
            counts["encode_bits"] = float(meta)
        return counts

    if decay and iteration < decay["zero_at"]:
        counts["prng_values"] = float(round(total * (1.0 - decay["tracked_fraction"])))
    if mapping.pass_ == Pass.BW and layout.transpose == "reencode":
        data, meta = layout.tensor_bits(weights, word_bits)
        counts["transpose_bits"] = float(2 * (data + meta))
        counts["transpose_compares"] = float(total)
    if layout.compressed:
        counts["overflow_accesses"] = _overflow(mapping, weights, rf_words, dense_macs,
                                                rf_density)
    return counts


def _overflow(mapping: PassMapping, weights: np.ndarray, rf_words: int, dense_macs: int,
              rf_density: float | None) -> float:
    """GLB reads of weights that did not fit the RF share sized for the expected density."""
    layer = mapping.layer
    unit = mapping.rf_extent
    block = unit[Dim.K] * unit[Dim.C] * unit[Dim.R] * unit[Dim.S]
    others = sum(tensor_words(layer, t, unit) for t in pass_tensors(mapping.pass_)
                 if t != Tensor.W)
    budget = rf_words - others
    density = float(weights.mean()) if rf_density is None else rf_density
    capacity = min(math.ceil(density * block), budget)
    if budget < math.ceil(density * unit[Dim.R] * unit[Dim.S]):
        raise InputError(f"layer {layer.name!r} {mapping.pass_.value}: the RF has {budget} words "
                         f"left for weights, too small for one {unit[Dim.R]}x{unit[Dim.S]} block "
                         "at the expected density; use an architecture with a larger RF")
    full = expand_weights(layer, weights)
    units = tuple(unit[d] for d in (Dim.K, Dim.C, Dim.R, Dim.S))
    sub_tiles = block_sums(full, units, tuple(math.ceil(n / u) for n, u in zip(full.shape, units)))
    excess = np.maximum(sub_tiles - capacity, 0).sum()
    # Each weight is used dense_macs / weights times in the pass on average.
    uses = dense_macs / max(layer.weight_count, 1)
    return float(excess * uses)


def decay_schedule(provenance: dict) -> dict | None:
    """Read when initial weights reach zero, and the tracked fraction, from a trace's provenance.

    The Dropback trainer records ``decay_zero_from``, ``k`` and
    ``total_weights``; other tools may give ``initial_values_zero_at`` and
    ``tracked_fraction``. Returns None when neither is there.
    """
    zero_at = provenance.get("initial_values_zero_at", provenance.get("decay_zero_from"))
    tracked = provenance.get("tracked_fraction")
    if tracked is None and provenance.get("k") and provenance.get("total_weights"):
        tracked = provenance["k"] / provenance["total_weights"]
    if zero_at is None or tracked is None:
        return None
    return {"zero_at": int(zero_at), "tracked_fraction": float(tracked)}
