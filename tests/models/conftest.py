"""Tiny input specs and batches shared by the model tests (width 16, 2 layers).

Helpers are handed out as fixtures (not imported) so that several conftest.py files can coexist.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

VOCAB, MAX_LEN = 40, 10


def make_spec(kind: str, **fields) -> SimpleNamespace:
    """An InputSpec look-alike: the models read only these attributes."""
    spec = dict(
        kind=kind, num_features=0, cat_cardinalities=[], vocab_size=0, max_length=0, pad_id=0,
        image_shape=None,
    )
    spec.update(fields)
    return SimpleNamespace(**spec)


def text_batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded token ids (pad 0) of lengths 1..MAX_LEN and their mask."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCAB, (n, MAX_LEN), generator=g)
    lengths = torch.randint(1, MAX_LEN + 1, (n,), generator=g)
    lengths[0] = MAX_LEN  # one full row
    mask = torch.arange(MAX_LEN)[None, :] < lengths[:, None]  # (n, T)
    return tokens * mask, mask


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    """Every model test runs on one thread (tests/conftest.py: one_thread)."""
    yield


@pytest.fixture
def text_spec() -> SimpleNamespace:
    return make_spec("text", vocab_size=VOCAB, max_length=MAX_LEN)


@pytest.fixture
def tabular_spec() -> SimpleNamespace:
    return make_spec("tabular", num_features=5, cat_cardinalities=[3, 7])


@pytest.fixture
def spec_of():
    return make_spec


@pytest.fixture
def text_data():
    return text_batch
