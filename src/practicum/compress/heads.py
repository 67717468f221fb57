"""Attention heads as pruning units: find them, score them, and mask whole heads.

Head h (head size hs) owns columns h*hs:(h+1)*hs of the output projection `proj` and rows
h*hs:(h+1)*hs of the query block of the fused `qkv`. Zeroing those proj columns makes the
head's contribution exactly zero whatever it attends to; its query rows are zeroed too, and
so are its key/value rows once every query head that reads them is gone (grouped-query
attention shares one key/value head among n_head // n_kv_head query heads), so the saved
weights are sparse where the head was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class HeadLayer:
    """One attention module seen as n_head prunable heads."""

    name: str
    module: nn.Module
    n_head: int
    n_kv_head: int
    hs: int

    @property
    def qkv(self) -> nn.Linear:
        return self.module.qkv

    @property
    def proj(self) -> nn.Linear:
        return self.module.proj

    def scores(self) -> Tensor:
        """(n_head,) L2 norm of each head's slice of the output projection."""
        w = self.proj.weight.detach().float()  # (C, nh * hs)
        return w.view(w.size(0), self.n_head, self.hs).norm(dim=(0, 2))  # (nh,)

    def head_weights(self) -> float:
        """Weights one head owns: its query rows, proj columns and its share of key/value rows."""
        width = self.qkv.weight.size(1)
        return self.hs * width + self.proj.weight.size(0) * self.hs + 2 * self.hs * width / self.group

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.n_head // self.n_kv_head

    def masks(self, drop: list[int]) -> tuple[Tensor, Tensor]:
        """Masks (1 keep, 0 pruned) for qkv.weight and proj.weight that remove heads `drop`."""
        qkv = torch.ones_like(self.qkv.weight)  # ((nh + 2 nkv) * hs, C)
        proj = torch.ones_like(self.proj.weight)  # (C, nh * hs)
        hs, nh, nkv = self.hs, self.n_head, self.n_kv_head
        for h in drop:
            qkv[h * hs:(h + 1) * hs] = 0
            proj[:, h * hs:(h + 1) * hs] = 0
        gone = set(drop)
        for g in range(nkv):
            if all(h in gone for h in range(g * self.group, (g + 1) * self.group)):
                qkv[(nh + g) * hs:(nh + g + 1) * hs] = 0  # key rows of kv head g
                qkv[(nh + nkv + g) * hs:(nh + nkv + g + 1) * hs] = 0  # value rows
        return qkv, proj

    def pruned(self) -> list[int]:
        """Heads whose proj columns are all zero in the current weights (they contribute nothing)."""
        w = self.proj.weight.detach()
        cols = w.view(w.size(0), self.n_head, self.hs)  # (C, nh, hs)
        return [h for h in range(self.n_head) if not bool(cols[:, h].any())]


def head_layers(model: nn.Module) -> list[HeadLayer]:
    """Every attention module of `model`: the text classifier's SelfAttention and the language
    models' Attention (TransformerLM and pretrained backbones)."""
    from practicum.models.layers import SelfAttention
    from practicum.models.lm import Attention

    found = []
    for name, module in model.named_modules():
        if isinstance(module, SelfAttention):
            hs = module.proj.weight.size(1) // module.n_heads
            found.append(HeadLayer(name, module, module.n_heads, module.n_heads, hs))
        elif isinstance(module, Attention):
            found.append(HeadLayer(name, module, module.n_head, module.n_kv_head, module.hs))
    return found
