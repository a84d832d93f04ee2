"""Tests of the trace file format: writer, reader, checks and synthesize()."""

import json
import math
import pickle
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procrustes_sim.errors import InputError
from procrustes_sim.trace import (
    FORMAT_VERSION,
    LayerMasks,
    Trace,
    TraceWriter,
    member_path,
    synthesize,
)
from procrustes_sim.workload import Layer, Workload


def make_workload(name="tiny"):
    """Two convolutions, a grouped convolution and a fully connected layer."""
    return Workload(name, (
        Layer("features.0", "conv", C=3, K=8, H=8, W=8, R=3, S=3, padding=1),
        Layer("features.3", "conv", C=8, K=16, H=8, W=8, R=3, S=3, stride=2, padding=1),
        Layer("grouped", "conv", C=16, K=16, H=4, W=4, R=3, S=3, padding=1, groups=4),
        Layer("classifier", "fc", C=256, K=10, H=1, W=1, R=1, S=1),
    ))


def random_masks(layer, batch, rng, density=0.3):
    shapes = (layer.weight_shape, layer.input_shape(batch), layer.output_shape(batch))
    return LayerMasks(*(rng.random(shape) < density for shape in shapes))


def write_trace(path, workload, batch, iterations=(0,), seed=0):
    """Write random masks and return them keyed by (iteration, layer name)."""
    rng = np.random.default_rng(seed)
    written = {}
    with TraceWriter(path, workload, batch, False, {"generator": "test"}) as writer:
        for iteration in iterations:
            for layer in workload.layers:
                masks = random_masks(layer, batch, rng)
                writer.add(iteration, layer.name, masks)
                written[(iteration, layer.name)] = masks
    return written


def assert_masks_equal(loaded, expected):
    for field in ("weights", "inputs", "output_grads"):
        actual = getattr(loaded, field)
        expected_array = np.asarray(getattr(expected, field)).astype(bool)
        assert actual.dtype == np.bool_, field
        assert actual.shape == expected_array.shape, field
        assert np.array_equal(actual, expected_array), field


def member_data_offset(path, member):
    """Return the file offset of the first data byte of a stored member."""
    with zipfile.ZipFile(path) as archive:
        header_offset = archive.getinfo(member).header_offset
    with open(path, "rb") as file:
        file.seek(header_offset)
        header = file.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return header_offset + 30 + name_length + extra_length


def flip_member_byte(path, member, index=0):
    offset = member_data_offset(path, member) + index
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0xFF]))


def rewrite_archive(source, target, replacements=None, omit=()):
    """Copy a ZIP archive, replacing some members' bytes and leaving some out."""
    replacements = replacements or {}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in omit:
                continue
            data = replacements.get(info.filename, old.read(info.filename))
            new.writestr(info.filename, data)


