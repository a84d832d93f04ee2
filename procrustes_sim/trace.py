"""Sparse-training traces: the ``.pstrace`` file format, its writer and reader.

A trace stores, for some training iterations and for every layer of a
workload, the boolean masks (True = non-zero) of the weights W
(K, C/groups, R, S), the input activations X (N, C, H, W) and the output
gradients dY (N, K, P, Q).

A trace file is a ZIP archive of uncompressed members:

* ``manifest.json`` names the workload, batch size, iterations and layer
  shapes, records whether the masks are synthetic and where they came from,
  and lists every mask member with its shape, non-zero count and SHA-256.
* ``masks/<iteration>/<layer>/<W|X|dY>.bits`` holds one mask as
  :func:`numpy.packbits` of the C-order flattened array, most significant bit
  first. ``<layer>`` is the layer name, UTF-8 encoded and percent-encoded so
  that only ASCII letters, digits, ``-`` and ``_`` remain.

docs/trace-format.md specifies format version 1 in full.

:class:`TraceWriter` writes into a temporary file next to the destination and
renames it into place only after every layer of every iteration is present,
so a partial trace never appears at the destination path.
:meth:`Trace.open` reads only the manifest, and :meth:`Trace.load` reads and
verifies the three masks of one layer. :func:`synthesize` writes a seeded
trace of independent Bernoulli masks.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import numbers
import os
import reprlib
import secrets
import types
import weakref
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from procrustes_sim import __version__
from procrustes_sim.errors import InputError
from procrustes_sim.workload import Layer, Workload

logger = logging.getLogger(__name__)

FORMAT_NAME = "procrustes-sim-trace"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST_NAME = "manifest.json"
SUFFIX = ".pstrace"

# Tensor names in member paths, in the order of the LayerMasks fields.
TENSORS = ("W", "X", "dY")

_SHAPE_KEYS = types.MappingProxyType(
    {"W": "weight_shape", "X": "input_shape", "dY": "output_shape"})
_AXIS_LABELS = types.MappingProxyType(
    {"W": "(K, C/groups, R, S)", "X": "(N, C, H, W)", "dY": "(N, K, P, Q)"})

# Bytes of a UTF-8 layer name that appear unescaped in a member path.
_UNESCAPED_BYTES = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# Every member gets the earliest timestamp a ZIP header can hold, so equal
# contents give equal file bytes.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_UNIX_SYSTEM = 3
_ZIP_FILE_MODE = 0o100644 << 16

# Elements drawn per call to the random generator in synthesize(). It bounds
# the float64 scratch buffer to 8 MiB.
_SYNTHESIS_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class LayerMasks:
    """Masks of one layer in one iteration, where True marks a non-zero value.

    ``eq=False`` because comparing numpy arrays with ``==`` yields arrays,
    not a bool.
    """

    weights: np.ndarray
    inputs: np.ndarray
    output_grads: np.ndarray

    def density(self) -> dict[str, float]:
        """Fraction of non-zeros in each mask, keyed W, X and dY."""
        arrays = (self.weights, self.inputs, self.output_grads)
        return {tensor: _nonzero_fraction(array) for tensor, array in zip(TENSORS, arrays)}


def _nonzero_fraction(values: Any) -> float:
    array = np.asarray(values)
    if array.size == 0:
        return 0.0
    return int(np.count_nonzero(array)) / array.size


def member_path(iteration: int, layer_name: str, tensor: str) -> str:
    """Return the archive path of one mask, e.g. ``masks/0/features%2E0/W.bits``."""
    return f"masks/{iteration}/{_escape_layer_name(layer_name)}/{tensor}.bits"


def _escape_layer_name(name: str) -> str:
    # Escaping "." as well rules out the path components "." and "..".
    return "".join(chr(byte) if byte in _UNESCAPED_BYTES else f"%{byte:02X}"
                   for byte in name.encode("utf-8"))


def _layer_shapes(layer: Layer, batch: int) -> dict[str, tuple[int, ...]]:
    return {"W": layer.weight_shape, "X": layer.input_shape(batch),
            "dY": layer.output_shape(batch)}


def _packed_size(shape: Iterable[int]) -> int:
    return (math.prod(shape) + 7) // 8


def _summarize(values: Iterable[Any], limit: int = 20) -> str:
    items = [str(value) for value in values]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


# Input checks shared by the writer and synthesize().

def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name}={value!r} is invalid; it must be an integer of 1 or more")
    return int(value)


def _check_probability(name: str, value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0.0 <= value <= 1.0):
        raise InputError(f"{name}={value!r} is invalid; it must be a number from 0 to 1")
    return float(value)


def _check_iteration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InputError(f"iteration {value!r} is invalid; it must be an integer of 0 or more")
    return int(value)


def _check_workload_layers(workload: Workload) -> None:
    if not isinstance(workload, Workload):
        raise TypeError(f"expected a Workload, got {type(workload).__name__}")
    if not workload.layers:
        raise InputError(f"workload {workload.name!r} has no layers; a trace needs at least one")
    seen: set[str] = set()
    for layer in workload.layers:
        if not isinstance(layer.name, str) or not layer.name:
            raise InputError(f"workload {workload.name!r} has a layer with the empty name "
                             f"{layer.name!r}; give every layer a name")
        try:
            layer.name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"layer name {layer.name!r} cannot be encoded as UTF-8; "
                             "rename the layer") from None
        if layer.name in seen:
            raise InputError(f"workload {workload.name!r} has two layers named {layer.name!r}; "
                             "give each layer a unique name")
        seen.add(layer.name)


def _normalize_provenance(provenance: Any) -> dict[str, Any]:
    """Return a JSON round-tripped copy of *provenance* with ``created_by`` filled in."""
    if not isinstance(provenance, Mapping):
        raise InputError(f"provenance must be a dict, not {type(provenance).__name__}")
    for key in provenance:
        if not isinstance(key, str):
            raise InputError(f"provenance key {key!r} is not a string; use string keys")
    try:
        text = json.dumps(dict(provenance), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InputError(f"provenance cannot be stored as JSON ({error}); use only strings, "
                         "finite numbers, booleans, None, lists and dicts") from None
    normalized = json.loads(text)
    normalized.setdefault("created_by", f"procrustes-sim {__version__}")
    return normalized


def _as_mask(values: Any, layer_name: str, tensor: str,
             expected_shape: tuple[int, ...]) -> np.ndarray:
    """Return *values* as a C-contiguous bool array, or raise InputError if it is no valid mask."""
    where = f"layer {layer_name!r} tensor {tensor}"
    try:
        array = np.asarray(values)
    except ValueError as error:
        raise InputError(f"{where} is not an array ({error}); pass a numpy bool array") from None

    if array.shape != tuple(expected_shape):
        raise InputError(f"{where} has shape {array.shape}, but the workload expects "
                         f"{tuple(expected_shape)} {_AXIS_LABELS[tensor]}; "
                         "pass a mask of the layer's shape")

    if array.dtype == np.bool_:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.integer):
        invalid = (array != 0) & (array != 1)
        if invalid.any():
            example = array[invalid][0]
            raise InputError(f"{where} contains the value {example}; a mask may contain "
                             "only 0 and 1, so convert values with `values != 0`")
        return np.ascontiguousarray(array, dtype=np.bool_)
    raise InputError(f"{where} has dtype {array.dtype}; a mask must be a bool array "
                     "(True = non-zero) or integers 0 and 1, so convert values "
                     "with `values != 0`")


class TraceWriter:
    """Writer of one trace file, committed atomically by :meth:`close`.

    The constructor creates a hidden temporary file in the directory of
    *path*. :meth:`add` streams the masks of one layer into it. :meth:`close`
    checks that every layer of every added iteration is present, appends the
    manifest and renames the temporary file onto *path* with ``os.replace``,
    so *path* either keeps its old content or receives the complete trace.
    Used as a context manager, the writer closes on success and discards the
    temporary file when the block raises. A writer that is garbage collected
    or still open at interpreter exit also discards its temporary file.

    *provenance* is free JSON data about the source of the masks (generator,
    seed, command). The writer adds ``created_by`` with the procrustes-sim
    version unless the caller gave one.
    """

    def __init__(self, path: str | os.PathLike[str], workload: Workload, batch: int,
                 synthetic: bool, provenance: Mapping[str, Any]) -> None:
        _check_workload_layers(workload)
        if not isinstance(synthetic, bool):
            raise InputError(f"synthetic={synthetic!r} is invalid; it must be True or False")
        self._path = Path(path)
        self._workload = workload
        self._batch = _check_positive_int("batch", batch)
        self._synthetic = synthetic
        self._provenance = _normalize_provenance(provenance)
        self._layer_index = {layer.name: index for index, layer in enumerate(workload.layers)}
        self._shapes = {layer.name: _layer_shapes(layer, self._batch)
                        for layer in workload.layers}
        self._added: dict[int, set[str]] = {}
        self._records: dict[tuple[int, int, int], dict[str, Any]] = {}
        self._state = "open"

        directory = self._path.parent
        if not directory.is_dir():
            raise InputError(f"directory {str(directory)!r} for trace {str(self._path)!r} "
                             "does not exist; create it first")
        if self._path.is_dir():
            raise InputError(f"trace path {str(self._path)!r} is a directory; "
                             "give a file name such as trace.pstrace")
        self._temp_path, self._file = _create_temp_file(directory, self._path.name)
        try:
            self._archive = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_STORED,
                                            allowZip64=True)
        except BaseException:
            self._file.close()
            self._temp_path.unlink(missing_ok=True)
            raise
        self._finalizer = weakref.finalize(self, _discard_temp_file, self._archive,
                                           self._file, self._temp_path)
        logger.debug("writing trace %s through %s", self._path, self._temp_path)

    @property
    def path(self) -> Path:
        """Destination path of the trace."""
        return self._path

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        # A block that called discard() itself ends without writing anything.
        if exc_type is None and self._state == "open":
            self.close()
        else:
            self.discard()

    def add(self, iteration: int, layer_name: str, masks: LayerMasks) -> None:
        """Validate the masks of one layer in one iteration and append them.

        Each mask must have the layer's shape and be a bool array or an
        integer array of 0 and 1. A rejected mask raises InputError before
        anything is written, and the writer stays usable. An OSError while
        writing discards the temporary file and closes the writer.
        """
        self._require_open()
        iteration = _check_iteration(iteration)
        if layer_name not in self._layer_index:
            raise InputError(f"workload {self._workload.name!r} has no layer {layer_name!r}; "
                             f"its layers are {_summarize(self._layer_index)}")
        if layer_name in self._added.get(iteration, ()):
            raise InputError(f"layer {layer_name!r} of iteration {iteration} was already "
                             "added; add each layer once per iteration")
        if not isinstance(masks, LayerMasks):
            raise TypeError(f"expected LayerMasks, got {type(masks).__name__}")

        shapes = self._shapes[layer_name]
        given = (masks.weights, masks.inputs, masks.output_grads)
        arrays = [_as_mask(values, layer_name, tensor, shapes[tensor])
                  for tensor, values in zip(TENSORS, given)]

        layer_index = self._layer_index[layer_name]
        try:
            for tensor_index, (tensor, array) in enumerate(zip(TENSORS, arrays)):
                path = member_path(iteration, layer_name, tensor)
                packed = np.packbits(array.reshape(-1))
                self._write_member(path, packed)
                self._records[(iteration, layer_index, tensor_index)] = {
                    "path": path,
                    "shape": list(array.shape),
                    "nnz": int(np.count_nonzero(array)),
                    "sha256": hashlib.sha256(packed).hexdigest(),
                }
        except BaseException:
            self.discard()
            raise
        self._added.setdefault(iteration, set()).add(layer_name)

    def close(self) -> Path:
        """Write the manifest, move the trace onto its path and return that path.

        Raises InputError, and discards the temporary file, if no iteration
        was added or an added iteration lacks a layer. Calling close again
        after success returns the path.
        """
        if self._state == "closed":
            return self._path
        self._require_open()
        try:
            self._check_complete()
            manifest_bytes = _encode_manifest(self._manifest())
            self._write_member(MANIFEST_NAME, manifest_bytes)
            self._archive.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temp_path, self._path)
        except BaseException:
            self.discard()
            raise
        self._finalizer.detach()
        self._state = "closed"
        _sync_directory(self._path.parent)
        logger.info("wrote trace %s: %d iteration(s) of %d layer(s)", self._path,
                    len(self._added), len(self._layer_index))
        return self._path

    def discard(self) -> None:
        """Delete the temporary file and close the writer without touching *path*."""
        if self._state != "open":
            return
        self._state = "discarded"
        self._finalizer()
        logger.debug("discarded unfinished trace %s", self._path)

    def _require_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"the writer of {str(self._path)!r} is {self._state}")

    def _write_member(self, name: str, data: bytes | np.ndarray) -> None:
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_STORED
        info.create_system = _ZIP_UNIX_SYSTEM
        info.external_attr = _ZIP_FILE_MODE
        self._archive.writestr(info, memoryview(data))

    def _check_complete(self) -> None:
        if not self._added:
            raise InputError(f"no masks were added to trace {str(self._path)!r}; "
                             "add every layer of at least one iteration before close()")
        incomplete = []
        for iteration in sorted(self._added):
            missing = [name for name in self._layer_index if name not in self._added[iteration]]
            if missing:
                incomplete.append(f"iteration {iteration} is missing {_summarize(missing, 5)}")
        if incomplete:
            raise InputError(f"trace {str(self._path)!r} is incomplete: "
                             f"{'; '.join(incomplete[:5])}"
                             f"{'; ...' if len(incomplete) > 5 else ''}. "
                             "Add every layer of every iteration before close()")

    def _manifest(self) -> dict[str, Any]:
        layers = []
        for layer in self._workload.layers:
            shapes = self._shapes[layer.name]
            entry: dict[str, Any] = {"name": layer.name}
            for tensor in TENSORS:
                entry[_SHAPE_KEYS[tensor]] = list(shapes[tensor])
            layers.append(entry)
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "workload": self._workload.name,
            "layers": layers,
            "batch": self._batch,
            "iterations": sorted(self._added),
            "synthetic": self._synthetic,
            "provenance": self._provenance,
            "arrays": [self._records[key] for key in sorted(self._records)],
        }


def _create_temp_file(directory: Path, name: str) -> tuple[Path, Any]:
    """Create a new hidden file next to the destination.

    ``os.open`` with mode 0o666 lets the umask set the permissions that the
    finished trace keeps, which ``tempfile.mkstemp`` (always 0o600) would not.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp_path = directory / f".{name}.{secrets.token_hex(8)}.tmp"
        try:
            descriptor = os.open(temp_path, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise InputError(f"cannot create a file in {str(directory)!r} "
                             f"({error.strerror}); choose a writable directory") from None
        return temp_path, os.fdopen(descriptor, "w+b")


def _discard_temp_file(archive: zipfile.ZipFile, file: Any, temp_path: Path) -> None:
    # Closing the archive first stops its own finalizer from writing to a
    # closed file later. Its errors do not matter because the file is deleted.
    try:
        archive.close()
    except (OSError, ValueError):
        pass
    file.close()
    temp_path.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    # Makes the rename survive a power loss on POSIX. Windows cannot open a
    # directory, so the OSError there is expected.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _encode_manifest(manifest: dict[str, Any]) -> bytes:
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")


class Trace:
    """A trace file opened for reading.

    :meth:`open` reads and validates only the manifest. :meth:`load` reads the
    three members of one layer and keeps the archive open for the next call.
    :meth:`close` releases the archive, and a later :meth:`load` opens it
    again. A
    pickled Trace carries the manifest but no open file.
    """

    def __init__(self, path: Path, manifest: dict[str, Any],
                 archive: zipfile.ZipFile | None = None) -> None:
        self._path = path
        self._manifest = manifest
        self._archive = archive
        self._layers = {entry["name"]: entry for entry in manifest["layers"]}
        self._records = {record["path"]: record for record in manifest["arrays"]}
        self._iterations = tuple(manifest["iterations"])

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Trace:
        """Open a trace and validate its manifest. Raises InputError for a bad file."""
        path = Path(path)
        archive = _open_archive(path)
        try:
            manifest = _read_manifest(archive, path)
        except BaseException:
            archive.close()
            raise
        logger.debug("opened trace %s", path)
        return cls(path, manifest, archive)

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Trace({str(self._path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_archive"] = None
        return state

    def close(self) -> None:
        """Release the open archive, if any."""
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    @property
    def path(self) -> Path:
        """Path of the trace file."""
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        """Copy of the parsed manifest."""
        return copy.deepcopy(self._manifest)

    @property
    def workload_name(self) -> str:
        """Name of the workload that the masks belong to."""
        return self._manifest["workload"]

    @property
    def batch(self) -> int:
        """Batch size N of the X and dY masks."""
        return self._manifest["batch"]

    @property
    def iterations(self) -> tuple[int, ...]:
        """Training iterations in the trace, ascending."""
        return self._iterations

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Layer names in workload order."""
        return tuple(self._layers)

    @property
    def synthetic(self) -> bool:
        """Whether a generator made the masks instead of a training run."""
        return self._manifest["synthetic"]

    @property
    def provenance(self) -> dict[str, Any]:
        """Copy of the free-form record of where the masks came from."""
        return copy.deepcopy(self._manifest["provenance"])

    def check_workload(self, workload: Workload) -> None:
        """Raise InputError unless *workload* has this trace's name, layers and shapes."""
        where = f"trace {str(self._path)!r}"
        if workload.name != self.workload_name:
            raise InputError(f"{where} was recorded for workload {self.workload_name!r}, "
                             f"not {workload.name!r}; use a trace of {workload.name!r}")
        workload_names = [layer.name for layer in workload.layers]
        for name in workload_names:
            if name not in self._layers:
                raise InputError(f"{where} has no layer {name!r} of workload "
                                 f"{workload.name!r}; its layers are "
                                 f"{_summarize(self._layers)}, so regenerate the trace")
        for name in self._layers:
            if name not in workload_names:
                raise InputError(f"{where} has layer {name!r}, which workload "
                                 f"{workload.name!r} does not have; regenerate the trace")
        for layer in workload.layers:
            expected = _layer_shapes(layer, self.batch)
            recorded = self._recorded_shapes(layer.name)
            for tensor in TENSORS:
                if recorded[tensor] != expected[tensor]:
                    raise InputError(
                        f"layer {layer.name!r}: {where} has {tensor} shape {recorded[tensor]}, "
                        f"but workload {workload.name!r} at batch {self.batch} has "
                        f"{expected[tensor]} {_AXIS_LABELS[tensor]}; regenerate the trace")
        if tuple(workload_names) != self.layer_names:
            raise InputError(f"{where} lists the layers of {workload.name!r} in another order "
                             f"({_summarize(self._layers)}); regenerate the trace")

    def load(self, iteration: int, layer_name: str) -> LayerMasks:
        """Read, verify and unpack the W, X and dY masks of one layer.

        Only the three members of that layer are read. InputError names an
        unknown iteration or layer, or a member whose size, checksum or
        non-zero count disagrees with the manifest.
        """
        if (isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral)
                or int(iteration) not in self._iterations):
            raise InputError(f"trace {str(self._path)!r} has no iteration {iteration!r}; "
                             f"its iterations are {_summarize(self._iterations)}")
        if layer_name not in self._layers:
            raise InputError(f"trace {str(self._path)!r} has no layer {layer_name!r}; "
                             f"its layers are {_summarize(self._layers)}")
        if self._archive is None:
            self._archive = _open_archive(self._path)
        arrays = [self._read_mask(member_path(int(iteration), layer_name, tensor))
                  for tensor in TENSORS]
        return LayerMasks(*arrays)

    def describe(self) -> str:
        """Return a one-line label, e.g. ``trace of vgg_s from pytorch-hooks``."""
        provenance = self._manifest["provenance"]
        generator = provenance.get("generator")
        bernoulli_keys = ("density", "act_density", "grad_density")
        if (self.synthetic and generator in PATTERNS
                and all(_is_number(provenance.get(key)) for key in bernoulli_keys)):
            weights, inputs, grads = (_format_density(provenance[key]) for key in bernoulli_keys)
            seed = provenance.get("seed", "unknown")
            name = {"bernoulli": "Bernoulli", "channel-skew": "channel-skewed",
                    "block": "block-structured"}.get(generator, generator)
            extra = ""
            if "concentration" in provenance:
                extra = f", Beta concentration {provenance['concentration']:g}"
            elif "block" in provenance:
                extra = f", blocks of {provenance['block']}"
            return (f"synthetic {name} trace of {self.workload_name} (W density {weights}, "
                    f"X {inputs}, dY {grads}{extra}, seed {seed})")
        kind = "synthetic trace" if self.synthetic else "trace"
        if generator:
            return f"{kind} of {self.workload_name} from {generator}"
        return f"{kind} of {self.workload_name}"

    def _recorded_shapes(self, layer_name: str) -> dict[str, tuple[int, ...]]:
        entry = self._layers[layer_name]
        return {tensor: tuple(entry[_SHAPE_KEYS[tensor]]) for tensor in TENSORS}

    def _read_mask(self, path: str) -> np.ndarray:
        assert self._archive is not None
        where = f"trace {str(self._path)!r}"
        record = self._records[path]
        shape = tuple(record["shape"])
        try:
            info = self._archive.getinfo(path)
        except KeyError:
            raise InputError(f"{where} is missing member {path}; the file is corrupted "
                             "or truncated, so regenerate it") from None
        if info.file_size != _packed_size(shape):
            raise InputError(f"{where}: member {path} has {info.file_size} bytes, but shape "
                             f"{shape} needs {_packed_size(shape)}; the file is corrupted or "
                             "truncated, so regenerate it")
        try:
            data = self._archive.read(path)
        except zipfile.BadZipFile as error:
            # A stored member with a flipped byte fails the CRC-32 check here.
            raise InputError(f"{where}: checksum mismatch in member {path} ({error}); the "
                             "file is corrupted or truncated, so regenerate it") from None
        except (EOFError, zlib.error, NotImplementedError, OSError) as error:
            raise InputError(f"{where}: member {path} cannot be read ({error}); the file is "
                             "corrupted or truncated, so regenerate it") from None
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise InputError(f"{where}: checksum mismatch in member {path}, whose SHA-256 "
                             "differs from the manifest; the file is corrupted or truncated, "
                             "so regenerate it")

        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=math.prod(shape))
        mask = bits.view(np.bool_).reshape(shape)
        nnz = int(np.count_nonzero(mask))
        if nnz != record["nnz"]:
            raise InputError(f"{where}: member {path} has {nnz} non-zeros, but the manifest "
                             f"records {record['nnz']}; the file is corrupted, so regenerate it")
        return mask


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format_density(value: float) -> str:
    # Two decimals as in "0.10", or three significant digits when two
    # decimals would hide the value (0.125, 0.001).
    text = f"{value:.2f}"
    if float(text) != value:
        text = f"{value:.3g}"
    return text


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise InputError(f"trace file {str(path)!r} not found; check the path or write "
                         "one with procrustes-sim trace synth")
    if not path.is_file():
        raise InputError(f"trace path {str(path)!r} is not a file; give a .pstrace file")
    try:
        return zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise InputError(f"trace file {str(path)!r} is not a ZIP archive or is truncated; "
                         "regenerate it") from None
    except OSError as error:
        raise InputError(f"trace file {str(path)!r} cannot be read ({error.strerror}); "
                         "check its permissions") from None


def _read_manifest(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    where = f"trace file {str(path)!r}"
    try:
        raw = archive.read(MANIFEST_NAME)
    except KeyError:
        raise InputError(f"{where} has no {MANIFEST_NAME}; it is not a procrustes-sim trace "
                         "or it is damaged, so regenerate it") from None
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, OSError) as error:
        raise InputError(f"{where} has a damaged {MANIFEST_NAME} ({error}); "
                         "regenerate it") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as error:
        raise InputError(f"{where} has a {MANIFEST_NAME} that is not valid JSON ({error}); "
                         "regenerate it") from None
    _validate_manifest(manifest, where)
    return manifest


def _invalid_manifest(where: str, key: str, value: Any, expected: str) -> InputError:
    return InputError(f"{where} has an invalid manifest: {key} is {reprlib.repr(value)}, "
                      f"expected {expected}; regenerate the trace")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_shape(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 4
            and all(_is_int(size, 1) for size in value))


def _validate_manifest(manifest: Any, where: str) -> None:
    """Raise InputError unless *manifest* is a complete, consistent version 1 manifest.

    Unknown keys are ignored, so a later writer may add optional keys
    without a new format version.
    """
    if not isinstance(manifest, dict):
        raise InputError(f"{where} has a {MANIFEST_NAME} that is not a JSON object; "
                         "regenerate it")
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(f"{where} is not a procrustes-sim trace: its manifest format is "
                         f"{reprlib.repr(manifest.get('format'))}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if not _is_int(version, 0) or version not in SUPPORTED_VERSIONS:
        raise InputError(f"{where} has format version {reprlib.repr(version)}, but this "
                         f"procrustes-sim reads only version "
                         f"{', '.join(map(str, SUPPORTED_VERSIONS))}; upgrade procrustes-sim "
                         "or regenerate the trace")

    if not isinstance(manifest.get("workload"), str):
        raise _invalid_manifest(where, "workload", manifest.get("workload"), "a string")
    if not _is_int(manifest.get("batch"), 1):
        raise _invalid_manifest(where, "batch", manifest.get("batch"), "a positive integer")
    if not isinstance(manifest.get("synthetic"), bool):
        raise _invalid_manifest(where, "synthetic", manifest.get("synthetic"), "true or false")
    if not isinstance(manifest.get("provenance"), dict):
        raise _invalid_manifest(where, "provenance", manifest.get("provenance"), "an object")

    iterations = manifest.get("iterations")
    if (not isinstance(iterations, list) or not iterations
            or not all(_is_int(value, 0) for value in iterations)
            or any(a >= b for a, b in zip(iterations, iterations[1:]))):
        raise _invalid_manifest(where, "iterations", iterations,
                                "a non-empty ascending list of distinct integers of 0 or more")

    _validate_manifest_layers(manifest.get("layers"), where)
    _validate_manifest_arrays(manifest, where)


def _validate_manifest_layers(layers: Any, where: str) -> None:
    if not isinstance(layers, list) or not layers:
        raise _invalid_manifest(where, "layers", layers, "a non-empty list")
    names: set[str] = set()
    for position, entry in enumerate(layers):
        key = f"layers[{position}]"
        if not isinstance(entry, dict):
            raise _invalid_manifest(where, key, entry, "an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise _invalid_manifest(where, f"{key}.name", name, "a unique non-empty string")
        names.add(name)
        for shape_key in _SHAPE_KEYS.values():
            if not _is_shape(entry.get(shape_key)):
                raise _invalid_manifest(where, f"{key}.{shape_key}", entry.get(shape_key),
                                        "a list of 4 positive integers")


def _validate_manifest_arrays(manifest: dict[str, Any], where: str) -> None:
    arrays = manifest.get("arrays")
    if not isinstance(arrays, list):
        raise _invalid_manifest(where, "arrays", arrays, "a list")
    records: dict[str, dict[str, Any]] = {}
    for position, record in enumerate(arrays):
        key = f"arrays[{position}]"
        if not isinstance(record, dict):
            raise _invalid_manifest(where, key, record, "an object")
        path = record.get("path")
        if not isinstance(path, str) or path in records:
            raise _invalid_manifest(where, f"{key}.path", path, "a unique string")
        shape = record.get("shape")
        if not _is_shape(shape):
            raise _invalid_manifest(where, f"{key}.shape", shape, "a list of 4 positive integers")
        nnz = record.get("nnz")
        if not _is_int(nnz, 0) or nnz > math.prod(shape):
            raise _invalid_manifest(where, f"{key}.nnz", nnz,
                                    f"an integer from 0 to {math.prod(shape)}")
        digest = record.get("sha256")
        if (not isinstance(digest, str) or len(digest) != 64
                or any(char not in "0123456789abcdef" for char in digest)):
            raise _invalid_manifest(where, f"{key}.sha256", digest,
                                    "64 lowercase hexadecimal digits")
        records[path] = record

    for iteration in manifest["iterations"]:
        for entry in manifest["layers"]:
            for tensor in TENSORS:
                path = member_path(iteration, entry["name"], tensor)
                record = records.get(path)
                if record is None:
                    raise InputError(f"{where} has an invalid manifest: arrays has no {path} "
                                     f"(iteration {iteration}, layer {entry['name']!r}, "
                                     f"tensor {tensor}); regenerate the trace")
                if record["shape"] != entry[_SHAPE_KEYS[tensor]]:
                    raise _invalid_manifest(where, f"the shape of {path}", record["shape"],
                                            f"{entry[_SHAPE_KEYS[tensor]]} as in layers")


PATTERNS = ("bernoulli", "channel-skew", "block")


def synthesize(workload: Workload, batch: int, path: str | os.PathLike[str], *,
               density: float, act_density: float = 0.5, grad_density: float = 0.5,
               iterations: int = 1, seed: int = 0, pattern: str = "bernoulli",
               concentration: float = 2.0, block: int = 4) -> Path:
    """Write a trace of seeded random masks and return its path.

    *pattern* selects how non-zeros are placed; each gives the requested
    density in expectation:

    * ``bernoulli``: every element independently (described below);
    * ``channel-skew``: each channel gets its own density, drawn from a
      Beta distribution with the requested mean and ``alpha + beta =
      concentration`` (smaller values skew more), and its elements are
      Bernoulli with that density. The channel is the output channel K
      of W and the channel C or K of X and dY;
    * ``block``: blocks of ``block`` x ``block`` along the first two axes
      (K and C of W, N and C of X and dY), each spanning both spatial axes,
      are all non-zero with probability equal to the density, or all zero.

    The provenance records the pattern and its parameters. The rest of
    this description is about ``bernoulli``.

    Each element of W is non-zero with probability *density*, of X with
    *act_density* and of dY with *grad_density*, for iterations 0 to
    ``iterations - 1``. Each mask has its own generator seeded with
    ``SeedSequence([seed, iteration, layer_index, tensor_index])``, so a mask
    does not depend on the other layers, the other tensors or, for W, the
    batch. The same arguments give identical file bytes with the same numpy
    version. NumPy may change its random streams between versions, so
    another version may give other masks. Only one layer of one iteration is
    held in memory at a time.
    """
    probabilities = {
        "density": _check_probability("density", density),
        "act_density": _check_probability("act_density", act_density),
        "grad_density": _check_probability("grad_density", grad_density),
    }
    batch = _check_positive_int("batch", batch)
    iterations = _check_positive_int("iterations", iterations)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed={seed!r} is invalid; it must be an integer of 0 or more")
    seed = int(seed)

    if pattern not in PATTERNS:
        raise InputError(f"pattern {pattern!r} is invalid; choose one of {', '.join(PATTERNS)}")
    provenance: dict[str, Any] = {"generator": pattern, "seed": seed, **probabilities}
    if pattern == "channel-skew":
        if (isinstance(concentration, bool) or not isinstance(concentration, numbers.Real)
                or not 0 < concentration < math.inf):
            raise InputError(f"concentration={concentration!r} is invalid; it must be a "
                             "positive number")
        provenance["concentration"] = float(concentration)
    elif pattern == "block":
        provenance["block"] = _check_positive_int("block", block)
    tensor_probabilities = (probabilities["density"], probabilities["act_density"],
                            probabilities["grad_density"])
    path = Path(path)
    with TraceWriter(path, workload, batch, synthetic=True, provenance=provenance) as writer:
        for iteration in range(iterations):
            for layer_index, layer in enumerate(workload.layers):
                shapes = _layer_shapes(layer, batch)
                arrays = [_pattern_mask(pattern, tensor, shapes[tensor], probability,
                                        [seed, iteration, layer_index, tensor_index],
                                        concentration, block)
                          for tensor_index, (tensor, probability)
                          in enumerate(zip(TENSORS, tensor_probabilities))]
                writer.add(iteration, layer.name, LayerMasks(*arrays))
    return path


def _bernoulli_mask(shape: tuple[int, ...], probability: float,
                    entropy: list[int]) -> np.ndarray:
    generator = np.random.default_rng(np.random.SeedSequence(entropy))
    count = math.prod(shape)
    mask = np.empty(count, dtype=np.bool_)
    # Drawing in chunks bounds the float64 scratch memory to one chunk.
    for start in range(0, count, _SYNTHESIS_CHUNK):
        stop = min(start + _SYNTHESIS_CHUNK, count)
        np.less(generator.random(stop - start), probability, out=mask[start:stop])
    return mask.reshape(shape)


def _pattern_mask(pattern: str, tensor: str, shape: tuple[int, ...], probability: float,
                  entropy: list[int], concentration: float, block: int) -> np.ndarray:
    if pattern == "bernoulli":
        return _bernoulli_mask(shape, probability, entropy)
    generator = np.random.default_rng(np.random.SeedSequence(entropy))
    if pattern == "channel-skew":
        # W's channel axis is K (axis 0); X's and dY's is C or K (axis 1).
        axis = 0 if tensor == "W" else 1
        if 0.0 < probability < 1.0:
            channel_density = generator.beta(probability * concentration,
                                             (1.0 - probability) * concentration,
                                             size=shape[axis])
        else:
            channel_density = np.full(shape[axis], probability)
        view = [1, 1, 1, 1]
        view[axis] = shape[axis]
        # NOTE: draws the whole tensor at once, unlike the chunked Bernoulli
        # path, so scratch memory is 8 bytes per element.
        return generator.random(shape) < channel_density.reshape(view)
    grid = (-(-shape[0] // block), -(-shape[1] // block))
    blocks = generator.random(grid) < probability
    expanded = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)
    expanded = expanded[:shape[0], :shape[1]]
    return np.ascontiguousarray(np.broadcast_to(expanded[:, :, None, None], shape))
