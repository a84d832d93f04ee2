"""Dataflow definitions and their loader.

A dataflow YAML file says, for each pass (FW, BW, WU), which two
dimensions are spread over the PE array's rows and columns, the temporal
loop order from outer to inner, and the tile extents at two storage levels:

* ``rf_tile``: the extent of each dimension that one PE covers inside one
  lock-step step. Dimensions not listed have extent 1.
* ``glb_tile``: how many steps of each dimension share one global-buffer
  tile, the unit that DRAM fills and drains. Dimensions not listed have 1.
  GLB tiles then run in ``loop_order``. The word ``search`` instead lets
  the mapper choose the order of the GLB loops and the tile with the least
  DRAM traffic for each layer; steps inside a tile keep ``loop_order``.

An extent is a positive integer, ``full`` (the whole dimension) or ``auto``
(the largest that fits the buffer, grown in the order listed). The mapper in
:mod:`procrustes_sim.mapping` resolves them per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from procrustes_sim.errors import InputError
from procrustes_sim.workload import DIMS, PASSES, Dim, Pass
from procrustes_sim.yamlio import Fields, load_yaml, raise_problems, read_yaml_file

EXTENT_WORDS = ("full", "auto")


@dataclass(frozen=True)
class PassDataflow:
    """The spatial mapping, loop order and tile extents of one pass."""

    rows: Dim
    cols: Dim
    loop_order: tuple[Dim, ...]
    rf_tile: tuple[tuple[Dim, int | str], ...]
    glb_tile: tuple[tuple[Dim, int | str], ...]
    glb_search: bool = False


@dataclass(frozen=True)
class Dataflow:
    """A named dataflow: one :class:`PassDataflow` per pass."""

    name: str
    description: str
    passes: dict
    source: str = ""

    def for_pass(self, pass_: Pass) -> PassDataflow:
        """Return the mapping of *pass_*."""
        return self.passes[pass_]


def available() -> list[str]:
    """Names of the bundled dataflows, sorted."""
    root = resources.files(__name__)
    return sorted(item.name[:-5] for item in root.iterdir() if item.name.endswith(".yaml"))


def load(name_or_path: str | Path) -> Dataflow:
    """Load a bundled dataflow by name or a dataflow YAML by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return parse(read_yaml_file(path), str(path), path.stem)
    name = str(name_or_path)
    if name not in available():
        raise InputError(f"unknown dataflow {name!r}; valid names: {', '.join(available())}, "
                         "or the path of a YAML file")
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text()
    return parse(load_yaml(text, f"dataflows/{name}.yaml"), f"dataflows/{name}.yaml", name)


def parse(data: object, where: str, default_name: str = "custom") -> Dataflow:
    """Validate a dataflow mapping; raise InputError listing every problem."""
    problems: list[str] = []
    root = Fields(data, "dataflow", problems)
    name = root.text("name", default_name)
    description = root.text("description", "")
    passes_fields = root.section("passes")
    passes = {}
    for pass_ in PASSES:
        fields = passes_fields.section(pass_.value)
        passes[pass_] = _parse_pass(fields, problems)
        fields.reject_unknown()
    passes_fields.reject_unknown()
    root.reject_unknown()
    raise_problems(problems, where)
    return Dataflow(name=name, description=description, passes=passes, source=where)


def _dim(value: object, path: str, problems: list[str]) -> Dim:
    try:
        return Dim(value)
    except ValueError:
        problems.append(f"{path}: {value!r} is not a dimension; expected one of "
                        f"{', '.join(d.value for d in DIMS)}")
        return Dim.N


def _parse_pass(fields: Fields, problems: list[str]) -> PassDataflow:
    spatial = fields.section("spatial")
    rows = _dim(spatial.text("rows"), f"{spatial.path}.rows", problems)
    cols = _dim(spatial.text("cols"), f"{spatial.path}.cols", problems)
    spatial.reject_unknown()
    if rows == cols:
        problems.append(f"{spatial.path}: rows and cols are both {rows.value}; "
                        "map two different dimensions")

    order_value = fields.optional("loop_order", None)
    if not isinstance(order_value, list):
        problems.append(f"{fields.path}.loop_order: expected a list of all seven dimensions")
        order_value = [d.value for d in DIMS]
    order = tuple(_dim(v, f"{fields.path}.loop_order", problems) for v in order_value)
    if sorted(d.value for d in order) != sorted(d.value for d in DIMS):
        problems.append(f"{fields.path}.loop_order: {order_value!r} must list each of "
                        f"{', '.join(d.value for d in DIMS)} exactly once")

    rf_tile = _parse_extents(fields, "rf_tile", problems, forbidden=(rows, cols))
    glb_search = fields.mapping.get("glb_tile") == "search"
    if glb_search:
        fields.optional("glb_tile")
        glb_tile = ()
    else:
        glb_tile = _parse_extents(fields, "glb_tile", problems, forbidden=())
    return PassDataflow(rows=rows, cols=cols, loop_order=order, rf_tile=rf_tile,
                        glb_tile=glb_tile, glb_search=glb_search)


def _parse_extents(fields: Fields, key: str, problems: list[str],
                   forbidden: tuple[Dim, ...]) -> tuple[tuple[Dim, int | str], ...]:
    value = fields.optional(key, {}) or {}
    path = f"{fields.path}.{key}"
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping of dimension to extent")
        return ()
    extents = []
    for dim_name, extent in value.items():
        dim = _dim(dim_name, path, problems)
        if dim in forbidden:
            problems.append(f"{path}.{dim_name}: a spatial dimension has one index per PE; "
                            "remove it from rf_tile")
        valid = (isinstance(extent, int) and not isinstance(extent, bool) and extent >= 1) \
            or extent in EXTENT_WORDS
        if not valid:
            problems.append(f"{path}.{dim_name}: {extent!r} is invalid; expected a positive "
                            "integer, full or auto")
            continue
        extents.append((dim, extent))
    return tuple(extents)