def edit_manifest(path, change):
    """Rewrite the manifest of *path* in place through change(manifest)."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    change(manifest)
    edited = path.with_name("edited.pstrace")
    rewrite_archive(path, edited, {"manifest.json": json.dumps(manifest)})
    edited.replace(path)


@pytest.fixture
def workload():
    return make_workload()


@pytest.fixture
def trace_file(tmp_path, workload):
    path = tmp_path / "tiny.pstrace"
    written = write_trace(path, workload, batch=2, iterations=(0, 5))
    return path, written


# Round trips.

@st.composite
def layers(draw):
    groups = draw(st.integers(1, 3))
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    return Layer(
        name=draw(st.text(min_size=1, max_size=8)),
        kind="conv",
        C=groups * draw(st.integers(1, 3)),
        K=groups * draw(st.integers(1, 3)),
        H=height,
        W=width,
        R=draw(st.integers(1, height)),
        S=draw(st.integers(1, width)),
        stride=draw(st.integers(1, 2)),
        padding=draw(st.integers(0, 1)),
        groups=groups,
    )


densities = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layer_list=st.lists(layers(), min_size=1, max_size=3,
                           unique_by=lambda layer: layer.name),
       batch=st.integers(1, 3),
       iterations=st.lists(st.integers(0, 1000), min_size=1, max_size=2, unique=True),
       density=densities,
       seed=st.integers(0, 2**32 - 1))
def test_round_trip_random_masks(tmp_path_factory, layer_list, batch, iterations,
                                 density, seed):
    workload = Workload("random", tuple(layer_list))
    path = tmp_path_factory.mktemp("round_trip") / "random.pstrace"
    rng = np.random.default_rng(seed)
    written = {}
    with TraceWriter(path, workload, batch, False, {}) as writer:
        for iteration in iterations:
            for layer in workload.layers:
                masks = random_masks(layer, batch, rng, density)
                writer.add(iteration, layer.name, masks)
                written[(iteration, layer.name)] = masks

    trace = Trace.open(path)
    assert trace.iterations == tuple(sorted(iterations))
    assert trace.layer_names == tuple(layer.name for layer in workload.layers)
    for (iteration, name), masks in written.items():
        assert_masks_equal(trace.load(iteration, name), masks)


@pytest.mark.parametrize("fill", [False, True])
def test_round_trip_uniform_masks(tmp_path, workload, fill):
    path = tmp_path / "uniform.pstrace"
    with TraceWriter(path, workload, 3, False, {}) as writer:
        for layer in workload.layers:
            shapes = (layer.weight_shape, layer.input_shape(3), layer.output_shape(3))
            writer.add(0, layer.name, LayerMasks(*(np.full(shape, fill) for shape in shapes)))

    trace = Trace.open(path)
    for layer in workload.layers:
        loaded = trace.load(0, layer.name)
        assert loaded.density() == {"W": float(fill), "X": float(fill), "dY": float(fill)}


def test_round_trip_integer_masks(tmp_path, workload):
    path = tmp_path / "integers.pstrace"
    rng = np.random.default_rng(1)
    written = {}
    with TraceWriter(path, workload, 2, False, {}) as writer:
        for layer in workload.layers:
            masks = random_masks(layer, 2, rng)
            as_integers = LayerMasks(masks.weights.astype(np.uint8),
                                     masks.inputs.astype(np.int64),
                                     masks.output_grads.astype(np.int8))
            writer.add(0, layer.name, as_integers)
            written[layer.name] = masks

    trace = Trace.open(path)
    for name, masks in written.items():
        assert_masks_equal(trace.load(0, name), masks)


def test_round_trip_non_contiguous_mask(tmp_path):
    layer = Layer("square", "conv", C=4, K=4, H=5, W=5, R=3, S=3)
    workload = Workload("square", (layer,))
    rng = np.random.default_rng(2)
    weights = (rng.random((3, 3, 4, 4)) < 0.5).transpose(2, 3, 0, 1)
    inputs = rng.random(layer.input_shape(1)) < 0.5
    grads = rng.random(layer.output_shape(1)) < 0.5
    masks = LayerMasks(weights, inputs, grads)
    path = tmp_path / "square.pstrace"
    with TraceWriter(path, workload, 1, False, {}) as writer:
        writer.add(0, "square", masks)

    assert_masks_equal(Trace.open(path).load(0, "square"), masks)


def test_bits_are_msb_first(tmp_path):
    layer = Layer("one", "fc", C=12, K=1, H=1, W=1, R=1, S=1)
    workload = Workload("one", (layer,))
    weights = np.zeros(layer.weight_shape, dtype=bool)
    weights[0, 0, 0, 0] = True
    weights[0, 9, 0, 0] = True
    path = tmp_path / "one.pstrace"
    with TraceWriter(path, workload, 1, False, {}) as writer:
        writer.add(0, "one", LayerMasks(weights, np.ones((1, 12, 1, 1), bool),
                                        np.zeros((1, 1, 1, 1), bool)))

    with zipfile.ZipFile(path) as archive:
        data = archive.read("masks/0/one/W.bits")
    assert data == bytes([0b1000_0000, 0b0100_0000])


def test_layer_names_become_safe_paths(tmp_path):
    names = ["features.0", "../escape", "a/b", "..", "conv é"]
    workload = Workload("odd", tuple(
        Layer(name, "fc", C=2, K=2, H=1, W=1, R=1, S=1) for name in names))
    path = tmp_path / "odd.pstrace"
    written = write_trace(path, workload, batch=1)

    with zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name != "manifest.json"]
    for member in members:
        parts = member.split("/")
        assert len(parts) == 4, member
        assert ".." not in parts, member
        assert "." not in parts, member
    trace = Trace.open(path)
    for name in names:
        assert_masks_equal(trace.load(0, name), written[(0, name)])


def test_member_path_escapes_dot():
    assert member_path(3, "features.0", "dY") == "masks/3/features%2E0/dY.bits"


def test_manifest_records_layers_and_arrays(trace_file, workload):
    path, written = trace_file
    manifest = Trace.open(path).manifest

    assert manifest["format"] == "procrustes-sim-trace"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["workload"] == "tiny"
    assert manifest["batch"] == 2
    assert manifest["iterations"] == [0, 5]
    assert manifest["synthetic"] is False
    assert manifest["provenance"]["generator"] == "test"
    assert manifest["provenance"]["created_by"].startswith("procrustes-sim ")
    grouped = manifest["layers"][2]
    assert grouped == {"name": "grouped", "weight_shape": [16, 4, 3, 3],
                       "input_shape": [2, 16, 4, 4], "output_shape": [2, 16, 4, 4]}
    assert len(manifest["arrays"]) == 2 * len(workload.layers) * 3
    record = next(item for item in manifest["arrays"]
                  if item["path"] == "masks/5/classifier/X.bits")
    assert record["shape"] == [2, 256, 1, 1]
    assert record["nnz"] == int(written[(5, "classifier")].inputs.sum())


def test_open_exposes_properties(trace_file):
    path, _ = trace_file
    trace = Trace.open(path)

    assert trace.path == path
    assert trace.workload_name == "tiny"
    assert trace.batch == 2
    assert trace.iterations == (0, 5)
    assert trace.layer_names == ("features.0", "features.3", "grouped", "classifier")
    assert trace.synthetic is False
    assert trace.provenance["generator"] == "test"


def test_pickled_trace_still_loads(trace_file):
    path, written = trace_file
    trace = Trace.open(path)
    copy = pickle.loads(pickle.dumps(trace))

    assert_masks_equal(copy.load(5, "grouped"), written[(5, "grouped")])


def test_closed_trace_reopens_on_load(trace_file):
    path, written = trace_file
    with Trace.open(path) as trace:
        trace.load(0, "grouped")
    assert_masks_equal(trace.load(0, "features.0"), written[(0, "features.0")])


# Lazy loading and corruption.

def test_open_skips_mask_members(trace_file):
    path, _ = trace_file
    with zipfile.ZipFile(path) as archive:
        members = [name for name in archive.namelist() if name != "manifest.json"]
    for member in members:
        flip_member_byte(path, member)

    assert Trace.open(path).iterations == (0, 5)


def test_load_skips_other_layers(trace_file):
    path, written = trace_file
    flip_member_byte(path, "masks/0/classifier/W.bits")
    trace = Trace.open(path)

    assert_masks_equal(trace.load(0, "features.0"), written[(0, "features.0")])
    assert_masks_equal(trace.load(5, "classifier"), written[(5, "classifier")])
    with pytest.raises(InputError, match="checksum mismatch"):
        trace.load(0, "classifier")


def test_flipped_byte_fails_checksum(trace_file):
    path, _ = trace_file
    flip_member_byte(path, "masks/5/grouped/X.bits", index=3)

    with pytest.raises(InputError, match="checksum mismatch.*regenerate it"):
        Trace.open(path).load(5, "grouped")


def test_replaced_member_fails_sha256(trace_file, tmp_path):
    path, _ = trace_file
    member = "masks/0/features.3/W.bits".replace("features.3", "features%2E3")
    with zipfile.ZipFile(path) as archive:
        data = bytearray(archive.read(member))
    data[0] ^= 0x01
    damaged = tmp_path / "damaged.pstrace"
    rewrite_archive(path, damaged, {member: bytes(data)})

    with pytest.raises(InputError, match="checksum mismatch.*SHA-256"):
        Trace.open(damaged).load(0, "features.3")


def test_missing_member_rejected(trace_file, tmp_path):
    path, _ = trace_file
    damaged = tmp_path / "damaged.pstrace"
    rewrite_archive(path, damaged, omit={"masks/5/grouped/dY.bits"})
    trace = Trace.open(damaged)

    with pytest.raises(InputError, match="missing member masks/5/grouped/dY.bits"):
        trace.load(5, "grouped")


@pytest.mark.parametrize("keep", [0, 100, 0.5, 0.99])
def test_truncated_file_rejected(trace_file, keep):
    path, _ = trace_file
    data = path.read_bytes()
    length = keep if isinstance(keep, int) else int(len(data) * keep)
    path.write_bytes(data[:length])

    with pytest.raises(InputError, match="not a ZIP archive or is truncated"):
        Trace.open(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Trace.open(tmp_path / "absent.pstrace")


def test_directory_path_rejected(tmp_path):
    with pytest.raises(InputError, match="is not a file"):
        Trace.open(tmp_path)


def test_non_zip_file_rejected(tmp_path):
    path = tmp_path / "text.pstrace"
    path.write_text("N,K,C\n1,2,3\n")

    with pytest.raises(InputError, match="not a ZIP archive"):
        Trace.open(path)


def test_missing_manifest_rejected(trace_file, tmp_path):
    path, _ = trace_file
    damaged = tmp_path / "damaged.pstrace"
    rewrite_archive(path, damaged, omit={"manifest.json"})

    with pytest.raises(InputError, match="has no manifest.json"):
        Trace.open(damaged)


def test_invalid_json_manifest_rejected(trace_file, tmp_path):
    path, _ = trace_file
    damaged = tmp_path / "damaged.pstrace"
    rewrite_archive(path, damaged, {"manifest.json": b"{not json"})

    with pytest.raises(InputError, match="not valid JSON"):
        Trace.open(damaged)


def test_wrong_format_rejected(trace_file):
    path, _ = trace_file
    edit_manifest(path, lambda manifest: manifest.update(format="other-trace"))

    with pytest.raises(InputError, match="not a procrustes-sim trace"):
        Trace.open(path)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unknown_format_version_rejected(trace_file, version):
    path, _ = trace_file
    edit_manifest(path, lambda manifest: manifest.update(format_version=version))

    with pytest.raises(InputError) as caught:
        Trace.open(path)
    message = str(caught.value)
    assert f"format version {version!r}" in message
    assert "reads only version 1" in message


@pytest.mark.parametrize("key, value", [
    ("batch", 0),
    ("iterations", [5, 0]),
    ("iterations", []),
    ("synthetic", "no"),
    ("layers", []),
    ("arrays", "none"),
])
def test_invalid_manifest_value_rejected(trace_file, key, value):
    path, _ = trace_file
    edit_manifest(path, lambda manifest: manifest.update({key: value}))

    with pytest.raises(InputError, match=f"invalid manifest: {key}"):
        Trace.open(path)


def test_manifest_missing_record_rejected(trace_file):
    path, _ = trace_file
    removed_path = "masks/5/classifier/dY.bits"

    def drop_record(manifest):
        manifest["arrays"] = [item for item in manifest["arrays"]
                              if item["path"] != removed_path]

    edit_manifest(path, drop_record)
    with pytest.raises(InputError, match=f"arrays has no {removed_path}"):
        Trace.open(path)


def test_unknown_manifest_keys_ignored(trace_file):
    path, written = trace_file
    edit_manifest(path, lambda manifest: manifest.update(comment="added by a newer writer"))

    assert_masks_equal(Trace.open(path).load(0, "grouped"), written[(0, "grouped")])


def test_unknown_iteration_lists_valid(trace_file):
    path, _ = trace_file
    with pytest.raises(InputError, match="no iteration 3; its iterations are 0, 5"):
        Trace.open(path).load(3, "grouped")


def test_unknown_layer_lists_valid(trace_file):
    path, _ = trace_file
    with pytest.raises(InputError, match="no layer 'fc8'; its layers are features.0, "):
        Trace.open(path).load(0, "fc8")


# Writer input checks.

def test_wrong_shape_names_layer(tmp_path, workload):
    layer = workload.layer("features.3")
    masks = random_masks(layer, 2, np.random.default_rng(0))
    wrong = LayerMasks(masks.weights, masks.inputs, masks.output_grads[:, :, :2])
    with TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {}) as writer:
        with pytest.raises(InputError) as caught:
            writer.add(0, "features.3", wrong)
        writer.discard()
    message = str(caught.value)
    assert "'features.3'" in message
    assert "tensor dY" in message
    assert "(2, 16, 2, 4)" in message
    assert "(2, 16, 4, 4)" in message


@pytest.mark.parametrize("make_bad, expected", [
    (lambda mask: np.where(mask, 2, 0), "contains the value 2"),
    (lambda mask: np.where(mask, np.nan, 0.0), "dtype float64"),
    (lambda mask: mask.astype(object), "dtype object"),
    (lambda mask: mask.astype(np.float32), "dtype float32"),
])
def test_non_boolean_mask_rejected(tmp_path, workload, make_bad, expected):
    layer = workload.layer("grouped")
    masks = random_masks(layer, 2, np.random.default_rng(0))
    bad = LayerMasks(make_bad(masks.weights), masks.inputs, masks.output_grads)
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    with pytest.raises(InputError, match=expected) as caught:
        writer.add(0, "grouped", bad)
    writer.discard()
    assert "layer 'grouped' tensor W" in str(caught.value)


def test_rejected_add_keeps_writer_usable(tmp_path, workload):
    path = tmp_path / "t.pstrace"
    rng = np.random.default_rng(0)
    with TraceWriter(path, workload, 2, False, {}) as writer:
        good = random_masks(workload.layers[0], 2, rng)
        with pytest.raises(InputError):
            writer.add(0, workload.layers[0].name,
                       LayerMasks(good.weights.astype(float), good.inputs, good.output_grads))
        for layer in workload.layers:
            writer.add(0, layer.name, random_masks(layer, 2, rng))

    assert Trace.open(path).layer_names[0] == "features.0"


def test_unknown_layer_add_rejected(tmp_path, workload):
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    masks = random_masks(workload.layers[0], 2, np.random.default_rng(0))
    with pytest.raises(InputError, match="no layer 'conv9'"):
        writer.add(0, "conv9", masks)
    writer.discard()


def test_negative_iteration_rejected(tmp_path, workload):
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    masks = random_masks(workload.layers[0], 2, np.random.default_rng(0))
    with pytest.raises(InputError, match="iteration -1 is invalid"):
        writer.add(-1, "features.0", masks)
    writer.discard()


def test_duplicate_add_rejected(tmp_path, workload):
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    masks = random_masks(workload.layers[0], 2, np.random.default_rng(0))
    writer.add(0, "features.0", masks)
    with pytest.raises(InputError, match="already added"):
        writer.add(0, "features.0", masks)
    writer.discard()


def test_unserializable_provenance_rejected(tmp_path, workload):
    with pytest.raises(InputError, match="provenance cannot be stored as JSON"):
        TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {"when": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_rejected(tmp_path, workload):
    with pytest.raises(InputError, match="does not exist"):
        TraceWriter(tmp_path / "absent" / "t.pstrace", workload, 2, False, {})


# Atomic writing.

def test_missing_layer_at_close(tmp_path, workload):
    path = tmp_path / "t.pstrace"
    rng = np.random.default_rng(0)
    writer = TraceWriter(path, workload, 2, False, {})
    for layer in workload.layers:
        writer.add(0, layer.name, random_masks(layer, 2, rng))
    for layer in workload.layers[:2]:
        writer.add(1, layer.name, random_masks(layer, 2, rng))

    with pytest.raises(InputError) as caught:
        writer.close()
    message = str(caught.value)
    assert "iteration 1 is missing grouped, classifier" in message
    assert "iteration 0" not in message
    assert list(tmp_path.iterdir()) == []


def test_close_without_masks_rejected(tmp_path, workload):
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    with pytest.raises(InputError, match="no masks were added"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_streams_to_hidden_file(tmp_path, workload):
    path = tmp_path / "t.pstrace"
    rng = np.random.default_rng(0)
    with TraceWriter(path, workload, 2, False, {}) as writer:
        writer.add(0, "features.0", random_masks(workload.layers[0], 2, rng))
        during = [item.name for item in tmp_path.iterdir()]
        for layer in workload.layers[1:]:
            writer.add(0, layer.name, random_masks(layer, 2, rng))

    assert len(during) == 1
    assert during[0].startswith(".t.pstrace.")
    assert [item.name for item in tmp_path.iterdir()] == ["t.pstrace"]


def test_writer_exception_leaves_nothing(tmp_path, workload):
    path = tmp_path / "t.pstrace"
    with pytest.raises(RuntimeError, match="interrupted"):
        with TraceWriter(path, workload, 2, False, {}) as writer:
            writer.add(0, "features.0",
                       random_masks(workload.layers[0], 2, np.random.default_rng(0)))
            raise RuntimeError("interrupted")

    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_old_trace(trace_file, workload):
    path, written = trace_file
    old_bytes = path.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"):
        with TraceWriter(path, workload, 2, False, {}) as writer:
            writer.add(0, "features.0",
                       random_masks(workload.layers[0], 2, np.random.default_rng(9)))
            raise RuntimeError("interrupted")

    assert path.read_bytes() == old_bytes
    assert [item.name for item in path.parent.iterdir()] == [path.name]


def test_collected_writer_removes_temp(tmp_path, workload):
    writer = TraceWriter(tmp_path / "t.pstrace", workload, 2, False, {})
    writer.add(0, "features.0", random_masks(workload.layers[0], 2, np.random.default_rng(0)))
    del writer

    assert list(tmp_path.iterdir()) == []


def test_add_after_close_rejected(tmp_path, workload):
    path = tmp_path / "t.pstrace"
    rng = np.random.default_rng(0)
    writer = TraceWriter(path, workload, 2, False, {})
    for layer in workload.layers:
        writer.add(0, layer.name, random_masks(layer, 2, rng))
    assert writer.close() == path
    assert writer.close() == path
    with pytest.raises(ValueError, match="is closed"):
        writer.add(1, "features.0", random_masks(workload.layers[0], 2, rng))


# Workload checks and labels.

def test_check_workload_accepts_match(trace_file, workload):
    path, _ = trace_file
    Trace.open(path).check_workload(workload)


def test_check_workload_names_layer(trace_file):
    path, _ = trace_file
    layers = list(make_workload().layers)
    layers[1] = Layer("features.3", "conv", C=8, K=32, H=8, W=8, R=3, S=3, stride=2,
                      padding=1)
    changed = Workload("tiny", tuple(layers))

    with pytest.raises(InputError) as caught:
        Trace.open(path).check_workload(changed)
    message = str(caught.value)
    assert message.startswith("layer 'features.3'")
    assert "(16, 8, 3, 3)" in message
    assert "(32, 8, 3, 3)" in message


def test_check_workload_rejects_other_name(trace_file):
    path, _ = trace_file
    with pytest.raises(InputError, match="recorded for workload 'tiny', not 'vgg_s'"):
        Trace.open(path).check_workload(make_workload("vgg_s"))


def test_check_workload_rejects_missing_layer(trace_file):
    path, _ = trace_file
    extra = Layer("fc2", "fc", C=10, K=10, H=1, W=1, R=1, S=1)
    bigger = Workload("tiny", make_workload().layers + (extra,))

    with pytest.raises(InputError, match="no layer 'fc2'"):
        Trace.open(path).check_workload(bigger)


def test_check_workload_rejects_reordering(trace_file):
    path, _ = trace_file
    reordered = Workload("tiny", tuple(reversed(make_workload().layers)))

    with pytest.raises(InputError, match="another order"):
        Trace.open(path).check_workload(reordered)


def test_describe_synthetic_trace(tmp_path, workload):
    path = synthesize(workload, 2, tmp_path / "s.pstrace", density=0.1, seed=7)
    assert Trace.open(path).describe() == (
        "synthetic Bernoulli trace of tiny (W density 0.10, X 0.50, dY 0.50, seed 7)")


def test_describe_keeps_small_density(tmp_path, workload):
    path = synthesize(workload, 1, tmp_path / "s.pstrace", density=0.125,
                      act_density=0.001)
    assert "(W density 0.125, X 0.001, dY 0.50," in Trace.open(path).describe()


def test_describe_recorded_trace(trace_file):
    path, _ = trace_file
    assert Trace.open(path).describe() == "trace of tiny from test"


def test_layer_masks_density():
    masks = LayerMasks(np.array([[[[True, False, False, False]]]]),
                       np.ones((1, 1, 2, 2), dtype=bool),
                       np.zeros((1, 1, 1, 1), dtype=bool))
    assert masks.density() == {"W": 0.25, "X": 1.0, "dY": 0.0}


# synthesize().

def test_synthesize_is_deterministic(tmp_path, workload):
    first = synthesize(workload, 2, tmp_path / "a.pstrace", density=0.2, iterations=2, seed=3)
    second = synthesize(workload, 2, tmp_path / "b.pstrace", density=0.2, iterations=2, seed=3)
    assert first.read_bytes() == second.read_bytes()


def test_synthesize_seed_changes_masks(tmp_path, workload):
    first = synthesize(workload, 2, tmp_path / "a.pstrace", density=0.2, seed=3)
    second = synthesize(workload, 2, tmp_path / "b.pstrace", density=0.2, seed=4)
    assert first.read_bytes() != second.read_bytes()
    weights_a = Trace.open(first).load(0, "grouped").weights
    weights_b = Trace.open(second).load(0, "grouped").weights
    assert not np.array_equal(weights_a, weights_b)


def test_synthesize_records_provenance(tmp_path, workload):
    path = synthesize(workload, 2, tmp_path / "s.pstrace", density=0.2, act_density=0.4,
                      grad_density=0.6, iterations=3, seed=11)
    trace = Trace.open(path)

    assert trace.synthetic is True
    assert trace.iterations == (0, 1, 2)
    assert trace.provenance["generator"] == "bernoulli"
    assert trace.provenance["seed"] == 11
    assert trace.provenance["density"] == 0.2
    assert trace.provenance["act_density"] == 0.4
    assert trace.provenance["grad_density"] == 0.6
    trace.check_workload(workload)


def test_synthesize_layers_are_independent(tmp_path, workload):
    extra = Layer("fc2", "fc", C=10, K=10, H=1, W=1, R=1, S=1)
    bigger = Workload("tiny", workload.layers + (extra,))
    small = Trace.open(synthesize(workload, 2, tmp_path / "a.pstrace", density=0.3))
    large = Trace.open(synthesize(bigger, 2, tmp_path / "b.pstrace", density=0.3))

    for name in small.layer_names:
        assert_masks_equal(large.load(0, name), small.load(0, name))


def test_synthesize_weights_ignore_batch(tmp_path, workload):
    batch_one = Trace.open(synthesize(workload, 1, tmp_path / "a.pstrace", density=0.3))
    batch_four = Trace.open(synthesize(workload, 4, tmp_path / "b.pstrace", density=0.3))

    assert np.array_equal(batch_one.load(0, "grouped").weights,
                          batch_four.load(0, "grouped").weights)


def test_synthesize_density_near_request(tmp_path):
    layer = Layer("large", "conv", C=64, K=64, H=32, W=32, R=3, S=3, padding=1)
    workload = Workload("large", (layer,))
    path = synthesize(workload, 8, tmp_path / "large.pstrace", density=0.1,
                      act_density=0.6, grad_density=0.35, seed=5)
    measured = Trace.open(path).load(0, "large").density()

    # W has 36864 elements, so 0.01 is about six standard deviations.
    assert measured["W"] == pytest.approx(0.1, abs=0.01)
    assert measured["X"] == pytest.approx(0.6, abs=0.01)
    assert measured["dY"] == pytest.approx(0.35, abs=0.01)


@pytest.mark.parametrize("density", [0.0, 1.0])
def test_synthesize_extreme_densities(tmp_path, workload, density):
    path = synthesize(workload, 2, tmp_path / "s.pstrace", density=density,
                      act_density=density, grad_density=density)
    measured = Trace.open(path).load(0, "features.3").density()
    assert measured == {"W": density, "X": density, "dY": density}


@pytest.mark.parametrize("arguments, expected", [
    ({"density": -0.1}, r"density=-0.1 is invalid; it must be a number from 0 to 1"),
    ({"density": 1.5}, r"density=1.5 is invalid"),
    ({"density": math.nan}, r"density=nan is invalid"),
    ({"density": 0.1, "act_density": 2}, r"act_density=2 is invalid"),
    ({"density": 0.1, "grad_density": -1}, r"grad_density=-1 is invalid"),
    ({"density": 0.1, "iterations": 0}, r"iterations=0 is invalid; it must be an integer"),
    ({"density": 0.1, "seed": -1}, r"seed=-1 is invalid"),
])
def test_synthesize_rejects_bad_arguments(tmp_path, workload, arguments, expected):
    with pytest.raises(InputError, match=expected):
        synthesize(workload, 2, tmp_path / "s.pstrace", **arguments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("batch", [0, -3, 1.5])
def test_synthesize_rejects_bad_batch(tmp_path, workload, batch):
    with pytest.raises(InputError, match=f"batch={batch!r} is invalid"):
        synthesize(workload, batch, tmp_path / "s.pstrace", density=0.1)
    assert list(tmp_path.iterdir()) == []
