"""Tests of the bundled topologies and of topology CSV parsing."""

import pytest

import workloads
from procrustes_sim.errors import InputError
from procrustes_sim.workload import CSV_COLUMNS, Layer, load_workload, parse_topology

# Trainable parameters of each bundled network: weights, biases and batch norm
# scale and shift, without batch norm running statistics.
PUBLISHED_PARAMETERS = {
    # No exact figure is published, so this is the sum over the DropBack
    # authors' Chainer VGG (github.com/compstruct/DropBack cifar10/vgg.py,
    # which calls it "~15M"): 13 bias-free 3x3 convs with BN, then a bias-free
    # fc 512->512 with BN and a bias-free fc 512->10.
    "vgg_s": 14_987_200,
    # pytorch-cifar style ResNet18(): sum(p.numel() for p in model.parameters()).
    "resnet18_cifar": 11_173_962,
    # torchvision.models ResNet18_Weights.IMAGENET1K_V1.meta["num_params"].
    "resnet18_imagenet": 11_689_512,
    # imgclsmob weight-count self-check of wrn28_10_cifar10: a pre-activation
    # WRN with bias-free convs and an fc 640->10 with bias.
    "wrn_28_10": 36_479_194,
    # torchvision.models MobileNet_V2_Weights.IMAGENET1K_V1.meta["num_params"].
    "mobilenet_v2": 3_504_872,
    # torchvision.models ResNet50_Weights.IMAGENET1K_V1.meta["num_params"].
    "resnet50_imagenet": 25_557_032,
}

LAYER_COUNTS = {
    "vgg_s": 15,
    "resnet18_cifar": 21,
    "resnet18_imagenet": 21,
    "wrn_28_10": 29,
    "mobilenet_v2": 53,
    "resnet50_imagenet": 54,
}

# (workload, layer, H, P): input rows and output rows checked by hand against
# the network's stride, padding and pooling.
HAND_CHECKED_SIZES = [
    ("vgg_s", "conv1_1", 32, 32),
    ("vgg_s", "conv2_1", 16, 16),
    ("vgg_s", "conv5_3", 2, 2),
    ("resnet18_cifar", "conv1", 32, 32),
    ("resnet18_cifar", "layer2.0.conv1", 32, 16),
    ("resnet18_cifar", "layer2.0.downsample", 32, 16),
    ("resnet18_cifar", "layer4.1.conv2", 4, 4),
    ("resnet18_imagenet", "conv1", 224, 112),
    ("resnet18_imagenet", "layer1.0.conv1", 56, 56),
    ("resnet18_imagenet", "layer4.1.conv2", 7, 7),
    ("wrn_28_10", "block1.0.shortcut", 32, 32),
    ("wrn_28_10", "block3.0.conv1", 16, 8),
    ("wrn_28_10", "block3.3.conv2", 8, 8),
    ("mobilenet_v2", "stem", 224, 112),
    ("mobilenet_v2", "block2.depthwise", 112, 56),
    ("mobilenet_v2", "block14.depthwise", 14, 7),
    ("mobilenet_v2", "head", 7, 7),
    ("resnet50_imagenet", "conv1", 224, 112),
    ("resnet50_imagenet", "layer1.0.conv1", 56, 56),
    ("resnet50_imagenet", "layer2.0.conv2", 56, 28),
    ("resnet50_imagenet", "layer2.0.downsample", 56, 28),
    ("resnet50_imagenet", "layer4.2.conv3", 7, 7),
]

HEADER = ",".join(CSV_COLUMNS)
GOOD_ROW = "conv1,conv,3,8,8,8,3,3,1,1,1,0,1"


def build_csv(*rows: str, header: str = HEADER) -> str:
    """Join a header and rows into topology CSV text."""
    return "\n".join([header, *rows]) + "\n"


def build_row(**changes: str) -> str:
    """Return GOOD_ROW with the named columns replaced."""
    values = dict(zip(CSV_COLUMNS, GOOD_ROW.split(",")))
    values.update(changes)
    return ",".join(values[column] for column in CSV_COLUMNS)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_matches_published(name):
    assert load_workload(name).parameter_count == PUBLISHED_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(LAYER_COUNTS))
def test_layer_count_per_workload(name):
    assert len(load_workload(name).layers) == LAYER_COUNTS[name]


@pytest.mark.parametrize(("name", "layer_name", "height", "rows"), HAND_CHECKED_SIZES)
def test_hand_checked_layer_sizes(name, layer_name, height, rows):
    layer = load_workload(name).layer(layer_name)

    assert layer.H == height
    assert layer.W == height
    assert layer.P == rows
    assert layer.Q == rows


