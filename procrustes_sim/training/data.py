"""Training data: scikit-learn's 8 x 8 handwritten digits, resized to a network's input.

``sklearn.datasets.load_digits`` reads the 1,797 labelled images from a file
inside the scikit-learn package, so nothing is downloaded at run time.
scikit-learn is the optional extra ``train`` (``pip install .[train]``).

Each image (values 0 to 16) is scaled to [0, 1], resized to the first
layer's H x W by nearest-neighbour sampling (8 x 8 to 32 x 32 repeats every
pixel 4 x 4 times) and copied into each of its C channels. The mean is not
subtracted, so the blank background stays exactly zero, as the zeros of a
real input would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from procrustes_sim.errors import InputError

DATASET_NAME = "sklearn-digits-8x8"
CLASSES = 10
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """Train and held-out images (NHWC float32) with their labels."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_digits_dataset(height: int, width: int, channels: int, seed: int) -> Dataset:
    """Load the digits, resize them to (height, width, channels) and split 80/20 by *seed*."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("training needs scikit-learn for its digits data set; install it "
                         "with `pip install 'procrustes-sim[train]'`") from None
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    labels = digits.target.astype(np.int64)

    rows = (np.arange(height) * images.shape[1]) // height
    columns = (np.arange(width) * images.shape[2]) // width
    resized = images[:, rows][:, :, columns]
    stacked = np.repeat(resized[..., None], channels, axis=3)
    stacked = np.ascontiguousarray(stacked, dtype=np.float32)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    order = rng.permutation(len(labels))
    test_count = int(round(len(labels) * TEST_FRACTION))
    test, train = order[:test_count], order[test_count:]
    return Dataset(name=DATASET_NAME, train_images=stacked[train], train_labels=labels[train],
                   test_images=stacked[test], test_labels=labels[test])
