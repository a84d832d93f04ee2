"""Bundled network topologies (CSV) and sparse-training traces.

Each ``<name>.csv`` beside this file is a topology that
:func:`procrustes_sim.workload.load_workload` loads by name; bundled traces
live in ``traces/``.
"""

from importlib import resources

from procrustes_sim.errors import InputError


def available() -> list[str]:
    """Names of the bundled topologies, sorted."""
    root = resources.files(__name__)
    return sorted(item.name[:-4] for item in root.iterdir() if item.name.endswith(".csv"))


def read_topology(name: str) -> str:
    """Return the CSV text of the bundled topology *name*."""
    if name not in available():
        raise InputError(f"unknown workload {name!r}; valid names: {', '.join(available())}")
    return resources.files(__name__).joinpath(f"{name}.csv").read_text()


def trace_path(name: str):
    """Return the path of the bundled trace file *name* inside ``traces/``."""
    return resources.files(__name__).joinpath("traces", name)
