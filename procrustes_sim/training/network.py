"""A sequential convolutional network in numpy, built from a topology CSV.

Each row of the topology becomes one convolution or fully connected layer,
followed by batch normalization where the row has ``batchnorm=1``, then
ReLU (except after the last layer). The structure between two rows is
inferred from their shapes:

* the next row's H, W equal this row's P, Q: no pooling;
* the next row's H, W are half of P, Q: a 2 x 2 max-pool with stride 2;
* the next row is fully connected and C equals K * P * Q: flatten;
* the next row is fully connected, C equals K and P = Q = 2: a 2 x 2
  max-pool, then flatten.

Anything else (residual networks, grouped convolutions, a channel count
that does not chain) raises InputError, because a plain chain cannot
express it. The last layer's K is the number of classes and feeds a softmax
cross-entropy loss.

Activations are float32 in NHWC order inside the network, so that the
im2col matrix of a convolution is a reshape of a sliding-window view and
batch-norm reductions run over contiguous memory. Masks leave the network
in the trace's NCHW order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from procrustes_sim.errors import InputError
from procrustes_sim.workload import Layer, Workload

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class Stage:
    """One layer of the chain and the operations that follow it."""

    layer: Layer
    flatten_before: bool
    batchnorm: bool
    relu: bool
    pool_after: bool


def plan_network(workload: Workload) -> list[Stage]:
    """Infer pooling and flattening between the workload's layers; raise InputError if not a chain."""
    layers = workload.layers
    stages = []
    flatten_next = False
    for index, layer in enumerate(layers):
        where = f"workload {workload.name!r} layer {layer.name!r}"
        if layer.groups != 1:
            raise InputError(f"{where} has groups={layer.groups}; the trainer supports only "
                             "groups=1, so train a plain convolutional chain such as vgg_s")
        if index == 0 and layer.kind == "fc":
            flatten_next = True
        pool = False
        if index + 1 < len(layers):
            following = layers[index + 1]
            pool, flatten_after = _link(layer, following, where)
        else:
            flatten_after = False
        stages.append(Stage(layer=layer, flatten_before=flatten_next,
                            batchnorm=layer.batchnorm, relu=index + 1 < len(layers),
                            pool_after=pool))
        flatten_next = flatten_after
    return stages


