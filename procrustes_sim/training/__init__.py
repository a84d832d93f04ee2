"""A numpy trainer of the zoo's plain convolutional networks with Procrustes-style Dropback.

It trains on scikit-learn's 8 x 8 digits (the optional extra ``train``) and
records real W, X and dY masks into a trace; docs/training.md describes the
algorithm and its results.
"""

from procrustes_sim.training.dropback import DecaySchedule, QuantileSelector, TopKSelector
from procrustes_sim.training.trainer import (SELECTIONS, TrainConfig, TrainResult,
                                             spread_iterations, train)

__all__ = ["DecaySchedule", "QuantileSelector", "SELECTIONS", "TopKSelector", "TrainConfig",
           "TrainResult", "spread_iterations", "train"]
