"""Import weight masks saved by other tools into a trace.

Two sources are read:

* :func:`import_timeloop_masks`: the mask files of the Procrustes authors'
  Timeloop model. A directory holds one boolean ``.npy`` per layer, named
  ``<model>_<layer>.npy``, with axes (R, S, C, K) for a convolution and
  (C, K) for a fully connected layer, optionally after a leading axis of
  samples (one per training iteration).
* :func:`import_weight_arrays`: masks or weights saved from PyTorch as
  ``.npy`` files or ``.npz`` archives, one array per layer in (K, C, R, S)
  order, or (K, C) for a fully connected layer, where a zero marks a pruned
  weight. :func:`map_arrays_to_layers` documents how array names map to
  layers.

Neither source holds activation or gradient masks, so every X and dY mask
of an imported trace is dense (all ones). The provenance and the report
label say so, and a simulation of such a trace skips no zeros of X or dY.

Files are read with ``allow_pickle=False``: an object array, which numpy
can store only as a pickle, is rejected instead of executed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from procrustes_sim.errors import InputError
from procrustes_sim.trace import LayerMasks, TraceWriter
from procrustes_sim.workload import Layer, Workload

logger = logging.getLogger(__name__)

DENSE_NOTE = "X and dY are dense (all ones): the imported files hold weight masks only"


def import_timeloop_masks(directory: str | os.PathLike[str], workload: Workload, batch: int,
                          out: str | os.PathLike[str], model: str | None = None,
                          iterations: list[int] | None = None) -> Path:
    """Convert a directory of ``<model>_<layer>.npy`` mask files into a trace at *out*.

    *model* is the file-name prefix; when omitted it is inferred from the
    file of the first layer. Arrays with a leading samples axis give one
    trace iteration per sample, numbered 0, 1, ... unless *iterations*
    gives the numbers. Raises InputError for a missing directory or file, a
    rejected pickle, values other than 0 and 1, or a shape that does not
    match the layer.
    """
    folder = _check_directory(directory)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise InputError(f"directory {str(folder)!r} has no .npy files; give the folder of "
                         "<model>_<layer>.npy mask files")
    if model is None:
        model = _infer_model(files, workload)

    masks: dict[str, np.ndarray] = {}
    used = set()
    for layer in workload.layers:
        path = folder / f"{model}_{layer.name}.npy"
        if not path.is_file():
            raise InputError(f"layer {layer.name!r}: mask file {str(path)!r} not found; every "
                             f"layer of {workload.name!r} needs a {model}_<layer>.npy file")
        used.add(path)
        array = _as_binary(_load_npy(path), str(path))
        masks[layer.name] = _timeloop_to_kcrs(array, layer, str(path))
    ignored = [path.name for path in files if path not in used]
    if ignored:
        logger.warning("ignored %d file(s) that match no layer of %s: %s", len(ignored),
                       workload.name, ", ".join(ignored[:10]))

    samples = {array.shape[0] for array in masks.values()}
    if len(samples) != 1:
        counts = ", ".join(f"{name}: {array.shape[0]}" for name, array in masks.items())
        raise InputError(f"the mask files of {str(folder)!r} hold different numbers of "
                         f"samples ({counts}); every layer needs the same number")
    count = samples.pop()
    numbers = _iteration_numbers(iterations, count)
    provenance = {
        "generator": "import of Procrustes Timeloop-model masks (X, dY dense)",
        "source_format": "procrustes-timeloop-npy",
        "source": str(folder),
        "model": model,
        "note": DENSE_NOTE,
        "loaded_with": "numpy.load(allow_pickle=False)",
    }
    snapshots = [{name: array[index] for name, array in masks.items()}
                 for index in range(count)]
    return _write_dense_activation_trace(out, workload, batch, numbers, snapshots, provenance)


def import_weight_arrays(source: str | os.PathLike[str], workload: Workload, batch: int,
                         out: str | os.PathLike[str],
                         mapping: str | os.PathLike[str] | Mapping[str, str] | None = None,
                         iteration: int = 0) -> Path:
    """Convert PyTorch-ordered weights or masks (``.npy`` / ``.npz``) into a one-iteration trace.

    *source* is an ``.npz`` file or a directory of ``.npy`` and ``.npz``
    files. A non-zero value marks a kept weight. See
    :func:`map_arrays_to_layers` for *mapping*.
    """
    arrays = _load_named_arrays(Path(source))
    assignment = map_arrays_to_layers(list(arrays), workload, mapping,
                                      {name: array.ndim for name, array in arrays.items()})
    masks = {}
    for layer in workload.layers:
        name = assignment[layer.name]
        array = arrays[name]
        where = f"array {name!r} of {str(source)!r}"
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            bad = array[~np.isfinite(array)][0]
            raise InputError(f"{where} contains {bad}; weights must be finite, so replace "
                             "NaN and infinity before importing")
        if not (array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number)):
            raise InputError(f"{where} has dtype {array.dtype}; save numbers or booleans")
        kept = array != 0
        expected = layer.weight_shape
        if kept.ndim == 2 and expected[2:] == (1, 1):
            kept = kept.reshape(kept.shape + (1, 1))
        if kept.shape != expected:
            raise InputError(f"layer {layer.name!r}: {where} has shape {array.shape}, but the "
                             f"layer needs {expected} (K, C/groups, R, S); check the mapping "
                             "or the workload")
        masks[layer.name] = kept
    provenance = {
        "generator": "import of PyTorch-ordered weights (X, dY dense)",
        "source_format": "pytorch-npy-npz",
        "source": str(source),
        "mapping": {layer: name for layer, name in assignment.items()},
        "note": DENSE_NOTE,
        "loaded_with": "numpy.load(allow_pickle=False)",
    }
    iteration_number = _iteration_numbers([iteration], 1)
    return _write_dense_activation_trace(out, workload, batch, iteration_number, [masks],
                                         provenance)


def map_arrays_to_layers(names: list[str], workload: Workload,
                         mapping: str | os.PathLike[str] | Mapping[str, str] | None,
                         dimensions: Mapping[str, int]) -> dict[str, str]:
    """Return {layer name: array name}.

    With a *mapping* (a dict, or a JSON or YAML file of ``{array name:
    layer name}``), exactly the listed arrays are used and every layer must
    appear once. Without one, the naming rule applies: the arrays whose name
    is a layer name, or ends in ``.weight`` after a layer name (as
    ``conv1_1.weight``), map to that layer. If no name matches a layer, the
    arrays with 2 or 4 dimensions, in file order, map to the layers in
    workload order (so PyTorch's ``features.0.weight``, ``features.3.weight``,
    ... become the first, second, ... layer); 1-dimensional arrays such as
    biases and batch-norm parameters are skipped.
    """
    layer_names = [layer.name for layer in workload.layers]
    if mapping is not None:
        table = _read_mapping(mapping)
        assignment: dict[str, str] = {}
        for array_name, layer_name in table.items():
            if array_name not in names:
                raise InputError(f"mapping names array {array_name!r}, which the source does "
                                 f"not have; its arrays are {', '.join(names[:20])}")
            if layer_name not in layer_names:
                raise InputError(f"mapping maps {array_name!r} to layer {layer_name!r}, which "
                                 f"workload {workload.name!r} does not have")
            if layer_name in assignment:
                raise InputError(f"mapping maps both {assignment[layer_name]!r} and "
                                 f"{array_name!r} to layer {layer_name!r}; map one array "
                                 "per layer")
            assignment[layer_name] = array_name
        missing = [name for name in layer_names if name not in assignment]
        if missing:
            raise InputError(f"mapping has no array for layer(s) {', '.join(missing)}; map "
                             "every layer of the workload")
        return assignment

    by_name = {}
    for name in names:
        stem = name[:-len(".weight")] if name.endswith(".weight") else name
        if stem in layer_names:
            by_name[stem] = name
    if by_name:
        missing = [name for name in layer_names if name not in by_name]
        if missing:
            raise InputError(f"no array is named after layer(s) {', '.join(missing)}; name "
                             "arrays <layer> or <layer>.weight, or give a mapping file")
        return by_name

    candidates = [name for name in names if dimensions[name] in (2, 4)]
    if len(candidates) != len(layer_names):
        raise InputError(f"the source has {len(candidates)} weight array(s) with 2 or 4 "
                         f"dimensions ({', '.join(candidates[:20])}), but workload "
                         f"{workload.name!r} has {len(layer_names)} layers; give a mapping "
                         "file of {array name: layer name}")
    return dict(zip(layer_names, candidates))


def _check_directory(directory: str | os.PathLike[str]) -> Path:
    folder = Path(directory)
    if not folder.exists():
        raise InputError(f"directory {str(folder)!r} not found; give the folder of mask files")
    if not folder.is_dir():
        raise InputError(f"{str(folder)!r} is not a directory; give the folder of mask files")
    return folder


def _infer_model(files: list[Path], workload: Workload) -> str:
    first = workload.layers[0].name
    models = sorted({path.stem[:-len(first) - 1] for path in files
                     if path.stem.endswith("_" + first) and len(path.stem) > len(first) + 1})
    if len(models) != 1:
        found = ", ".join(path.name for path in files[:10])
        if not models:
            raise InputError(f"no file is named <model>_{first}.npy for the first layer "
                             f"{first!r} of {workload.name!r} (found {found}); check the "
                             "workload or name the files <model>_<layer>.npy")
        raise InputError(f"files for several models match layer {first!r} "
                         f"({', '.join(models)}); choose one with --model")
    return models[0]


def _load_npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as file:
            magic = file.read(6)
    except OSError as error:
        raise InputError(f"{str(path)!r} cannot be read ({error.strerror}); check the file") from None
    if magic != b"\x93NUMPY":
        # numpy treats any file without this header as a pickle, and its
        # error would then report a pickle that is not there.
        raise InputError(f"{str(path)!r} is not a .npy file (it lacks the NumPy header); "
                         "save the mask with numpy.save")
    try:
        value = np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise InputError(f"{str(path)!r} contains a pickled object array, which is rejected "
                             "(files are loaded with allow_pickle=False); save a plain "
                             "bool or number array with numpy.save") from None
        raise InputError(f"{str(path)!r} is not a valid .npy file ({error}); "
                         "save it with numpy.save") from None
    except (OSError, EOFError) as error:
        raise InputError(f"{str(path)!r} cannot be read as .npy ({error}); "
                         "save it with numpy.save") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{str(path)!r} is not a .npy array file; save one array per "
                         "file with numpy.save")
    return value


def _load_named_arrays(source: Path) -> dict[str, np.ndarray]:
    """Read {array name: array} from an .npz file or a directory of .npy and .npz files."""
    if not source.exists():
        raise InputError(f"source {str(source)!r} not found; give an .npz file or a folder "
                         "of .npy/.npz files")
    if source.is_dir():
        files = sorted((path for path in source.iterdir()
                        if path.suffix in (".npy", ".npz")), key=_natural_key)
        if not files:
            raise InputError(f"directory {str(source)!r} has no .npy or .npz files; save one "
                             "array per layer with numpy.save or numpy.savez")
    else:
        files = [source]
    arrays: dict[str, np.ndarray] = {}
    for path in files:
        if path.suffix == ".npz":
            loaded = _load_npz(path)
        elif path.suffix == ".npy":
            loaded = {path.stem: _load_npy(path)}
        else:
            raise InputError(f"{str(path)!r} is neither .npy nor .npz; save the arrays with "
                             "numpy.save or numpy.savez")
        for name, array in loaded.items():
            if name in arrays:
                raise InputError(f"array name {name!r} occurs twice in {str(source)!r}; "
                                 "give each array a unique name")
            arrays[name] = array
    if not arrays:
        raise InputError(f"{str(source)!r} holds no arrays; save one array per layer")
    return arrays


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{str(path)!r} is not a valid .npz file ({error}); save it with "
                         "numpy.savez") from None
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except ValueError as error:
                if "allow_pickle" in str(error):
                    raise InputError(f"array {name!r} of {str(path)!r} is a pickled object "
                                     "array, which is rejected (files are loaded with "
                                     "allow_pickle=False); save plain bool or number "
                                     "arrays") from None
                raise InputError(f"array {name!r} of {str(path)!r} cannot be read "
                                 f"({error})") from None
    return arrays


def _natural_key(path: Path) -> list[Any]:
    # "layer10" sorts after "layer9".
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_mapping(mapping: str | os.PathLike[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(mapping, Mapping):
        table = dict(mapping)
        where = "mapping"
    else:
        path = Path(mapping)
        where = f"mapping file {str(path)!r}"
        if not path.is_file():
            raise InputError(f"{where} not found; give a JSON or YAML file of "
                             "{array name: layer name}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix == ".json":
                table = json.loads(text)
            else:
                import yaml

                table = yaml.safe_load(text)
        except (ValueError, ImportError) as error:
            raise InputError(f"{where} cannot be parsed ({error}); write a JSON or YAML "
                             "object of {array name: layer name}") from None
        except Exception as error:  # yaml.YAMLError does not derive from ValueError.
            raise InputError(f"{where} cannot be parsed ({error}); write a JSON or YAML "
                             "object of {array name: layer name}") from None
    if not isinstance(table, dict) or not all(isinstance(key, str) and isinstance(value, str)
                                              for key, value in table.items()):
        raise InputError(f"{where} must be an object of {{array name: layer name}} strings")
    if not table:
        raise InputError(f"{where} is empty; map every layer to an array")
    return table


def _as_binary(array: np.ndarray, where: str) -> np.ndarray:
    """Return *array* as bool if it holds only 0 and 1; raise InputError naming a bad value."""
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{where} has dtype {array.dtype}; a mask must be bool or 0/1 numbers")
    invalid = ~((array == 0) | (array == 1))
    if invalid.any():
        bad = array[invalid][0]
        raise InputError(f"{where} contains the value {bad}; a mask may contain only 0 and 1 "
                         "(or True and False)")
    return array != 0


def _timeloop_to_kcrs(array: np.ndarray, layer: Layer, where: str) -> np.ndarray:
    """Return (samples, K, C, R, S) from (R, S, C, K) or (C, K), with an optional samples axis."""
    K, C, R, S = layer.weight_shape
    if layer.kind == "fc" or (R, S) == (1, 1):
        bare, axes = (C, K), "(C, K)"
    else:
        bare, axes = (R, S, C, K), "(R, S, C, K)"
    if array.shape == bare:
        array = array[None]
    elif not (array.ndim == len(bare) + 1 and array.shape[1:] == bare and array.shape[0] > 0):
        raise InputError(f"layer {layer.name!r}: {where} has shape {array.shape}, but the "
                         f"layer needs {bare} {axes}, optionally after a samples axis; check "
                         "the workload and the file")
    if len(bare) == 2:
        return np.ascontiguousarray(array.transpose(0, 2, 1)).reshape(-1, K, C, 1, 1)
    return np.ascontiguousarray(array.transpose(0, 4, 3, 1, 2))


def _iteration_numbers(iterations: list[int] | None, count: int) -> list[int]:
    if iterations is None:
        return list(range(count))
    if len(iterations) != count:
        raise InputError(f"{len(iterations)} iteration number(s) given for {count} sample(s); "
                         "give one number per sample")
    if any(isinstance(value, bool) or not isinstance(value, int) or value < 0
           for value in iterations):
        raise InputError(f"iteration numbers {iterations} are invalid; use integers of 0 "
                         "or more")
    if len(set(iterations)) != len(iterations):
        raise InputError(f"iteration numbers {iterations} repeat; give distinct numbers")
    return list(iterations)


def _write_dense_activation_trace(out: str | os.PathLike[str], workload: Workload, batch: int,
                                  iterations: list[int], snapshots: list[dict[str, np.ndarray]],
                                  provenance: dict[str, Any]) -> Path:
    with TraceWriter(Path(out), workload, batch, synthetic=False,
                     provenance=provenance) as writer:
        for iteration, weights in zip(iterations, snapshots):
            for layer in workload.layers:
                inputs = np.ones(layer.input_shape(batch), np.bool_)
                grads = np.ones(layer.output_shape(batch), np.bool_)
                writer.add(iteration, layer.name, LayerMasks(weights[layer.name], inputs, grads))
    logger.info("imported %d iteration(s) of %s into %s; %s", len(iterations), workload.name,
                out, DENSE_NOTE)
    return Path(out)
