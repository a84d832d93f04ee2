"""Load balancers: how work is reassigned across PEs before a step runs.

Only ``none`` exists so far: PEs keep the indices the dataflow gives them
and run in lock step, so each step lasts as long as its busiest PE.
"""

from __future__ import annotations

from procrustes_sim.errors import InputError

BALANCERS = {"none": "lock step; the busiest PE of each step sets its length"}


def check_balancer(name: str) -> str:
    """Return *name* if it is a known balancer; raise InputError listing the valid ones."""
    if name not in BALANCERS:
        raise InputError(f"unknown balancer {name!r}; valid names: {', '.join(BALANCERS)}")
    return name
