"""Weight selection and initial-weight decay of the Procrustes variant of Dropback.

Every weight is ``scale * w_init + a``, where ``a`` is the weight's
accumulated gradient (the sum of its SGD updates while it is tracked) and
``scale`` is the global decay factor of the initial values. After each
update a selector chooses the weights to track from ``|a|`` over the whole
network, and ``a`` of every other weight is reset to 0, so an untracked
weight holds its (decaying) initial value.

Two selectors exist:

* :class:`QuantileSelector`: the streaming quantile estimator. One
  threshold ``t`` visits every accumulated gradient once, layer by layer in
  workload order and each layer in C order. A value is tracked when
  ``|a| > t``; then ``t`` becomes ``t * (1 + lam * q)`` if it was tracked
  and ``t * (1 - lam * (1 - q))`` if not, where ``q = 1 - k / total`` is
  the fraction not tracked. ``t`` carries over to the next iteration. The
  tracked count therefore drifts around k.
* :class:`TopKSelector`: tracks exactly the k largest ``|a|``.

:class:`DecaySchedule` gives ``scale`` per iteration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from procrustes_sim.errors import InputError

# Values that the quantile recurrence evaluates per vectorized block, and
# the most fixed-point sweeps over one block before it is cut short.
_BLOCK = 1 << 16
_MAX_SWEEPS = 8


class QuantileSelector:
    """Streaming quantile estimator of the k-th largest ``|a|``.

    The recurrence is sequential: each decision depends on the threshold
    left by all earlier values. It is evaluated exactly, in blocks of
    values: a block first assumes the decisions that ``|a| > t`` gives with
    the threshold at the block start, computes the threshold before each
    element as a cumulative sum of ``log(1 + lam * q)`` and
    ``log(1 - lam * (1 - q))`` steps, decides again with those thresholds
    and repeats until the decisions no longer change (see
    :meth:`_solve_block`). The threshold is held as ``log t`` in float64
    and a value is tracked when ``log |a| > log t``; this differs from
    multiplying ``t`` element by element only by float64 rounding.
    """

    def __init__(self, k: int, total: int, lam: float = 1e-6, threshold: float = 1e-2) -> None:
        if not 0 < k <= total:
            raise InputError(f"k={k} is invalid; it must be from 1 to the {total} weights")
        if not (lam > 0 and math.isfinite(lam) and lam < 1):
            raise InputError(f"lam={lam!r} is invalid; it must be a number in (0, 1)")
        if not (threshold > 0 and math.isfinite(threshold)):
            raise InputError(f"threshold={threshold!r} is invalid; it must be a positive number")
        self.k = k
        self.total = total
        self.q = 1.0 - k / total
        self.lam = lam
        self.log_threshold = math.log(threshold)
        self._log_up = math.log1p(lam * self.q)
        self._log_down = math.log1p(-lam * (1.0 - self.q))

    @property
    def threshold(self) -> float:
        """Current threshold estimate t."""
        return math.exp(self.log_threshold)

    def select(self, accumulated: list[np.ndarray]) -> list[np.ndarray]:
        """Return a tracked mask per array, visiting the arrays in order, and update t."""
        return [self._select_array(array.reshape(-1)).reshape(array.shape)
                for array in accumulated]

    def _select_array(self, values: np.ndarray) -> np.ndarray:
        count = values.size
        tracked = np.empty(count, np.bool_)
        log_threshold = self.log_threshold
        start = 0
        with np.errstate(divide="ignore"):
            while start < count:
                stop = min(start + _BLOCK, count)
                logs = np.log(np.abs(values[start:stop]).astype(np.float64))
                accepted, log_threshold = self._solve_block(logs, log_threshold)
                tracked[start:start + accepted.size] = accepted
                start += accepted.size
        self.log_threshold = log_threshold
        return tracked

    def _solve_block(self, logs: np.ndarray, log_threshold: float) -> tuple[np.ndarray, float]:
        """Return the decisions of a prefix of *logs* and the threshold after it.

        Each sweep assumes decisions, derives the threshold before every
        element from them and decides again. Decisions that reproduce
        themselves solve the recurrence, whose solution is unique, so the
        whole block is accepted. Otherwise sweep m + 1 is correct at least
        up to the first element where sweep m's assumption was wrong, so
        after _MAX_SWEEPS the block is cut there, which always advances by
        one element or more.
        """
        assumed = logs > log_threshold
        for _ in range(_MAX_SWEEPS):
            steps = np.where(assumed, self._log_up, self._log_down)
            after = log_threshold + np.cumsum(steps)
            before = np.empty_like(after)
            before[0] = log_threshold
            before[1:] = after[:-1]
            actual = logs > before
            mismatches = np.flatnonzero(actual != assumed)
            if mismatches.size == 0:
                return assumed, float(after[-1])
            assumed = actual
        first = int(mismatches[0])
        step = self._log_up if actual[first] else self._log_down
        return actual[:first + 1], float(before[first]) + step


class TopKSelector:
    """Exact selection of the k largest ``|a|`` over all arrays.

    Ties at the k-th value are broken by ``numpy.argpartition``, which is
    deterministic for the same input.
    """

    def __init__(self, k: int, total: int) -> None:
        if not 0 < k <= total:
            raise InputError(f"k={k} is invalid; it must be from 1 to the {total} weights")
        self.k = k
        self.total = total

    @property
    def threshold(self) -> float:
        """The k-th largest ``|a|`` of the last selection."""
        return self._threshold

    _threshold = float("nan")

    def select(self, accumulated: list[np.ndarray]) -> list[np.ndarray]:
        """Return the tracked mask per array: True for the k largest ``|a|`` overall."""
        magnitudes = np.concatenate([np.abs(array).reshape(-1) for array in accumulated])
        flat = np.zeros(magnitudes.size, np.bool_)
        if self.k == magnitudes.size:
            flat[:] = True
            self._threshold = float(magnitudes.min())
        else:
            chosen = np.argpartition(magnitudes, magnitudes.size - self.k)[-self.k:]
            flat[chosen] = True
            self._threshold = float(magnitudes[chosen].min())
        masks = []
        offset = 0
        for array in accumulated:
            masks.append(flat[offset:offset + array.size].reshape(array.shape))
            offset += array.size
        return masks


@dataclass(frozen=True)
class DecaySchedule:
    """Scale of the initial weights: ``decay ** iteration``, then exactly 0.

    The scale becomes 0 from the first iteration at which ``decay **
    iteration`` falls to *epsilon* or below, and stays 0. ``decay = 1`` keeps the
    initial values forever.
    """

    decay: float
    epsilon: float = 1e-3

    def __post_init__(self) -> None:
        if not (0 < self.decay <= 1):
            raise InputError(f"decay={self.decay!r} is invalid; it must be in (0, 1]")
        if not (0 < self.epsilon < 1):
            raise InputError(f"decay epsilon={self.epsilon!r} is invalid; it must be in (0, 1)")

    @property
    def zero_from(self) -> int | None:
        """First iteration whose scale is 0, or None if the values never decay."""
        if self.decay == 1:
            return None
        return math.ceil(math.log(self.epsilon) / math.log(self.decay))

    def scale(self, iteration: int) -> float:
        """Factor applied to the initial weights in *iteration*."""
        zero_from = self.zero_from
        if zero_from is not None and iteration >= zero_from:
            return 0.0
        return self.decay ** iteration
