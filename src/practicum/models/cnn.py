"""Convolutional image classifiers: a LeNet-style CNN and a small ResNet.

Both track the spatial size while they are built and never pool or stride below 1x1, so the
same config works on 8x8 digits, 28x28 MNIST and 32x32 CIFAR images. On the CPU both run
channels-last (see `nhwc`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from practicum.config import LeNetConfig, ResNetConfig
from practicum.errors import UserError
from practicum.models.build import SpecLike, register_model, require_image_shape
from practicum.models.layers import activation


def norm2d(kind: str, channels: int) -> nn.Module:
    """Normalisation of (N, C, H, W) maps: BatchNorm2d, GroupNorm with one group, or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def nhwc(image: Tensor) -> Tensor:
    """`image` (N, C, H, W) with channels-last strides, on the CPU; other devices get it as is.

    oneDNN then runs every conv, norm, activation and pool after it in NHWC, which trained
    these models 1.1-1.5x faster on a 2-core AVX-512 CPU (benchmarks/README.md). Shape and
    values are unchanged and the weights stay contiguous. A one-channel batch is copied:
    `contiguous(memory_format=...)` would keep its NCHW strides, which fit both layouts.
    """
    if image.device.type != "cpu" or image.dim() != 4:
        return image
    if image.stride(1) == 1 and image.is_contiguous(memory_format=torch.channels_last):
        return image
    out = torch.empty(image.shape, dtype=image.dtype, device=image.device,
                      memory_format=torch.channels_last)
    return out.copy_(image)  # (N, C, H, W), NHWC in memory


def halve(size: int) -> int:
    """2 where a size can still be halved by a 2x2 pool or stride 2, else 1."""
    return 2 if size >= 2 else 1


# ---------------------------------------------------------------- LeNet


class LeNet(nn.Module):
    """Conv blocks (conv -> norm -> act -> 2x2 max-pool), then dropout -> FC -> act -> dropout -> FC."""

    def __init__(self, cfg: LeNetConfig, image_shape: tuple[int, int, int], num_outputs: int) -> None:
        super().__init__()
        c, h, w = image_shape
        blocks: list[nn.Module] = []
        for width in cfg.channels:
            ph, pw = halve(h), halve(w)
            blocks += [
                nn.Conv2d(c, width, cfg.kernel_size, padding="same", bias=cfg.norm == "none"),
                norm2d(cfg.norm, width),
                activation(cfg.activation),
                nn.MaxPool2d((ph, pw)),
            ]
            c, h, w = width, h // ph, w // pw
        self.features = nn.Sequential(*blocks)
        self.feature_shape = (c, h, w)
        """(C, H, W) of the last conv block's output for this input size."""
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (N, C*H*W)
            nn.Dropout(cfg.dropout),
            nn.Linear(c * h * w, cfg.hidden_size),
            activation(cfg.activation),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden_size, num_outputs),
        )

    def forward(self, image: Tensor) -> Tensor:
        """image: (N, C, H, W) float -> (N, num_outputs)."""
        return self.classifier(self.features(nhwc(image)))  # (N, C', H', W') -> (N, num_outputs)


@register_model("lenet", kinds=("image",))
def build_lenet(cfg: LeNetConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    return LeNet(cfg, require_image_shape(spec), num_outputs)


# ---------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection; a 1x1 projection when the shape changes."""

    def __init__(
        self, cfg: ResNetConfig, c_in: int, c_out: int, stride: tuple[int, int] = (1, 1)
    ) -> None:
        super().__init__()
        bias = cfg.norm == "none"
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = norm2d(cfg.norm, c_out)
        self.act1 = activation(cfg.activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias)
        self.norm2 = norm2d(cfg.norm, c_out)
        self.act2 = activation(cfg.activation)
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1) or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=bias), norm2d(cfg.norm, c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.norm1(self.conv1(x)))  # (N, C_out, H', W')
        y = self.norm2(self.conv2(y))  # (N, C_out, H', W')
        return self.act2(y + self.shortcut(x))  # (N, C_out, H', W')


class ResNet(nn.Module):
    """3x3 stem, stages of BasicBlocks (stride 2 at the start of every stage after the first),
    global average pool, dropout, linear."""

    def __init__(self, cfg: ResNetConfig, image_shape: tuple[int, int, int], num_outputs: int) -> None:
        super().__init__()
        if len(cfg.widths) != len(cfg.blocks):
            raise UserError(
                f"model.blocks has {len(cfg.blocks)} entries but model.widths has "
                f"{len(cfg.widths)}; give one block count per stage"
            )
        c, h, w = image_shape
        self.stem = nn.Sequential(
            nn.Conv2d(c, cfg.widths[0], 3, padding=1, bias=cfg.norm == "none"),
            norm2d(cfg.norm, cfg.widths[0]),
            activation(cfg.activation),
        )
        c = cfg.widths[0]
        stages: list[nn.Module] = []
        for i, (width, n_blocks) in enumerate(zip(cfg.widths, cfg.blocks, strict=True)):
            stride = (halve(h), halve(w)) if i > 0 else (1, 1)
            h, w = -(-h // stride[0]), -(-w // stride[1])  # ceil: 3x3 conv, padding 1
            blocks = [BasicBlock(cfg, c, width, stride)]
            blocks += [BasicBlock(cfg, width, width) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c = width
        self.stages = nn.Sequential(*stages)
        self.feature_shape = (c, h, w)
        """(C, H, W) of the last stage's output for this input size."""
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c, num_outputs)

    def forward(self, image: Tensor) -> Tensor:
        """image: (N, C, H, W) float -> (N, num_outputs)."""
        x = self.stages(self.stem(nhwc(image)))  # (N, C', H', W')
        x = self.pool(x).flatten(1)  # (N, C')
        return self.head(self.drop(x))  # (N, num_outputs)


@register_model("resnet", kinds=("image",))
def build_resnet(cfg: ResNetConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    return ResNet(cfg, require_image_shape(spec), num_outputs)
