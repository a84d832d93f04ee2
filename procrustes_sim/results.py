"""Loading the results of a run for figures and report pages.

:func:`load_results` reads a results folder written by ``procrustes-sim
run`` (summary.json, layers.csv and, when recorded, pe_work.npz) or takes
a :class:`~procrustes_sim.report.Report` in memory, and returns
:class:`Results`. Results answer the questions that the figures ask: the
layers in workload order, the energy components, per-layer sums over
passes as a mean per iteration, network totals and the per-PE work of a
recorded layer and pass.

A folder whose summary.json has another ``results_format`` than
:data:`procrustes_sim.report.RESULTS_FORMAT` is rejected with InputError,
because column meanings may differ between formats.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from procrustes_sim.energy import COMPONENTS
from procrustes_sim.errors import InputError
from procrustes_sim.report import PE_WORK_KEY, RESULTS_FORMAT, Report

PASSES = ("FW", "BW", "WU")

SUMMARY_NAME = "summary.json"
LAYERS_NAME = "layers.csv"
PE_WORK_NAME = "pe_work.npz"

# Trace label that simulate() stores when it replayed a temporary default trace.
BUNDLED_TRACE_LABEL = "generated synthetic trace (not kept)"

# Figure kinds and file formats of procrustes_sim.plots; kept here so that
# the command line can list them without importing matplotlib.
KINDS = ("energy", "energy-pass", "speedup", "cycles", "imbalance", "density")
FORMATS = ("png", "svg", "pdf")

# Columns the figures and pages read; any other column is kept but optional.
REQUIRED_COLUMNS = (
    "iteration", "layer", "pass", "sparse_cycles", "dense_cycles", "sparse_energy_pj",
    "dense_energy_pj", "utilization", "imbalance", "useful_cycles",
    "imbalance_stall_cycles", "mapping_stall_cycles", "memory_stall_cycles",
)

_TEXT_COLUMNS = frozenset({"layer", "pass", "dataflow", "dense_dataflow"})
_COMPONENT_COLUMN = re.compile(r"sparse_energy_(.+)_pj")

RERUN_HINT = "rerun procrustes-sim run with this version to write it again"


@dataclass(frozen=True, eq=False)
class Results:
    """The summary, per-layer rows and per-PE work of one run.

    ``rows`` contains one dict per iteration, layer and pass, as in
    layers.csv, with numbers as floats (``iteration`` as int). ``folder`` is
    None for results taken from a Report in memory.
    """

    summary: dict
    rows: tuple
    folder: Path | None = None
    columns: tuple = ()
    _pe_work: dict | None = field(default=None, repr=False)

    # Identity of the run ------------------------------------------------

    @property
    def workload(self) -> str:
        """Workload name."""
        return str(self.summary.get("workload", "unknown workload"))

    @property
    def synthetic(self) -> bool:
        """Whether the replayed trace was synthetic rather than recorded in training."""
        return bool(self.summary.get("trace", {}).get("synthetic"))

    @property
    def layers(self) -> tuple[str, ...]:
        """Layer names in the order of layers.csv, which is workload order."""
        return tuple(dict.fromkeys(row["layer"] for row in self.rows))

    @property
    def passes(self) -> tuple[str, ...]:
        """Passes present in layers.csv, in the order FW, BW, WU."""
        present = {row["pass"] for row in self.rows}
        return tuple(pass_ for pass_ in PASSES if pass_ in present)

    @property
    def iterations(self) -> tuple[int, ...]:
        """Replayed iterations, ascending."""
        return tuple(sorted({row["iteration"] for row in self.rows}))

    @property
    def iteration_count(self) -> int:
        """Number of replayed iterations; per-layer figures show the mean over them."""
        return len(self.iterations)

    @property
    def components(self) -> tuple[str, ...]:
        """Energy components: those of procrustes_sim.energy, then any others in layers.csv."""
        found = [match.group(1) for column in self.columns
                 if (match := _COMPONENT_COLUMN.fullmatch(column))]
        known = [name for name in COMPONENTS if name in found]
        return tuple(known + [name for name in found if name not in known])

    def context(self, averaged: bool = True) -> str:
        """Return one line naming the run, e.g. ``vgg_s, CxN dataflow, block-mask layout``.

        It ends with the number of iterations averaged when there were
        several (unless *averaged* is False, for figures of one iteration)
        and with "synthetic trace" when the masks were synthetic.
        """
        summary = self.summary
        parts = [self.workload]
        if summary.get("dataflow"):
            parts.append(f"{summary['dataflow']} dataflow")
        if summary.get("layout"):
            parts.append(f"{summary['layout']} layout")
        if summary.get("balancer") and summary["balancer"] != "none":
            parts.append(f"{summary['balancer']} balancer")
        if summary.get("batch"):
            parts.append(f"batch {summary['batch']}")
        if averaged and self.iteration_count > 1:
            parts.append(f"mean of {self.iteration_count} iterations")
        if self.synthetic:
            parts.append("synthetic trace")
        return ", ".join(parts)

    # Aggregates ---------------------------------------------------------

    def value(self, row: dict, column: str) -> float:
        """Return the number in *column* of *row*, or 0.0 where a component column is absent.

        Components added by a later version may have no dense column; the
        dense baseline then spends nothing on them.
        """
        return float(row.get(column, 0.0))

    def per_layer(self, columns: tuple[str, ...] | list[str],
                  pass_: str | None = None) -> dict[str, dict[str, float]]:
        """Sum *columns* over the passes of each layer, as a mean per iteration.

        With *pass_* ("FW", "BW" or "WU") only that pass is summed. Returns
        ``{layer: {column: value}}`` in layer order.
        """
        sums = {layer: dict.fromkeys(columns, 0.0) for layer in self.layers}
        for row in self._select(pass_):
            entry = sums[row["layer"]]
            for column in columns:
                entry[column] += self.value(row, column)
        count = self.iteration_count
        return {layer: {column: total / count for column, total in entry.items()}
                for layer, entry in sums.items()}

    def total(self, columns: tuple[str, ...] | list[str],
              pass_: str | None = None) -> dict[str, float]:
        """Sum *columns* over all layers (and passes, or only *pass_*), as a mean per iteration."""
        sums = dict.fromkeys(columns, 0.0)
        for row in self._select(pass_):
            for column in columns:
                sums[column] += self.value(row, column)
        return {column: value / self.iteration_count for column, value in sums.items()}

    def _select(self, pass_: str | None) -> list[dict]:
        if pass_ is None:
            return list(self.rows)
        if pass_ not in PASSES:
            raise InputError(f"pass {pass_!r} is invalid; give one of {', '.join(PASSES)}")
        return [row for row in self.rows if row["pass"] == pass_]

    # Per-PE work --------------------------------------------------------

    def pe_work_keys(self) -> list[tuple[int, str, str]]:
        """(iteration, layer, pass) of every recorded per-PE work array, sorted."""
        return sorted(self._load_pe_work())

    def pe_work(self, layer: str, pass_: str, iteration: int | None = None) -> np.ndarray:
        """MACs per step and PE of one layer and pass, shape (steps, rows, cols).

        Without *iteration*, the first recorded iteration is used. Raises
        InputError naming the ``--record-pe`` option when the run did not
        record this layer and pass.
        """
        recorded = self._load_pe_work()
        matches = sorted(key for key in recorded
                         if key[1] == layer and key[2] == pass_
                         and (iteration is None or key[0] == iteration))
        if not matches:
            layers = self.layers
            if layers and layer not in layers:
                raise InputError(f"layer {layer!r} is not in {self.describe_source()}; its "
                                 f"layers are {', '.join(layers)}")
            if iteration is not None and iteration not in self.iterations:
                raise InputError(f"iteration {iteration} was not replayed in "
                                 f"{self.describe_source()}; give one of "
                                 f"{', '.join(str(i) for i in self.iterations)}")
            where = f" of iteration {iteration}" if iteration is not None else ""
            have = f"the run recorded {_describe_recorded(recorded)}" if recorded else \
                "the run recorded none"
            raise InputError(f"no per-PE work of layer {layer!r} pass {pass_}{where} in "
                             f"{self.describe_source()} ({have}); rerun with procrustes-sim run "
                             f"--record-pe {layer}:{pass_}")
        return recorded[matches[0]]

    def _load_pe_work(self) -> dict:
        if self._pe_work is not None:
            return self._pe_work
        arrays = {}
        path = self.folder / PE_WORK_NAME if self.folder is not None else None
        if path is not None and path.exists():
            arrays = _read_pe_work(path)
        # The dataclass is frozen; the cache is filled once, on first use.
        object.__setattr__(self, "_pe_work", arrays)
        return arrays

    def describe_source(self) -> str:
        """Return where the results came from, for messages: the folder, or "the report"."""
        return f"results folder {str(self.folder)!r}" if self.folder else "the report"

    # Trace --------------------------------------------------------------

    def trace_path(self) -> Path:
        """Return the trace file that the run replayed, as recorded in summary.json.

        Raises InputError asking for ``--trace`` when the run replayed the
        bundled default (a temporary file) or the file is gone. A relative
        path is taken relative to the current folder, as the run did.
        """
        recorded = self.summary.get("trace", {}).get("path")
        if not recorded or recorded == BUNDLED_TRACE_LABEL:
            raise InputError(f"{self.describe_source()} comes from a generated synthetic trace that was not kept, "
                             "which was not kept; give the trace file with --trace FILE")
        path = Path(recorded)
        if not path.is_file():
            raise InputError(f"trace file {recorded!r} named in {SUMMARY_NAME} was not found; "
                             "give the trace file with --trace FILE")
        return path


def load_results(source: Results | Report | str | os.PathLike[str]) -> Results:
    """Return the results of a run from a results folder, a Report or Results.

    Raises InputError for a folder without summary.json and layers.csv, for
    another results format and for malformed files.
    """
    if isinstance(source, Results):
        return source
    if isinstance(source, Report):
        rows = tuple(_numeric_row(row) for row in source.layer_rows())
        columns = tuple(rows[0]) if rows else ()
        results = Results(summary=source.summary(), rows=rows, folder=None, columns=columns,
                          _pe_work=dict(source.pe_work))
        _check_rows(results, "the report")
        return results
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a results folder, Report or Results, "
                        f"got {type(source).__name__}")
    return _read_folder(Path(source))


def _read_folder(folder: Path) -> Results:
    where = f"results folder {str(folder)!r}"
    if not folder.exists():
        raise InputError(f"{where} does not exist; give the --out folder of procrustes-sim run")
    if not folder.is_dir():
        raise InputError(f"{str(folder)!r} is a file, not a results folder; give the --out "
                         "folder of procrustes-sim run")
    for name in (SUMMARY_NAME, LAYERS_NAME):
        if not (folder / name).is_file():
            raise InputError(f"{str(folder)!r} is not a results folder: it has no {name}; "
                             "give the --out folder of procrustes-sim run")

    summary = _read_summary(folder / SUMMARY_NAME)
    columns, rows = _read_layers(folder / LAYERS_NAME)
    results = Results(summary=summary, rows=rows, folder=folder, columns=columns)
    _check_rows(results, where)
    return results


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{str(path)!r} is not valid JSON ({error}); {RERUN_HINT}") from None
    if not isinstance(summary, dict):
        raise InputError(f"{str(path)!r} does not contain a JSON object; {RERUN_HINT}")

    found = summary.get("results_format")
    if found is None:
        raise InputError(f"{str(path)!r} has no results_format, so an older procrustes-sim "
                         f"wrote it; this version reads format {RESULTS_FORMAT}, so "
                         f"{RERUN_HINT}")
    if found != RESULTS_FORMAT:
        newer = isinstance(found, int) and found > RESULTS_FORMAT
        advice = ("upgrade procrustes-sim to read it" if newer else RERUN_HINT)
        raise InputError(f"{str(path)!r} has results_format {found!r}, but this version "
                         f"reads format {RESULTS_FORMAT}; {advice}")
    if not isinstance(summary.get("trace", {}), dict):
        raise InputError(f"{str(path)!r} has an invalid trace entry; {RERUN_HINT}")
    return summary


def _read_layers(path: Path) -> tuple[tuple, tuple]:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            columns = tuple(reader.fieldnames or ())
            missing = [column for column in REQUIRED_COLUMNS if column not in columns]
            if missing:
                raise InputError(f"{str(path)!r} has no column {missing[0]!r}; {RERUN_HINT}")
            rows = []
            for line, row in enumerate(reader, start=2):
                rows.append(_numeric_row(row, f"{str(path)!r} line {line}"))
    except UnicodeDecodeError as error:
        raise InputError(f"{str(path)!r} is not UTF-8 text ({error}); {RERUN_HINT}") from None
    return columns, tuple(rows)


def _numeric_row(row: dict, where: str = "the report") -> dict:
    converted = {}
    for column, value in row.items():
        # csv.DictReader gives the key None to surplus fields and the value None to
        # missing ones.
        needed = column in REQUIRED_COLUMNS or bool(_COMPONENT_COLUMN.fullmatch(column or ""))
        if column is None or (value is None and needed):
            raise InputError(f"{where} has a different number of fields than the header; "
                             f"{RERUN_HINT}")
        if value is None:
            converted[column] = None
            continue
        if column in _TEXT_COLUMNS:
            converted[column] = str(value)
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            # Columns added later may contain text; only the known numbers must parse.
            if needed:
                raise InputError(f"{where} has {column}={value!r}, which is not a number; "
                                 f"{RERUN_HINT}") from None
            converted[column] = value
            continue
        converted[column] = number
    if "iteration" in converted:
        iteration = converted["iteration"]
        if not (isinstance(iteration, float) and math.isfinite(iteration)
                and iteration == int(iteration) and iteration >= 0):
            raise InputError(f"{where} has iteration={row['iteration']!r}; it must be an "
                             f"integer of 0 or more, so {RERUN_HINT}")
        converted["iteration"] = int(iteration)
    return converted


def _check_rows(results: Results, where: str) -> None:
    if not results.rows:
        raise InputError(f"{where} has no rows in {LAYERS_NAME}; {RERUN_HINT}")
    for row in results.rows:
        if row["pass"] not in PASSES:
            raise InputError(f"{where} has a row with pass {row['pass']!r}; passes are "
                             f"{', '.join(PASSES)}, so {RERUN_HINT}")


def _describe_recorded(recorded: dict) -> str:
    """List recorded (iteration, layer, pass) keys as ``conv1:FW (iterations 0, 1)``."""
    iterations: dict = {}
    for iteration, layer, pass_ in sorted(recorded):
        iterations.setdefault((layer, pass_), []).append(str(iteration))
    return ", ".join(f"{layer}:{pass_} (iteration{'s' if len(found) > 1 else ''} "
                     f"{', '.join(found)})" for (layer, pass_), found in iterations.items())


def _read_pe_work(path: Path) -> dict:
    """Read pe_work.npz into {(iteration, layer, pass): array of shape (steps, rows, cols)}."""
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[_parse_pe_work_key(key, path)] = _check_pe_array(archive[key], key, path)
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise InputError(f"{str(path)!r} cannot be read ({error}); rerun procrustes-sim run "
                         "with --record-pe to write it again") from None
    return arrays


def _parse_pe_work_key(key: str, path: Path) -> tuple[int, str, str]:
    # PE_WORK_KEY is "iteration/layer/pass"; a layer name may itself contain "/".
    iteration, _, rest = key.partition("/")
    layer, _, pass_ = rest.rpartition("/")
    if not iteration.isdigit() or not layer or pass_ not in PASSES:
        example = PE_WORK_KEY.format(0, "conv1", "FW")
        raise InputError(f"{str(path)!r} has an array named {key!r}; names must look like "
                         f"{example!r}, so rerun procrustes-sim run with --record-pe")
    return int(iteration), layer, pass_


def _check_pe_array(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{str(path)!r} array {key!r} has shape {array.shape} and dtype "
                         f"{array.dtype}; expected numbers of shape (steps, rows, cols), so "
                         "rerun procrustes-sim run with --record-pe")
    return array


# Atomic writing -------------------------------------------------------------


def write_atomic(path: Path, data: bytes) -> Path:
    """Write *data* to *path* through a temporary file in the same folder and os.replace.

    A reader sees either the old file or the complete new one. The
    temporary file is removed again if writing or renaming fails.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            # Mode 0o666 lets the umask set the permissions, as for any file the user writes.
            handle = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def output_folder(results: Results, out: str | os.PathLike[str] | None, name: str) -> Path:
    """Return *out* as a Path, or the folder *name* inside the results folder if *out* is None.

    Raises InputError when *out* is None and the results came from a Report in memory.
    """
    if out is not None:
        return Path(out)
    if results.folder is None:
        raise InputError("results from a Report in memory have no folder; give out= a folder")
    return results.folder / name


def prepare_folder(folder: Path, option: str = "--out") -> Path:
    """Create *folder* with its parents; raise InputError if it is a file."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {str(folder)!r} is a file; give a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
