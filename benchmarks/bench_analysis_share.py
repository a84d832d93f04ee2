"""Share of a run's time spent in layout and balancer analysis.

Replays one iteration of a synthetic trace (10% weight density, batch 16)
with the default configuration under cProfile and prints the cumulative
time of the layout analysis (weight tile statistics and sizes), the
balancers and the training overheads, against the whole simulation.
cProfile slows Python-level code more than numpy, so the shares are
estimates; the total is the profiled time, not the normal run time.

Usage: python benchmarks/bench_analysis_share.py [WORKLOAD ...]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

from procrustes_sim import simulate
from procrustes_sim.trace import synthesize
from procrustes_sim.workload import load_workload

# (label, module file, function name) whose cumulative time is reported.
PARTS = (
    ("layout analysis", "traffic.py", "_weight_tiles"),
    ("balancer", "balancers.py", "apply_balancer"),
    ("training overheads", "overheads.py", "training_counts"),
    ("whole simulation", "simulation.py", "simulate"),
)


def measure(workload: str, folder: Path) -> dict:
    """Profile one simulation of *workload*; return cumulative seconds per part."""
    trace = synthesize(load_workload(workload), 16, folder / f"{workload}.pstrace",
                       density=0.1, seed=0)
    profile = cProfile.Profile()
    profile.enable()
    simulate(trace)
    profile.disable()
    stats = pstats.Stats(profile).stats
    seconds = {}
    for label, filename, function in PARTS:
        seconds[label] = sum(entry[3] for (path, _, name), entry in stats.items()
                             if path.endswith(filename) and name == function)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=["vgg_s", "resnet50_imagenet"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for workload in args.workloads:
            seconds = measure(workload, Path(folder))
            total = seconds["whole simulation"]
            parts = ", ".join(f"{label} {value:.2f} s ({100 * value / total:.0f}%)"
                              for label, value in seconds.items() if label != "whole simulation")
            print(f"{workload}: profiled total {total:.2f} s; {parts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
