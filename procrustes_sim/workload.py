"""Layers, training passes and the network topologies that hold them.

A layer is a convolution or a fully connected layer. Each layer runs three
passes per training iteration over the same iteration space of dimensions
N, K, C, R, S, P, Q:

* FW computes Y = W conv X and reads W and X.
* BW computes dX = W^T conv dY and reads W and dY.
* WU computes dW = X corr dY, reduced over N, P and Q, and reads X and dY.

Tensor shapes follow PyTorch: weights (K, C/groups, R, S), activations
(N, C, H, W), output gradients (N, K, P, Q). A fully connected layer is a
1 x 1 convolution on a 1 x 1 input.

Topologies are CSV files with one row per layer and the columns of
:data:`CSV_COLUMNS`. Batch N is not part of a topology: it is given at run
time.
"""

from __future__ import annotations

import csv
import enum
import io
from dataclasses import dataclass
from pathlib import Path

from procrustes_sim.errors import InputError


class Dim(str, enum.Enum):
    """A dimension of a layer's iteration space."""

    N = "N"
    K = "K"
    C = "C"
    R = "R"
    S = "S"
    P = "P"
    Q = "Q"


DIMS: tuple[Dim, ...] = tuple(Dim)


class Pass(str, enum.Enum):
    """A training pass of one layer."""

    FW = "FW"
    BW = "BW"
    WU = "WU"


PASSES: tuple[Pass, ...] = tuple(Pass)


class Tensor(str, enum.Enum):
    """A tensor that a pass reads or writes."""

    W = "W"
    X = "X"
    Y = "Y"
    DY = "dY"
    DX = "dX"
    DW = "dW"


# Dimensions that index each tensor. X is indexed by its input rows and
# columns, which the iteration space reaches as P * stride + R - padding and
# Q * stride + S - padding.
TENSOR_DIMS: dict[Tensor, tuple[Dim, ...]] = {
    Tensor.W: (Dim.K, Dim.C, Dim.R, Dim.S),
    Tensor.DW: (Dim.K, Dim.C, Dim.R, Dim.S),
    Tensor.X: (Dim.N, Dim.C, Dim.P, Dim.Q, Dim.R, Dim.S),
    Tensor.DX: (Dim.N, Dim.C, Dim.P, Dim.Q, Dim.R, Dim.S),
    Tensor.Y: (Dim.N, Dim.K, Dim.P, Dim.Q),
    Tensor.DY: (Dim.N, Dim.K, Dim.P, Dim.Q),
}

# Operands read and the tensor written by each pass.
PASS_OPERANDS: dict[Pass, tuple[tuple[Tensor, Tensor], Tensor]] = {
    Pass.FW: ((Tensor.W, Tensor.X), Tensor.Y),
    Pass.BW: ((Tensor.W, Tensor.DY), Tensor.DX),
    Pass.WU: ((Tensor.X, Tensor.DY), Tensor.DW),
}

CSV_COLUMNS = ("name", "type", "C", "K", "H", "W", "R", "S",
               "stride", "padding", "groups", "bias", "batchnorm")


@dataclass(frozen=True)
class Layer:
    """One convolution or fully connected layer, without its batch size."""

    name: str
    kind: str
    C: int
    K: int
    H: int
    W: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bias: bool = False
    batchnorm: bool = False

    def __post_init__(self) -> None:
        problems = _layer_problems(self)
        if problems:
            raise InputError(f"layer {self.name!r}: " + "; ".join(problems))

    @property
    def P(self) -> int:
        """Output rows."""
        return (self.H + 2 * self.padding - self.R) // self.stride + 1

    @property
    def Q(self) -> int:
        """Output columns."""
        return (self.W + 2 * self.padding - self.S) // self.stride + 1

    @property
    def channels_per_group(self) -> int:
        """Input channels that each filter reads: C / groups."""
        return self.C // self.groups

    @property
    def filters_per_group(self) -> int:
        """Output channels of each group: K / groups."""
        return self.K // self.groups

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """Weight shape (K, C/groups, R, S)."""
        return (self.K, self.channels_per_group, self.R, self.S)

    @property
    def weight_count(self) -> int:
        """Number of weights, biases excluded."""
        return self.K * self.channels_per_group * self.R * self.S

    @property
    def parameter_count(self) -> int:
        """Weights plus bias plus the scale and shift of a batch norm."""
        count = self.weight_count
        if self.bias:
            count += self.K
        if self.batchnorm:
            count += 2 * self.K
        return count

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Shape (N, C, H, W) of X and dX."""
        return (batch, self.C, self.H, self.W)

    def output_shape(self, batch: int) -> tuple[int, int, int, int]:
        """Shape (N, K, P, Q) of Y and dY."""
        return (batch, self.K, self.P, self.Q)

    def dims(self, batch: int) -> dict[Dim, int]:
        """Sizes of the iteration space; C is the full input channel count."""
        return {Dim.N: batch, Dim.K: self.K, Dim.C: self.C, Dim.R: self.R,
                Dim.S: self.S, Dim.P: self.P, Dim.Q: self.Q}

    def macs(self, batch: int) -> int:
        """Textbook MAC count N*K*(C/groups)*R*S*P*Q of each pass.

        Products with the zero padding around X are included, as in the
        usual formula; :func:`procrustes_sim.work` counts the products that
        touch the input itself.
        """
        return batch * self.weight_count * self.P * self.Q


def _layer_problems(layer: Layer) -> list[str]:
    problems = []
    if layer.kind not in ("conv", "fc"):
        problems.append(f"type {layer.kind!r} is not 'conv' or 'fc'")
    for field in ("C", "K", "H", "W", "R", "S", "stride", "groups"):
        value = getattr(layer, field)
        if not isinstance(value, int) or value < 1:
            problems.append(f"{field}={value!r} must be a positive integer")
    if not isinstance(layer.padding, int) or layer.padding < 0:
        problems.append(f"padding={layer.padding!r} must be 0 or more")
    if problems:
        return problems
    if layer.C % layer.groups or layer.K % layer.groups:
        problems.append(f"groups={layer.groups} must divide C={layer.C} and K={layer.K}")
    if layer.R > layer.H + 2 * layer.padding or layer.S > layer.W + 2 * layer.padding:
        problems.append(f"filter {layer.R}x{layer.S} is larger than the padded input "
                        f"{layer.H + 2 * layer.padding}x{layer.W + 2 * layer.padding}")
    if layer.kind == "fc" and (layer.R, layer.S, layer.H, layer.W, layer.stride,
                               layer.padding) != (1, 1, 1, 1, 1, 0):
        problems.append("an fc layer must have H = W = R = S = stride = 1 and padding 0")
    return problems


@dataclass(frozen=True)
class Workload:
    """A named network: its layers in execution order."""

    name: str
    layers: tuple[Layer, ...]
    source: str = ""

    def layer(self, name: str) -> Layer:
        """Return the layer called *name*; raise InputError if there is none."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InputError(f"workload {self.name!r} has no layer {name!r}; "
                         f"its layers are {', '.join(l.name for l in self.layers)}")

    @property
    def parameter_count(self) -> int:
        """Trainable parameters of every layer in the topology."""
        return sum(layer.parameter_count for layer in self.layers)

    def macs(self, batch: int) -> int:
        """Textbook MACs of one pass over every layer."""
        return sum(layer.macs(batch) for layer in self.layers)


