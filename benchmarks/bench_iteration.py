"""Time one full training iteration per network: FW, BW and WU of every layer, sparse and dense.

For each network a synthetic trace at 10% weight density and batch 16 is
written to a temporary folder (not timed); then a child process replays it
once while this script measures the child's wall time and peak resident
memory. Targets: VGG-S 2 s, ResNet-18 (ImageNet) 20 s, ResNet-50 (ImageNet)
60 s, peak memory 2 GiB.

Usage: python benchmarks/bench_iteration.py [WORKLOAD ...]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procrustes_sim.trace import synthesize
from procrustes_sim.workload import load_workload

TARGET_SECONDS = {"vgg_s": 2.0, "resnet18_imagenet": 20.0, "resnet50_imagenet": 60.0}
TARGET_PEAK_MIB = 2048
BATCH = 16
DENSITY = 0.1

CHILD = """
import resource, sys, time
from procrustes_sim import simulate
start = time.perf_counter()
report = simulate(sys.argv[1])
elapsed = time.perf_counter() - start
events = sum(c.events for c, _ in report.sparse_rows) + sum(c.events for c, _ in report.dense_rows.values())
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{elapsed:.3f} {report.speedup:.4f} {events} {peak_kib}")
"""


def measure(workload: str, folder: Path) -> dict:
    """Replay one iteration of *workload* in a child process and return its figures."""
    trace = folder / f"{workload}.pstrace"
    synthesize(load_workload(workload), BATCH, trace, density=DENSITY, seed=0)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, str(trace)], check=True,
                            capture_output=True, text=True)
    wall = time.perf_counter() - start
    simulate_seconds, speedup, events, peak_kib = result.stdout.split()
    return {"workload": workload, "process_s": wall, "simulate_s": float(simulate_seconds),
            "peak_mib": int(peak_kib) / 1024, "speedup": float(speedup),
            "events": int(events)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=list(TARGET_SECONDS))
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, batch {BATCH}, weight density {DENSITY}")
    print(f"{'workload':<20} {'simulate s':>10} {'process s':>9} {'target s':>8} "
          f"{'peak MiB':>8} {'events':>8} {'speedup':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for workload in args.workloads:
            row = measure(workload, Path(folder))
            target = TARGET_SECONDS.get(workload, float("nan"))
            print(f"{workload:<20} {row['simulate_s']:>10.2f} {row['process_s']:>9.2f} "
                  f"{target:>8.0f} {row['peak_mib']:>8.0f} {row['events']:>8} "
                  f"{row['speedup']:>7.2f}", flush=True)
    print(f"# peak memory target: {TARGET_PEAK_MIB} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