def _link(layer: Layer, following: Layer, where: str) -> tuple[bool, bool]:
    """Return (pool, flatten) between *layer* and *following*."""
    P, Q, K = layer.P, layer.Q, layer.K
    if layer.kind == "fc":
        if following.kind != "fc" or following.C != K:
            raise InputError(f"{where}: fc output of {K} values does not feed layer "
                             f"{following.name!r} (C={following.C}, type {following.kind}); "
                             "the trainer supports a plain chain of layers")
        return False, False
    if following.kind == "fc":
        if following.C == K * P * Q:
            return False, True
        if following.C == K and (P, Q) == (2, 2):
            return True, True
        raise InputError(f"{where}: output {K}x{P}x{Q} cannot be flattened into the "
                         f"{following.C} inputs of fc layer {following.name!r}; the trainer "
                         "supports flatten, or a 2x2 max-pool then flatten")
    if following.C != K:
        raise InputError(f"{where}: output has {K} channels but the next layer "
                         f"{following.name!r} has C={following.C}; the trainer supports "
                         "only a plain chain (no residual or concatenated branches)")
    if (following.H, following.W) == (P, Q):
        return False, False
    if (following.H, following.W) == (P // 2, Q // 2) and P % 2 == 0 and Q % 2 == 0:
        return True, False
    raise InputError(f"{where}: output {P}x{Q} does not match the next layer "
                     f"{following.name!r} input {following.H}x{following.W}; the trainer "
                     "supports the same size or a 2x2 max-pool (half the size)")


def init_weights(stages: list[Stage], rng: np.random.Generator) -> list[np.ndarray]:
    """Draw He-normal weights (K, C, R, S) in float32: std sqrt(2 / (C * R * S))."""
    weights = []
    for stage in stages:
        shape = stage.layer.weight_shape
        fan_in = shape[1] * shape[2] * shape[3]
        weights.append((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
    return weights


class Network:
    """Forward and backward passes of a chain of stages with batch-norm state.

    Weights are passed in on every call, so the Dropback optimizer owns them.
    Batch-norm scale and shift (``gamma``, ``beta``) and the biases are
    dense parameters trained by the caller with the gradients returned by
    :meth:`backward`.
    """

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages
        self.gamma = [np.ones(s.layer.K, np.float32) if s.batchnorm else None for s in stages]
        self.beta = [np.zeros(s.layer.K, np.float32) if s.batchnorm else None for s in stages]
        self.bias = [np.zeros(s.layer.K, np.float32) if s.layer.bias else None for s in stages]
        self.running_mean = [np.zeros(s.layer.K, np.float32) if s.batchnorm else None
                             for s in stages]
        self.running_var = [np.ones(s.layer.K, np.float32) if s.batchnorm else None
                            for s in stages]
        self._caches: list[dict] = []

    def forward(self, images: np.ndarray, weights: list[np.ndarray],
                training: bool) -> np.ndarray:
        """Return the logits (N, classes) of NHWC float32 *images*.

        In training mode the caches for :meth:`backward` are kept and batch
        norm uses batch statistics and updates its running averages.
        """
        x = images
        self._caches = []
        for index, stage in enumerate(self.stages):
            cache: dict = {}
            if stage.flatten_before:
                # NHWC to NCHW before flattening, so fc inputs follow PyTorch's order.
                x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], 1, 1, -1)
            cache["input"] = x
            z = _conv_forward(x, weights[index], stage.layer, cache)
            if self.bias[index] is not None:
                z = z + self.bias[index]
            if stage.batchnorm:
                z = self._batchnorm_forward(index, z, training, cache)
            if stage.relu:
                z = np.maximum(z, 0.0)
                cache["relu_out"] = z
            if stage.pool_after:
                z = _maxpool_forward(z, cache)
            x = z
            if training:
                self._caches.append(cache)
        return x.reshape(x.shape[0], -1)

    def backward(self, dlogits: np.ndarray, weights: list[np.ndarray]) -> dict[str, list]:
        """Back-propagate *dlogits* through the last training forward pass.

        Returns the lists ``weights`` (dW, K C R S), ``gamma``, ``beta``,
        ``bias`` and ``output_grads`` (dY of each layer before its batch
        norm, NHWC), indexed by stage.
        """
        count = len(self.stages)
        grads: dict[str, list] = {key: [None] * count
                                  for key in ("weights", "gamma", "beta", "bias", "output_grads")}
        dx = dlogits.reshape(dlogits.shape[0], 1, 1, -1)
        for index in reversed(range(count)):
            stage = self.stages[index]
            cache = self._caches[index]
            if stage.pool_after:
                dx = _maxpool_backward(dx, cache)
            if stage.relu:
                dx = dx * (cache["relu_out"] > 0)
            if stage.batchnorm:
                dx, grads["gamma"][index], grads["beta"][index] = \
                    self._batchnorm_backward(index, dx, cache)
            if self.bias[index] is not None:
                grads["bias"][index] = dx.sum(axis=(0, 1, 2))
            grads["output_grads"][index] = dx
            need_input_grad = index > 0
            dx, grads["weights"][index] = _conv_backward(dx, weights[index], stage.layer,
                                                         cache, need_input_grad)
            if stage.flatten_before and dx is not None:
                previous = self._caches[index - 1]
                shape = _pooled_shape(previous)
                dx = dx.reshape(shape[0], shape[3], shape[1], shape[2]).transpose(0, 2, 3, 1)
        return grads

    def inputs(self) -> list[np.ndarray]:
        """Input activations (NHWC) of each layer in the last training pass."""
        return [cache["input"] for cache in self._caches]

    def _batchnorm_forward(self, index: int, z: np.ndarray, training: bool,
                           cache: dict) -> np.ndarray:
        gamma, beta = self.gamma[index], self.beta[index]
        if training:
            mean = z.mean(axis=(0, 1, 2))
            var = z.var(axis=(0, 1, 2))
            count = z.shape[0] * z.shape[1] * z.shape[2]
            unbiased = var * (count / max(count - 1, 1))
            self.running_mean[index] = ((1 - BN_MOMENTUM) * self.running_mean[index]
                                        + BN_MOMENTUM * mean).astype(np.float32)
            self.running_var[index] = ((1 - BN_MOMENTUM) * self.running_var[index]
                                       + BN_MOMENTUM * unbiased).astype(np.float32)
        else:
            mean, var = self.running_mean[index], self.running_var[index]
        inv_std = (1.0 / np.sqrt(var + BN_EPSILON)).astype(z.dtype)
        normalized = (z - mean) * inv_std
        cache["normalized"] = normalized
        cache["inv_std"] = inv_std
        return normalized * gamma + beta

    def _batchnorm_backward(self, index: int, dy: np.ndarray,
                            cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        normalized, inv_std = cache["normalized"], cache["inv_std"]
        dgamma = (dy * normalized).sum(axis=(0, 1, 2))
        dbeta = dy.sum(axis=(0, 1, 2))
        count = dy.shape[0] * dy.shape[1] * dy.shape[2]
        dnormalized = dy * self.gamma[index]
        dz = (inv_std / count) * (count * dnormalized - dnormalized.sum(axis=(0, 1, 2))
                                  - normalized * (dnormalized * normalized).sum(axis=(0, 1, 2)))
        return dz.astype(dy.dtype), dgamma, dbeta


def _pooled_shape(cache: dict) -> tuple[int, ...]:
    return cache["pool_out_shape"] if "pool_out_shape" in cache else cache["relu_out"].shape


def _conv_forward(x: np.ndarray, weight: np.ndarray, layer: Layer, cache: dict) -> np.ndarray:
    """Convolve NHWC *x* with (K, C, R, S) *weight* through im2col and one matmul."""
    N = x.shape[0]
    K, C, R, S = weight.shape
    P, Q = layer.P, layer.Q
    if (R, S) == (1, 1) and layer.padding == 0 and layer.stride == 1:
        columns = x.reshape(N * P * Q, C)
        matrix = weight.reshape(K, C)
    else:
        pad = layer.padding
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
        # windows has shape (N, P', Q', C, R, S); columns are ordered (R, S, C).
        windows = sliding_window_view(padded, (R, S), axis=(1, 2))
        step = layer.stride
        windows = windows[:, :P * step:step, :Q * step:step]
        columns = windows.transpose(0, 1, 2, 4, 5, 3).reshape(N * P * Q, R * S * C)
        matrix = weight.transpose(0, 2, 3, 1).reshape(K, R * S * C)
    cache["columns"] = columns
    cache["input_shape"] = x.shape
    return (columns @ matrix.T).reshape(N, P, Q, K)


def _conv_backward(dy: np.ndarray, weight: np.ndarray, layer: Layer, cache: dict,
                   need_input_grad: bool) -> tuple[np.ndarray | None, np.ndarray]:
    """Return (dX in NHWC or None, dW in K C R S) of one convolution."""
    K, C, R, S = weight.shape
    N, H, W, _ = cache["input_shape"]
    P, Q = layer.P, layer.Q
    dy_matrix = dy.reshape(N * P * Q, K)
    columns = cache["columns"]
    dweight_matrix = dy_matrix.T @ columns
    simple = (R, S) == (1, 1) and layer.padding == 0 and layer.stride == 1
    if simple:
        dweight = dweight_matrix.reshape(K, C, 1, 1)
        matrix = weight.reshape(K, C)
    else:
        dweight = dweight_matrix.reshape(K, R, S, C).transpose(0, 3, 1, 2)
        matrix = weight.transpose(0, 2, 3, 1).reshape(K, R * S * C)
    dweight = np.ascontiguousarray(dweight)
    if not need_input_grad:
        return None, dweight
    dcolumns = dy_matrix @ matrix
    if simple:
        return dcolumns.reshape(N, H, W, C), dweight
    pad, step = layer.padding, layer.stride
    dcolumns = dcolumns.reshape(N, P, Q, R, S, C)
    dpadded = np.zeros((N, H + 2 * pad, W + 2 * pad, C), dcolumns.dtype)
    for r in range(R):
        for s in range(S):
            dpadded[:, r:r + P * step:step, s:s + Q * step:step, :] += dcolumns[:, :, :, r, s, :]
    return dpadded[:, pad:pad + H, pad:pad + W, :], dweight


def _maxpool_forward(x: np.ndarray, cache: dict) -> np.ndarray:
    """2 x 2 max-pool with stride 2 on NHWC; the first maximum of a window wins."""
    N, H, W, C = x.shape
    windows = x.reshape(N, H // 2, 2, W // 2, 2, C).transpose(0, 1, 3, 5, 2, 4)
    windows = windows.reshape(N, H // 2, W // 2, C, 4)
    argmax = windows.argmax(axis=-1)
    cache["pool_argmax"] = argmax
    cache["pool_in_shape"] = x.shape
    out = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    cache["pool_out_shape"] = out.shape
    return out


def _maxpool_backward(dy: np.ndarray, cache: dict) -> np.ndarray:
    N, H, W, C = cache["pool_in_shape"]
    dy = dy.reshape(N, H // 2, W // 2, C)
    argmax = cache["pool_argmax"]
    dwindows = np.zeros((N, H // 2, W // 2, C, 4), dy.dtype)
    np.put_along_axis(dwindows, argmax[..., None], dy[..., None], axis=-1)
    dwindows = dwindows.reshape(N, H // 2, W // 2, C, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return dwindows.reshape(N, H, W, C)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the mean loss and its gradient with respect to *logits*."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probabilities = exp / exp.sum(axis=1, keepdims=True)
    count = logits.shape[0]
    loss = float(-np.log(probabilities[np.arange(count), labels] + 1e-12).mean())
    grad = probabilities
    grad[np.arange(count), labels] -= 1.0
    return loss, (grad / count).astype(np.float32)
