"""Dropback training loop that records W, X and dY masks into a trace.

:func:`train` trains a network of the zoo on the digits data set with SGD
and momentum and one of three weight-selection modes:

* ``dense``: every weight is trained, the initial values never decay;
* ``topk``: Dropback with an exact top-k selection of the tracked weights;
* ``quantile``: Dropback with the streaming quantile estimator, as in
  Procrustes.

The run is deterministic: weights, the data split and the batch order come
from generators seeded with ``SeedSequence([seed, purpose])``, so the same
arguments on the same machine (same numpy, BLAS library and thread count)
give the same masks bit for bit.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.trace import LayerMasks, TraceWriter
from procrustes_sim.training.data import CLASSES, Dataset, load_digits_dataset
from procrustes_sim.training.dropback import DecaySchedule, QuantileSelector, TopKSelector
from procrustes_sim.training.network import (Network, init_weights, plan_network,
                                             softmax_cross_entropy)
from procrustes_sim.workload import Workload

logger = logging.getLogger(__name__)

SELECTIONS = ("quantile", "topk", "dense")
GENERATOR_NAME = "procrustes-sim dropback trainer"
EVAL_BATCH = 64


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; every field goes into the trace provenance."""

    iterations: int = 300
    batch: int = 16
    density: float = 0.1
    selection: str = "quantile"
    learning_rate: float = 0.02
    momentum: float = 0.9
    decay: float = 0.95
    decay_epsilon: float = 1e-3
    quantile_lambda: float = 1e-6
    initial_threshold: float = 1e-2
    seed: int = 0
    record: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name}={value!r} is invalid; it must be an integer of 1 "
                                 "or more")

        positive_int("iterations", self.iterations)
        positive_int("batch", self.batch)
        if self.selection not in SELECTIONS:
            raise InputError(f"selection {self.selection!r} is invalid; choose one of "
                             f"{', '.join(SELECTIONS)}")
        if not (0 < self.density <= 1):
            raise InputError(f"density={self.density!r} is invalid; it must be in (0, 1]")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise InputError(f"learning rate {self.learning_rate!r} is invalid; it must be "
                             "a positive number")
        if not (0 <= self.momentum < 1):
            raise InputError(f"momentum={self.momentum!r} is invalid; it must be in [0, 1)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed={self.seed!r} is invalid; it must be an integer of 0 or more")
        for iteration in self.record:
            if not 0 <= iteration < self.iterations:
                raise InputError(f"record iteration {iteration} is outside 0 to "
                                 f"{self.iterations - 1}; record only iterations that run")
        # Validates decay and decay_epsilon.
        DecaySchedule(self.decay, self.decay_epsilon)


@dataclass
class TrainResult:
    """Outcome of :func:`train`."""

    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float = float("nan")
    k: int = 0
    total_weights: int = 0
    iterations_per_second: float = float("nan")
    trace_path: Path | None = None

    def tracked_drift(self) -> dict[str, float]:
        """Mean, minimum and maximum of (tracked - k) / k over the iterations."""
        if not self.history or not self.k:
            return {"mean": float("nan"), "min": float("nan"), "max": float("nan")}
        relative = np.array([(row["tracked"] - self.k) / self.k for row in self.history])
        return {"mean": float(relative.mean()), "min": float(relative.min()),
                "max": float(relative.max())}


def spread_iterations(iterations: int, snapshots: int) -> tuple[int, ...]:
    """Return *snapshots* iterations spread evenly from 0 to ``iterations - 1``."""
    if snapshots < 1:
        raise InputError(f"snapshots={snapshots} is invalid; record at least 1 iteration")
    if snapshots >= iterations:
        return tuple(range(iterations))
    if snapshots == 1:
        return (iterations - 1,)
    return tuple(sorted({round(i * (iterations - 1) / (snapshots - 1))
                         for i in range(snapshots)}))


