"""procrustes-sim: a simulator of accelerators that train sparse DNNs.

The one entry point is :func:`simulate`, which replays a trace of sparse
masks through a model of a PE array and returns a :class:`Report`.
"""

__version__ = "0.1.0"

from procrustes_sim.errors import InputError, SimulationError


def __getattr__(name):
    # simulate and Report pull in numpy and simpy; importing them on first
    # use keeps `procrustes-sim --help` and the light submodules fast.
    if name == "simulate":
        from procrustes_sim.simulation import simulate
        return simulate
    if name == "Report":
        from procrustes_sim.report import Report
        return Report
    raise AttributeError(f"module 'procrustes_sim' has no attribute {name!r}")


__all__ = ["simulate", "Report", "InputError", "SimulationError", "__version__"]
