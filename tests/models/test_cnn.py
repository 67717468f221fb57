"""LeNet and ResNet: shapes on 8x8, 28x28 and 32x32 inputs, norms, dropout, no pooling below 1x1."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from practicum.config import LeNetConfig, ResNetConfig
from practicum.models import LeNet, ResNet, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
LENET = dict(channels=[8, 16], hidden_size=16)
RESNET = dict(widths=[8, 16], blocks=[1, 1])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_lenet_shapes(spec_of, shape, norm):
    model = build_model(LeNetConfig(**LENET, norm=norm), spec_of("image", image_shape=shape), 10)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_resnet_shapes(spec_of, shape, norm):
    model = build_model(ResNetConfig(**RESNET, norm=norm), spec_of("image", image_shape=shape), 10)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 8, 8), (16, 2, 2)), ((1, 28, 28), (16, 7, 7)), ((3, 32, 32), (16, 8, 8)), ((1, 7, 9), (16, 1, 2))],
)
def test_lenet_feature_shape_is_what_runs(shape, expected):
    model = LeNet(LeNetConfig(**LENET), shape, 3)
    assert model.feature_shape == expected
    assert model.features(torch.randn(2, *shape)).shape[1:] == expected


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((1, 8, 8), (16, 4, 4)), ((1, 28, 28), (16, 14, 14)), ((3, 32, 32), (16, 16, 16)), ((1, 7, 9), (16, 4, 5))],
)
def test_resnet_feature_shape_is_what_runs(shape, expected):
    model = ResNet(ResNetConfig(**RESNET), shape, 3)
    assert model.feature_shape == expected
    assert model.stages(model.stem(torch.randn(2, *shape))).shape[1:] == expected


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # a perf note
@pytest.mark.parametrize("kernel", [1, 3, 4, 5])
def test_lenet_convs_keep_the_size_for_any_kernel(kernel):
    model = LeNet(LeNetConfig(**LENET, kernel_size=kernel), (1, 28, 28), 3)
    assert model.features(torch.randn(2, 1, 28, 28)).shape[1:] == model.feature_shape == (16, 7, 7)


def test_deep_configs_never_pool_below_one_pixel():
    lenet = LeNet(LeNetConfig(channels=[4, 4, 4, 4, 4], hidden_size=8), (1, 8, 8), 3)
    resnet = ResNet(ResNetConfig(widths=[4, 4, 4, 4, 4, 4], blocks=[1] * 6), (1, 8, 8), 3)
    assert lenet.feature_shape == (4, 1, 1)
    assert resnet.feature_shape == (4, 1, 1)
    x = torch.randn(2, 1, 8, 8)
    assert lenet(x).shape == resnet(x).shape == (2, 3)


def test_resnet_downsamples_from_the_second_stage_with_projections():
    model = ResNet(ResNetConfig(widths=[8, 8, 16], blocks=[2, 1, 1]), (1, 8, 8), 3)
    first, second, third = model.stages
    assert [type(b.shortcut) for b in first] == [nn.Identity, nn.Identity]
    assert first[0].conv1.stride == (1, 1)
    assert second[0].conv1.stride == (2, 2) and isinstance(second[0].shortcut, nn.Sequential)
    assert third[0].conv1.stride == (2, 2) and third[0].shortcut[0].out_channels == 16


@pytest.mark.parametrize(("norm", "cls"), [("batch", nn.BatchNorm2d), ("layer", nn.GroupNorm)])
def test_norm_follows_the_config(norm, cls):
    for model in (LeNet(LeNetConfig(**LENET, norm=norm), (1, 8, 8), 3),
                  ResNet(ResNetConfig(**RESNET, norm=norm), (1, 8, 8), 3)):
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.GroupNorm)]
        assert norms and all(type(m) is cls for m in norms)
        if cls is nn.GroupNorm:
            assert all(m.num_groups == 1 for m in norms)
        # a conv followed by a norm needs no bias
        assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_no_norm_keeps_conv_biases():
    model = ResNet(ResNetConfig(**RESNET, norm="none"), (1, 8, 8), 3)
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_dropout_follows_the_config():
    lenet = LeNet(LeNetConfig(**LENET, dropout=0.3), (1, 8, 8), 3)
    resnet = ResNet(ResNetConfig(**RESNET, dropout=0.4), (1, 8, 8), 3)
    assert [m.p for m in lenet.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    assert [m.p for m in resnet.modules() if isinstance(m, nn.Dropout)] == [0.4]


def test_parameter_counts_are_small_for_tiny_configs():
    lenet = LeNet(LeNetConfig(**LENET), (1, 28, 28), 10)
    resnet = ResNet(ResNetConfig(**RESNET), (1, 28, 28), 10)
    # conv 1->8 (72) + bn (16) + conv 8->16 (1152) + bn (32) + fc 784->16 + 16 + fc 16->10 + 10
    assert sum(p.numel() for p in lenet.parameters()) == 72 + 16 + 1152 + 32 + 16 * 7 * 7 * 16 + 16 + 170
    assert 5_000 < sum(p.numel() for p in resnet.parameters()) < 10_000


def test_channels_last_input_gives_the_same_outputs() -> None:
    import torch

    from practicum.models.cnn import nhwc

    image = torch.randn(4, 3, 9, 7)
    fast = nhwc(image)
    assert fast.is_contiguous(memory_format=torch.channels_last) and torch.equal(fast, image)
