"""The discrete-event engine: DRAM, GLB, NoC and PE array as SimPy resources.

:func:`run_pass` replays the GLB tiles of one layer and pass through a
double-buffered pipeline and returns its cycles and stalls.
"""

from procrustes_sim.engine.pipeline import PassTiming, TileSchedule, run_pass

__all__ = ["PassTiming", "TileSchedule", "run_pass"]