def train(workload: Workload, config: TrainConfig, out: str | os.PathLike[str] | None = None,
          dataset: Dataset | None = None,
          provenance: dict[str, Any] | None = None) -> TrainResult:
    """Train *workload* on the digits and, if *out* is given, write the recorded trace.

    The trace holds the iterations in ``config.record`` and is written only
    after training succeeds. Its provenance lists every setting, the data
    set, the held-out accuracy and the tracked-weight drift, plus the
    caller's *provenance* entries (for example the command line).
    """
    stages = plan_network(workload)
    last = stages[-1].layer
    if last.K != CLASSES:
        raise InputError(f"workload {workload.name!r} ends in {last.K} outputs, but the digits "
                         f"data set has {CLASSES} classes; use a topology whose last layer "
                         f"has K={CLASSES}")
    if out is not None and not config.record:
        raise InputError("no iterations to record; give at least one record iteration")
    first = workload.layers[0]
    if dataset is None:
        dataset = load_digits_dataset(first.H, first.W, first.C, config.seed)
    if config.batch > len(dataset.train_labels):
        raise InputError(f"batch={config.batch} is larger than the {len(dataset.train_labels)} "
                         "training images; choose a smaller batch")

    init_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    initial = init_weights(stages, init_rng)
    network = Network(stages)
    optimizer = _DropbackOptimizer(initial, config)
    batches = _batch_indices(len(dataset.train_labels), config.batch, config.seed)
    recorder = _Recorder(workload, set(config.record))
    result = TrainResult(k=optimizer.k, total_weights=optimizer.total)

    logger.info("training %s (%d weights, k=%d, selection %s) on %s for %d iterations "
                "at batch %d", workload.name, optimizer.total, optimizer.k, config.selection,
                dataset.name, config.iterations, config.batch)
    started = time.perf_counter()
    for iteration in range(config.iterations):
        indices = next(batches)
        images = dataset.train_images[indices]
        labels = dataset.train_labels[indices]
        weights = optimizer.weights
        logits = network.forward(images, weights, training=True)
        loss, dlogits = softmax_cross_entropy(logits, labels)
        if not math.isfinite(loss):
            raise InputError(f"training diverged at iteration {iteration} (loss {loss}); "
                             "lower the learning rate")
        grads = network.backward(dlogits, weights)
        if iteration in recorder.iterations:
            recorder.record(iteration, weights, network.inputs(), grads["output_grads"])
        accuracy = float((logits.argmax(axis=1) == labels).mean())
        _update_dense_parameters(network, grads, config)
        tracked = optimizer.step(grads["weights"], iteration)
        row = {"iteration": iteration, "loss": loss, "accuracy": accuracy, "tracked": tracked,
               "threshold": optimizer.threshold, "scale": optimizer.scale(iteration)}
        result.history.append(row)
        logger.info("iteration %d: loss %.4f, batch accuracy %.3f, tracked %d of k=%d, "
                    "threshold %.4g, initial-weight scale %.4g", iteration, loss, accuracy,
                    tracked, optimizer.k, row["threshold"], row["scale"])
    elapsed = time.perf_counter() - started
    result.iterations_per_second = config.iterations / elapsed if elapsed > 0 else float("inf")

    result.test_accuracy = evaluate(network, optimizer.weights, dataset)
    drift = result.tracked_drift()
    logger.info("finished %d iterations in %.1f s (%.3f iterations/s); held-out accuracy "
                "%.4f; tracked count minus k: mean %+.2f%%, min %+.2f%%, max %+.2f%% of k",
                config.iterations, elapsed, result.iterations_per_second, result.test_accuracy,
                100 * drift["mean"], 100 * drift["min"], 100 * drift["max"])

    if out is not None:
        info = {
            "generator": GENERATOR_NAME,
            "algorithm": "dropback" if config.selection != "dense" else "dense SGD",
            "settings": {key: (list(value) if isinstance(value, tuple) else value)
                         for key, value in asdict(config).items()},
            "seed": config.seed,
            "dataset": dataset.name,
            "k": optimizer.k,
            "total_weights": optimizer.total,
            "decay_zero_from": DecaySchedule(config.decay, config.decay_epsilon).zero_from,
            "held_out_accuracy": round(result.test_accuracy, 6),
            "tracked_drift_of_k": {key: round(value, 6) for key, value in drift.items()},
            "final_threshold": optimizer.threshold,
        }
        info.update(provenance or {})
        result.trace_path = recorder.write(Path(out), config.batch, _finite(info))
    return result


def _finite(value):
    """Replace non-finite floats, which JSON cannot hold, with None, at any depth.

    Dense training has no threshold and no budget drift, so those entries
    can come out infinite or NaN.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def evaluate(network: Network, weights: Sequence[np.ndarray], dataset: Dataset) -> float:
    """Held-out accuracy with batch norm in inference mode."""
    correct = 0
    for start in range(0, len(dataset.test_labels), EVAL_BATCH):
        images = dataset.test_images[start:start + EVAL_BATCH]
        logits = network.forward(images, list(weights), training=False)
        correct += int((logits.argmax(axis=1) == dataset.test_labels[start:start + EVAL_BATCH])
                       .sum())
    return correct / len(dataset.test_labels)


def _batch_indices(count: int, batch: int, seed: int):
    """Yield batches of a fresh seeded permutation per epoch; the remainder is dropped."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    while True:
        order = rng.permutation(count)
        for start in range(0, count - batch + 1, batch):
            yield order[start:start + batch]


