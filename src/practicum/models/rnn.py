"""A recurrent text classifier: embedding -> RNN/LSTM/GRU over packed sequences -> pool -> head.

Packing (pack_padded_sequence) makes the recurrence stop at each sequence's last real token,
so padding never changes the result. Sequences are right-padded: the mask is True on a
prefix of each row.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from practicum.config import RNNConfig
from practicum.models.build import SpecLike, register_model, require_vocab
from practicum.models.layers import norm1d

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    """Embedding, stacked (bi)directional recurrence, pooling over real tokens, linear head."""

    def __init__(self, cfg: RNNConfig, vocab_size: int, num_outputs: int, pad_id: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, cfg.embedding_dim, padding_idx=pad_id)
        self.embed_drop = nn.Dropout(cfg.dropout)
        self.rnn = CELLS[cfg.cell](
            cfg.embedding_dim,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,  # only acts between layers
        )
        self.num_directions = 2 if cfg.bidirectional else 1
        width = cfg.hidden_size * self.num_directions
        self.norm = norm1d(cfg.norm, width)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """tokens: (B, T) int64; mask: (B, T) bool, True = real token (default tokens != pad_id)."""
        mask = tokens != self.pad_id if mask is None else mask.bool()
        B, T = tokens.shape
        lengths = mask.sum(dim=1)  # (B,)
        x = self.embed_drop(self.embed(tokens))  # (B, T, E)
        # an empty row is read as one (padding) token, packing needs length >= 1
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, h_n = self.rnn(packed)
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D*H), 0 on padding

        if self.cfg.pooling == "last":
            # h_n: (layers*D, B, H); the top layer's forward state at the last real token and,
            # when bidirectional, its backward state at position 0
            top = h_n[-self.num_directions :]  # (D, B, H)
            pooled = top.transpose(0, 1).reshape(B, -1)  # (B, D*H)
        elif self.cfg.pooling == "mean":
            m = mask.unsqueeze(-1).to(out.dtype)  # (B, T, 1)
            pooled = (out * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D*H)
        else:  # max
            filled = out.masked_fill(~mask.unsqueeze(-1), float("-inf"))  # (B, T, D*H)
            pooled = filled.max(dim=1).values  # (B, D*H)
            pooled = torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
        return self.head(self.drop(self.norm(pooled)))  # (B, num_outputs)


@register_model("rnn", kinds=("text",))
def build_rnn(cfg: RNNConfig, spec: SpecLike, num_outputs: int) -> nn.Module:
    return RNNClassifier(cfg, require_vocab(spec), num_outputs, pad_id=spec.pad_id)