def parse_topology(text: str, name: str, source: str = "") -> Workload:
    """Parse a topology CSV into a Workload; raise InputError naming the row."""
    where = source or name
    reader = csv.DictReader(io.StringIO(text))
    header = [column.strip() for column in (reader.fieldnames or [])]
    missing = [column for column in CSV_COLUMNS if column not in header]
    unknown = [column for column in header if column not in CSV_COLUMNS]
    if unknown:
        raise InputError(f"{where}: unknown CSV column(s) {', '.join(unknown)}; a topology has "
                         f"exactly the columns {','.join(CSV_COLUMNS)}")
    if missing:
        raise InputError(f"{where}: missing CSV column(s) {', '.join(missing)}; "
                         f"a topology needs {','.join(CSV_COLUMNS)}")
    reader.fieldnames = header
    layers = []
    seen = set()
    for row in reader:
        line_number = reader.line_num
        if None in row:
            raise InputError(f"{where}:{line_number}: {len(row[None])} value(s) past the last "
                             f"column; a row has the {len(CSV_COLUMNS)} columns {','.join(CSV_COLUMNS)}")
        if not any((value or "").strip() for value in row.values()):
            continue
        layer = _parse_row(row, f"{where}:{line_number}")
        if layer.name in seen:
            raise InputError(f"{where}:{line_number}: duplicate layer name {layer.name!r}; "
                             "give each layer a unique name")
        seen.add(layer.name)
        layers.append(layer)
    if not layers:
        raise InputError(f"{where}: the topology has no layers")
    return Workload(name=name, layers=tuple(layers), source=source)


def _parse_row(row: dict[str, str], where: str) -> Layer:
    values: dict[str, object] = {"name": (row["name"] or "").strip(),
                                 "kind": (row["type"] or "").strip()}
    if not values["name"]:
        raise InputError(f"{where}: empty layer name")
    for column in ("C", "K", "H", "W", "R", "S", "stride", "padding", "groups"):
        text = (row.get(column) or "").strip()
        try:
            values[column] = int(text)
        except ValueError:
            raise InputError(f"{where}: column {column} is {text!r}, expected an integer") from None
    for column in ("bias", "batchnorm"):
        text = (row.get(column) or "").strip()
        if text not in ("0", "1"):
            raise InputError(f"{where}: column {column} is {text!r}, expected 0 or 1")
        values[column] = text == "1"
    try:
        return Layer(**values)
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def load_workload(name_or_path: str | Path) -> Workload:
    """Load a bundled topology by name, or a topology CSV by path."""
    import workloads

    path = Path(name_or_path)
    if path.suffix == ".csv" or (str(name_or_path) not in workloads.available() and path.exists()):
        if not path.is_file():
            raise InputError(f"workload file {str(path)!r} not found; "
                             f"give a topology CSV or one of: {', '.join(workloads.available())}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"workload file {str(path)!r} is not UTF-8 text; give a "
                             "topology CSV") from None
        return parse_topology(text, name=path.stem, source=str(path))
    name = str(name_or_path)
    return parse_topology(workloads.read_topology(name), name=name, source=f"workloads/{name}.csv")