def _update_dense_parameters(network: Network, grads: dict[str, list],
                             config: TrainConfig) -> None:
    """Plain SGD (no momentum) on the batch-norm scales and shifts and the biases."""
    for name in ("gamma", "beta", "bias"):
        values = getattr(network, name)
        for index, grad in enumerate(grads[name]):
            if grad is not None:
                values[index] = (values[index] - config.learning_rate * grad).astype(np.float32)


class _DropbackOptimizer:
    """SGD with momentum on the accumulated gradients, then selection and decay."""

    def __init__(self, initial: list[np.ndarray], config: TrainConfig) -> None:
        self.initial = initial
        self.config = config
        self.total = sum(array.size for array in initial)
        self.k = max(1, round(config.density * self.total))
        self.accumulated = [np.zeros_like(array) for array in initial]
        self.velocity = [np.zeros_like(array) for array in initial]
        self.schedule = DecaySchedule(config.decay if config.selection != "dense" else 1.0,
                                      config.decay_epsilon)
        self.selector: QuantileSelector | TopKSelector | None
        if config.selection == "quantile":
            self.selector = QuantileSelector(self.k, self.total, config.quantile_lambda,
                                             config.initial_threshold)
        elif config.selection == "topk":
            self.selector = TopKSelector(self.k, self.total)
        else:
            self.selector = None
            self.k = self.total
        self.weights = self._compose(0)

    def scale(self, iteration: int) -> float:
        return self.schedule.scale(iteration)

    @property
    def threshold(self) -> float:
        return float("nan") if self.selector is None else self.selector.threshold

    def step(self, weight_grads: list[np.ndarray], iteration: int) -> int:
        """Apply one update, select the tracked weights and return their count."""
        rate, momentum = self.config.learning_rate, self.config.momentum
        for velocity, accumulated, grad in zip(self.velocity, self.accumulated, weight_grads):
            velocity *= momentum
            velocity += grad
            accumulated -= rate * velocity
        if self.selector is None:
            tracked = self.total
        else:
            masks = self.selector.select(self.accumulated)
            tracked = 0
            for accumulated, mask in zip(self.accumulated, masks):
                accumulated[~mask] = 0.0
                tracked += int(np.count_nonzero(mask))
        self.weights = self._compose(iteration + 1)
        return tracked

    def _compose(self, iteration: int) -> list[np.ndarray]:
        scale = np.float32(self.schedule.scale(iteration))
        if scale == 0:
            return [accumulated.copy() for accumulated in self.accumulated]
        return [scale * initial + accumulated
                for initial, accumulated in zip(self.initial, self.accumulated)]


class _Recorder:
    """Packed masks of the recorded iterations, written as one trace at the end."""

    def __init__(self, workload: Workload, iterations: set[int]) -> None:
        self.workload = workload
        self.iterations = iterations
        self._packed: dict[int, list[tuple[tuple, np.ndarray, ...]]] = {}

    def record(self, iteration: int, weights: list[np.ndarray], inputs: list[np.ndarray],
               output_grads: list[np.ndarray]) -> None:
        layers = []
        for weight, layer_input, output_grad in zip(weights, inputs, output_grads):
            arrays = (weight != 0, _nchw(layer_input) != 0, _nchw(output_grad) != 0)
            layers.append(tuple((array.shape, np.packbits(array.reshape(-1)))
                                for array in arrays))
        self._packed[iteration] = layers

    def write(self, path: Path, batch: int, provenance: dict[str, Any]) -> Path:
        with TraceWriter(path, self.workload, batch, synthetic=False,
                         provenance=provenance) as writer:
            for iteration in sorted(self._packed):
                for layer, packed in zip(self.workload.layers, self._packed[iteration]):
                    arrays = [np.unpackbits(bits, count=math.prod(shape)).view(np.bool_)
                              .reshape(shape) for shape, bits in packed]
                    writer.add(iteration, layer.name, LayerMasks(*arrays))
        return path


def _nchw(array: np.ndarray) -> np.ndarray:
    """NHWC activations, or (N, 1, 1, C) fc values, in the trace's NCHW order."""
    return array.transpose(0, 3, 1, 2)

