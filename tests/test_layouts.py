"""Layouts: exact round trips, sizes by formula and hand-computed cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procrustes_sim.errors import InputError
from procrustes_sim.layouts import LAYOUT_NAMES, get_layout, rle_fillers

shapes = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3))


@st.composite
def masks(draw):
    shape = draw(shapes)
    kind = draw(st.sampled_from(["random", "zeros", "ones"]))
    if kind == "zeros":
        return np.zeros(shape, dtype=bool)
    if kind == "ones":
        return np.ones(shape, dtype=bool)
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**31 - 1))
    return np.random.default_rng(seed).random(shape) < density


@pytest.mark.parametrize("name", LAYOUT_NAMES)
@settings(max_examples=60, deadline=None)
@given(mask=masks(), run_bits=st.integers(1, 5))
def test_round_trip_is_exact(name, mask, run_bits):
    layout = get_layout(name, run_bits=run_bits)
    decoded = layout.decode(layout.encode(mask), mask.shape)
    assert np.array_equal(decoded, mask)


@pytest.mark.parametrize("name", [n for n in LAYOUT_NAMES if n != "dense"])
@settings(max_examples=60, deadline=None)
@given(mask=masks(), run_bits=st.integers(1, 5))
def test_metadata_matches_formula(name, mask, run_bits):
    layout = get_layout(name, run_bits=run_bits)
    encoded = layout.encode(mask)
    _, formula = layout.tensor_bits(mask)
    assert layout.encoded_metadata_bits(encoded) == formula


def test_dense_has_no_metadata():
    mask = np.ones((2, 3, 3, 3), dtype=bool)
    assert get_layout("dense").tensor_bits(mask) == (2 * 3 * 9 * 32, 0)


def test_block_mask_hand_count():
    mask = np.zeros((2, 2, 3, 3), dtype=bool)
    mask[0, 0, 1, 1] = True
    mask[1, 1, 0, :] = True
    # 4 blocks x (9 mask bits + 20 pointer bits); 4 non-zeros x 32 bits.
    assert get_layout("block-mask").tensor_bits(mask) == (4 * 32, 4 * 29)


def test_csr_hand_count():
    mask = np.zeros((4, 2, 2, 2), dtype=bool)
    mask[0, 0, 0, 0] = mask[3, 1, 1, 1] = mask[3, 0, 1, 0] = True
    # 8 columns need 3-bit indices; 5 pointers of 20 bits.
    assert get_layout("csr").tensor_bits(mask) == (3 * 32, 3 * 3 + 5 * 20)


def test_csc_hand_count():
    mask = np.zeros((4, 2, 2, 2), dtype=bool)
    mask[0, 0, 0, 0] = mask[3, 1, 1, 1] = True
    # 4 rows need 2-bit indices; 9 column pointers of 20 bits.
    assert get_layout("csc").tensor_bits(mask) == (2 * 32, 2 * 2 + 9 * 20)


def test_bitmask_hand_count():
    mask = np.zeros((2, 2, 1, 1), dtype=bool)
    mask[1, 0, 0, 0] = True
    assert get_layout("bitmask").tensor_bits(mask) == (32, 4)


def test_rle_fillers_for_long_runs():
    flat = np.zeros((1, 40), dtype=bool)
    flat[0, 39] = True
    # 39 zeros with 2-bit runs: fillers of 4 zeros each, 9 of them, then a run of 3.
    assert rle_fillers(flat, 2)[0] == 9
    layout = get_layout("rle", run_bits=2)
    assert layout.tensor_bits(flat.reshape(1, 40, 1, 1)) == (10 * 32, 10 * 2)


def test_unknown_layout_lists_names():
    with pytest.raises(InputError, match="block-mask"):
        get_layout("coo")


def test_pointer_too_narrow_names_minimum():
    layout = get_layout("csr", pointer_bits=4)
    with pytest.raises(InputError, match="--pointer-bits 5"):
        layout.check_widths("conv1", 16)


def test_zero_run_width_rejected():
    with pytest.raises(InputError, match="run width"):
        get_layout("rle", run_bits=0)