def test_available_lists_all_six():
    assert workloads.available() == sorted(PUBLISHED_PARAMETERS)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_fc_layers_are_one_by_one(name):
    for layer in load_workload(name).layers:
        if layer.kind == "fc":
            assert (layer.H, layer.W, layer.R, layer.S, layer.P, layer.Q) == (1, 1, 1, 1, 1, 1)


def test_macs_of_bottleneck_conv():
    layer = load_workload("resnet50_imagenet").layer("layer1.0.conv2")

    # 64 filters x 64 channels x 3 x 3 x 56 x 56 outputs = 115,605,504 per image.
    assert layer.macs(1) == 115_605_504
    assert layer.macs(4) == 4 * 115_605_504


def test_depthwise_conv_counts():
    layer = load_workload("mobilenet_v2").layer("block2.depthwise")

    assert layer.groups == 96
    assert layer.channels_per_group == 1
    assert layer.weight_shape == (96, 1, 3, 3)
    assert layer.weight_count == 96 * 9
    assert layer.parameter_count == 96 * 9 + 2 * 96
    assert layer.macs(1) == 96 * 9 * 56 * 56


def test_grouped_conv_from_csv():
    text = build_csv(build_row(C="8", K="16", groups="4", bias="1", batchnorm="0"))
    layer = parse_topology(text, "grouped").layers[0]

    assert layer.channels_per_group == 2
    assert layer.filters_per_group == 4
    assert layer.weight_shape == (16, 2, 3, 3)
    assert layer.parameter_count == 16 * 2 * 9 + 16


def test_parse_reads_every_column():
    layer = parse_topology(build_csv(GOOD_ROW), "one").layers[0]

    assert layer == Layer(name="conv1", kind="conv", C=3, K=8, H=8, W=8, R=3, S=3,
                          stride=1, padding=1, groups=1, bias=False, batchnorm=True)


def test_missing_column_is_named():
    header = HEADER.replace(",batchnorm", "")
    row = GOOD_ROW.rsplit(",", 1)[0]

    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(row, header=header), "missing")

    assert "batchnorm" in str(caught.value)


def test_non_integer_value_is_named():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(build_row(K="3.5")), "fractional")

    assert "column K" in str(caught.value)
    assert "'3.5'" in str(caught.value)


def test_invalid_flag_is_named():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(build_row(bias="2")), "flag")

    assert "column bias" in str(caught.value)
    assert "'2'" in str(caught.value)


def test_groups_not_dividing_channels():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(build_row(C="6", groups="4")), "groups")

    assert "groups=4" in str(caught.value)
    assert "C=6" in str(caught.value)


def test_duplicate_layer_name_is_named():
    second = build_row(C="8")

    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(GOOD_ROW, second), "twice")

    assert "duplicate layer name 'conv1'" in str(caught.value)


def test_empty_topology_is_rejected():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(), "empty")

    assert "empty" in str(caught.value)
    assert "no layers" in str(caught.value)


def test_unknown_layer_type_is_named():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(build_row(type="pool")), "pooling")

    assert "'pool'" in str(caught.value)


def test_filter_larger_than_padded_input():
    text = build_csv(build_row(H="2", W="2", R="5", S="5", padding="1"))

    with pytest.raises(InputError) as caught:
        parse_topology(text, "big_filter")

    assert "5x5" in str(caught.value)
    assert "4x4" in str(caught.value)


def test_error_names_the_row():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv(GOOD_ROW, build_row(name="conv2", K="x")), "rows",
                       source="net.csv")

    assert "net.csv:3" in str(caught.value)


def test_unknown_workload_lists_names():
    with pytest.raises(InputError) as caught:
        load_workload("nope")

    message = str(caught.value)
    assert "'nope'" in message
    for name in PUBLISHED_PARAMETERS:
        assert name in message


def test_load_workload_from_path(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(build_csv(GOOD_ROW))

    workload = load_workload(path)

    assert workload.name == "tiny"
    assert workload.source == str(path)
    assert workload.layer("conv1").K == 8


def test_missing_csv_path_lists_names(tmp_path):
    with pytest.raises(InputError) as caught:
        load_workload(tmp_path / "absent.csv")

    assert "absent.csv" in str(caught.value)
    assert "resnet50_imagenet" in str(caught.value)



def test_extra_value_is_rejected():
    with pytest.raises(InputError):
        parse_topology(build_csv(GOOD_ROW + ",7"), "extra")



def test_row_number_after_blank_line():
    with pytest.raises(InputError) as caught:
        parse_topology(build_csv("", build_row(K="x")), "blank", source="net.csv")

    assert "net.csv:3" in str(caught.value)
