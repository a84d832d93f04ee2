"""Tests of architecture, energy and dataflow configuration loading."""

from __future__ import annotations

import copy
from importlib import resources

import pytest
import yaml

import dataflows
from procrustes_sim.config import (
    ENERGY_ACTIONS,
    load_arch,
    load_energy_table,
    parse_arch,
    parse_energy_table,
)
from procrustes_sim.errors import InputError
from procrustes_sim.workload import PASSES, Dim


def bundled(name: str) -> dict:
    """Parse a bundled configuration file into a dict that tests may change."""
    text = resources.files("procrustes_sim").joinpath("configs", name).read_text()
    return yaml.safe_load(text)


ARCH = bundled("arch-procrustes-256.yaml")
ENERGY = bundled("energy-default-45nm.yaml")
CXN_DATAFLOW = yaml.safe_load(resources.files("dataflows").joinpath("CxN.yaml").read_text())


def problem_text(parse, data) -> str:
    """Return the message of the InputError that *parse* raises for *data*."""
    with pytest.raises(InputError) as caught:
        parse(data, "test.yaml")
    return str(caught.value)


# Architecture -------------------------------------------------------------


@pytest.fixture(scope="module")
def arch():
    return load_arch()


@pytest.mark.parametrize("field, expected", [
    ("name", "procrustes-256"),
    ("pe_rows", 16),
    ("pe_cols", 16),
    ("pe_count", 256),
    ("rf_words", 256),
    ("glb_kib", 128),
    ("glb_banks", 16),
    ("glb_bank_width_bits", 64),
    ("mac_datatype", "fp32"),
    ("word_bits", 32),
    ("glb_words", 32768),
    ("glb_bits_per_cycle", 1024),
])
def test_default_arch_field(arch, field, expected):
    assert getattr(arch, field) == expected


def test_arch_by_path_matches_name(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(ARCH))
    assert load_arch(path) == load_arch("procrustes-256")


def test_parse_arch_lists_every_problem():
    data = copy.deepcopy(ARCH)
    data["pe_array"]["rows"] = 0
    data["pe"]["rf_words"] = -256
    data["glb"]["banks"] = 2.5
    data["noc"]["turbo"] = True
    del data["clock_ghz"]
    message = problem_text(parse_arch, data)
    assert message.startswith("test.yaml: 5 problem(s)")
    for key_path in ("arch.pe_array.rows: 0", "arch.pe.rf_words: -256", "arch.glb.banks: 2.5",
                     "arch.noc.turbo: unknown key", "arch.clock_ghz: missing"):
        assert key_path in message


def test_unknown_key_lists_allowed_keys():
    data = copy.deepcopy(ARCH)
    data["glb"]["ports"] = 2
    message = problem_text(parse_arch, data)
    assert "allowed keys are bank_width_bits, banks, size_kib" in message


def test_unknown_datatype_lists_choices():
    data = copy.deepcopy(ARCH)
    data["pe"]["mac_datatype"] = "fp64"
    message = problem_text(parse_arch, data)
    assert "arch.pe.mac_datatype: 'fp64' is invalid; expected one of fp32" in message


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_size_rejected(tmp_path, value):
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(ARCH).replace("size_kib: 128", f"size_kib: {value}"))
    with pytest.raises(InputError, match=r"arch\.glb\.size_kib: -?(nan|inf) is invalid"):
        load_arch(path)


def test_boolean_size_rejected():
    data = copy.deepcopy(ARCH)
    data["pe_array"]["cols"] = True
    assert "arch.pe_array.cols: True is invalid" in problem_text(parse_arch, data)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(InputError, match=r"unknown arch 'tiny-4'; valid names: procrustes-256"):
        load_arch("tiny-4")


