"""Record W, X and dY masks from a PyTorch training loop into a trace.

PyTorch is optional (``pip install 'procrustes-sim[torch]'``); this module
imports it only when a :class:`MaskRecorder` is created. Usage::

    recorder = MaskRecorder(model, load_workload("vgg_s"), batch=16,
                            path="mine.pstrace")
    for iteration, (images, labels) in enumerate(loader):
        with recorder.capture(iteration, enabled=iteration % 100 == 0):
            loss = criterion(model(images), labels)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    recorder.close()

Inside :meth:`MaskRecorder.capture`, a forward hook on every recorded
``Conv2d`` and ``Linear`` module stores the masks of its weight and of its
input, and a hook on its output tensor stores the mask of the output
gradient during ``backward()``. The modules map to the workload's layers
in the order ``model.named_modules()`` lists them, unless *modules* names
them explicitly. A ``Linear`` layer's (K, C) weight, (N, C) input and (N, K) gradient are
stored as (K, C, 1, 1), (N, C, 1, 1) and (N, K, 1, 1).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.trace import LayerMasks, TraceWriter
from procrustes_sim.workload import Workload


class MaskRecorder:
    """Collects masks from hooks and writes them through a :class:`TraceWriter`.

    *modules* optionally maps module names (as in ``model.named_modules()``)
    to layer names. The trace is marked ``synthetic=False`` with generator
    ``pytorch-hooks``, and *provenance* adds entries such as the data set.
    The trace appears at *path* only when :meth:`close` succeeds.
    """

    def __init__(self, model: Any, workload: Workload, batch: int,
                 path: str | os.PathLike[str], modules: Mapping[str, str] | None = None,
                 provenance: Mapping[str, Any] | None = None) -> None:
        try:
            import torch
        except ImportError:
            raise InputError("MaskRecorder needs PyTorch; install it with "
                             "`pip install 'procrustes-sim[torch]'`") from None
        self._torch = torch
        self._workload = workload
        self._batch = batch
        self._modules = _map_modules(model, workload, modules, torch)
        info = {"generator": "pytorch-hooks", **dict(provenance or {})}
        self._writer = TraceWriter(Path(path), workload, batch, synthetic=False, provenance=info)
        self._current: dict[str, dict[str, np.ndarray]] = {}

    @contextlib.contextmanager
    def capture(self, iteration: int, enabled: bool = True) -> Iterator[None]:
        """Record the forward and backward pass run inside the block as *iteration*.

        With *enabled* False the block runs without hooks. Raises InputError
        if a recorded layer did not run forward and backward in the block.
        """
        if not enabled:
            yield
            return
        self._current = {layer: {} for layer in self._modules.values()}
        handles = [module.register_forward_hook(self._forward_hook(layer))
                   for module, layer in self._modules.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        for layer_name, tensors in self._current.items():
            missing = [name for name in ("W", "X", "dY") if name not in tensors]
            if missing:
                raise InputError(f"layer {layer_name!r} recorded no {', '.join(missing)} in "
                                 f"iteration {iteration}; run forward and loss.backward() "
                                 "inside capture()")
            self._writer.add(iteration, layer_name,
                             LayerMasks(tensors["W"], tensors["X"], tensors["dY"]))

    def close(self) -> Path:
        """Write the trace and return its path."""
        return self._writer.close()

    def discard(self) -> None:
        """Drop the unfinished trace."""
        self._writer.discard()

    def _forward_hook(self, layer_name: str):
        def hook(module: Any, inputs: tuple, output: Any) -> None:
            store = self._current[layer_name]
            store["W"] = _as_4d(_mask(module.weight))
            store["X"] = _as_4d(_mask(inputs[0]))

            def gradient_hook(grad: Any) -> None:
                store["dY"] = _as_4d(_mask(grad))

            output.register_hook(gradient_hook)
        return hook


def _mask(tensor: Any) -> np.ndarray:
    return (tensor.detach() != 0).cpu().numpy()


def _as_4d(mask: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape + (1, 1)) if mask.ndim == 2 else mask


def _map_modules(model: Any, workload: Workload, modules: Mapping[str, str] | None,
                 torch: Any) -> dict[Any, str]:
    named = dict(model.named_modules())
    layer_names = [layer.name for layer in workload.layers]
    if modules is not None:
        result = {}
        for module_name, layer_name in modules.items():
            if module_name not in named:
                raise InputError(f"model has no module {module_name!r}; names come from "
                                 "model.named_modules()")
            if layer_name not in layer_names:
                raise InputError(f"workload {workload.name!r} has no layer {layer_name!r}")
            result[named[module_name]] = layer_name
        missing = sorted(set(layer_names) - set(result.values()))
        if missing:
            raise InputError(f"modules maps no module to layer(s) {', '.join(missing)}")
        return result
    layers = [module for module in named.values()
              if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]
    if len(layers) != len(layer_names):
        raise InputError(f"model has {len(layers)} Conv2d/Linear modules but workload "
                         f"{workload.name!r} has {len(layer_names)} layers; pass modules="
                         "{module name: layer name}")
    return dict(zip(layers, layer_names))