def test_missing_arch_file_named(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(InputError, match="absent.yaml"):
        load_arch(path)


def test_arch_syntax_error_names_line(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\npe_array:\n  rows: 16\n  cols: [16\npe: {}\n")
    with pytest.raises(InputError) as caught:
        load_arch(path)
    assert str(caught.value).startswith(f"{path}:5: invalid YAML")


def test_binary_arch_file_rejected(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        load_arch(path)


def test_arch_not_a_mapping():
    assert "arch: expected a mapping, got list" in problem_text(parse_arch, [1, 2])


# Energy table -------------------------------------------------------------


@pytest.fixture(scope="module")
def energy():
    return load_energy_table()


@pytest.mark.parametrize("action", ENERGY_ACTIONS)
def test_energy_action_has_source(energy, action):
    assert energy.sources[action].strip()


@pytest.mark.parametrize("action", ENERGY_ACTIONS)
def test_energy_action_not_negative(energy, action):
    assert energy[action] >= 0


def test_unknown_energy_lists_valid_names():
    with pytest.raises(InputError,
                       match=r"unknown energy 'default-7nm'; valid names: default-45nm"):
        load_energy_table("default-7nm")


def test_energy_without_source_rejected():
    data = copy.deepcopy(ENERGY)
    del data["actions"]["mac"]["source"]
    assert "energy.actions.mac.source: missing" in problem_text(parse_energy_table, data)


def test_energy_blank_source_rejected():
    data = copy.deepcopy(ENERGY)
    data["actions"]["noc_word"]["source"] = "  "
    message = problem_text(parse_energy_table, data)
    assert "energy.actions.noc_word.source: empty" in message


def test_energy_lists_every_problem():
    data = copy.deepcopy(ENERGY)
    data["actions"]["mac"]["energy_pj"] = -1
    data["actions"]["glb_read"]["energy_pj"] = "cheap"
    del data["actions"]["dram_read_bit"]
    data["actions"]["sram_leak"] = {"energy_pj": 1, "source": "made up"}
    message = problem_text(parse_energy_table, data)
    for key_path in ("energy.actions.mac.energy_pj: -1", "energy.actions.glb_read.energy_pj",
                     "energy.actions.dram_read_bit: missing",
                     "energy.actions.sram_leak: unknown key"):
        assert key_path in message


def test_zero_energy_allowed():
    data = copy.deepcopy(ENERGY)
    data["actions"]["metadata_decode"]["energy_pj"] = 0
    assert parse_energy_table(data, "test.yaml")["metadata_decode"] == 0


# Dataflows ----------------------------------------------------------------


def test_bundled_dataflow_names():
    assert dataflows.available() == ["CxK", "CxN", "KxN"]


@pytest.mark.parametrize("name", dataflows.available())
def test_bundled_dataflow_loads(name):
    flow = dataflows.load(name)
    assert flow.name == name
    assert set(flow.passes) == set(PASSES)


@pytest.mark.parametrize("name", dataflows.available())
def test_bundled_loop_orders_complete(name):
    flow = dataflows.load(name)
    for pass_ in PASSES:
        assert sorted(flow.for_pass(pass_).loop_order) == sorted(Dim)


def test_cxn_maps_c_and_n():
    forward = dataflows.load("CxN").for_pass(PASSES[0])
    assert (forward.rows, forward.cols) == (Dim.C, Dim.N)


def test_dataflow_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    data = copy.deepcopy(CXN_DATAFLOW)
    del data["name"]
    path.write_text(yaml.safe_dump(data))
    assert dataflows.load(path).name == "mine"


def test_unknown_dataflow_lists_names():
    with pytest.raises(InputError, match=r"unknown dataflow 'NxN'; valid names: CxK, CxN, KxN"):
        dataflows.load("NxN")


def test_duplicate_spatial_dims_rejected():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["BW"]["spatial"] = {"rows": "C", "cols": "C"}
    message = problem_text(dataflows.parse, data)
    assert "dataflow.passes.BW.spatial: rows and cols are both C" in message


def test_repeated_loop_dim_rejected():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["WU"]["loop_order"] = ["N", "C", "P", "Q", "K", "R", "R"]
    message = problem_text(dataflows.parse, data)
    assert "dataflow.passes.WU.loop_order:" in message
    assert "exactly once" in message


def test_unknown_loop_dim_rejected():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["FW"]["loop_order"] = ["N", "C", "P", "Q", "K", "R", "T"]
    message = problem_text(dataflows.parse, data)
    assert "dataflow.passes.FW.loop_order: 'T' is not a dimension" in message


def test_loop_order_not_list_rejected():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["FW"]["loop_order"] = "NCPQKRS"
    message = problem_text(dataflows.parse, data)
    assert "dataflow.passes.FW.loop_order: expected a list" in message


def test_spatial_dim_in_rf_tile_rejected():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["FW"]["rf_tile"] = {"N": 2}
    message = problem_text(dataflows.parse, data)
    assert "dataflow.passes.FW.rf_tile.N: a spatial dimension" in message


@pytest.mark.parametrize("extent", [0, -2, "most", 1.5, True])
def test_bad_extent_rejected(extent):
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["BW"]["rf_tile"] = {"P": extent}
    message = problem_text(dataflows.parse, data)
    assert f"dataflow.passes.BW.rf_tile.P: {extent!r} is invalid" in message


def test_dataflow_lists_every_problem():
    data = copy.deepcopy(CXN_DATAFLOW)
    data["passes"]["FW"]["spatial"] = {"rows": "K", "cols": "K"}
    data["passes"]["WU"]["glb_tile"] = {"Z": 2}
    data["passes"]["BW"]["tiling"] = "fast"
    message = problem_text(dataflows.parse, data)
    assert message.startswith("test.yaml: 3 problem(s)")
