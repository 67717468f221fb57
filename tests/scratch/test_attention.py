"""Scratch attention against its PyTorch twins (values and gradients) and finite differences."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from practicum.scratch import attention as scratch
from practicum.scratch.gradcheck import check_gradients
from practicum.scratch.twins import attention as twins
from practicum.scratch.twins.check import compare_with_torch

TOL = 1e-6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _assert_close(errors: dict[str, float]) -> None:
    assert errors, "nothing was compared"
    worst = max(errors, key=errors.get)
    assert errors[worst] < TOL, f"{worst}: {errors[worst]:.2e}"


def test_softmax_is_stable_and_sums_to_one() -> None:
    x = np.array([[1000.0, 1001.0, 999.0], [-np.inf, 0.0, 1.0], [-np.inf, -np.inf, -np.inf]])
    y = scratch.softmax(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[:2].sum(-1), 1.0)
    assert y[1, 0] == 0.0 and np.all(y[2] == 0.0)  # a fully masked row gives zeros


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dv", [5, 3])
def test_sdpa_matches_torch(causal: bool, dv: int) -> None:
    rng = _rng(1)
    q, k, v = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((2, 3, 6, dv))
    _assert_close(compare_with_torch(scratch.ScaledDotProductAttention(causal),
                                     twins.ScaledDotProductAttention(causal), q, k, v))


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_boolean_mask_matches_torch(causal: bool) -> None:
    rng = _rng(2)
    q, k, v = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    mask = rng.random((2, 4, 5)) < 0.6
    mask[..., 0] = True  # every query can see at least one key
    _assert_close(compare_with_torch(scratch.ScaledDotProductAttention(causal),
                                     twins.ScaledDotProductAttention(causal), q, k, v, mask))


def test_sdpa_fully_masked_row_is_zero_like_torch() -> None:
    rng = _rng(3)
    q, k, v = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    module = scratch.ScaledDotProductAttention()
    out = module(q, k, v, mask)
    assert np.all(out[1] == 0.0) and np.all(module.weights[1] == 0.0)
    _assert_close(compare_with_torch(module, twins.ScaledDotProductAttention(), q, k, v, mask))


def test_sdpa_weights_rows_sum_to_one_and_causal_is_lower_triangular() -> None:
    rng = _rng(4)
    x = rng.standard_normal((2, 5, 3))
    module = scratch.ScaledDotProductAttention(is_causal=True)
    module(x, x, x)
    w = module.weights
    assert w.shape == (2, 5, 5)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w, k=1) == 0.0)


def test_sdpa_rejects_a_non_boolean_mask() -> None:
    x = np.zeros((2, 2))
    with pytest.raises(TypeError, match="boolean"):
        scratch.ScaledDotProductAttention()(x, x, x, np.ones((2, 2)))


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_gradcheck(causal: bool) -> None:
    rng = _rng(5)
    q, k, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 3))
    mask = np.array([[True, True, False, True]] * 3)  # broadcast over the batch
    result = check_gradients(scratch.ScaledDotProductAttention(causal), q, k, v, mask)  # mask held fixed
    assert result.ok(TOL), str(result)


@pytest.mark.parametrize(("causal", "bias", "heads"), [(False, True, 1), (False, True, 4), (True, True, 2),
                                                       (True, False, 4)])
def test_mhsa_matches_torch(causal: bool, bias: bool, heads: int) -> None:
    x = _rng(6).standard_normal((3, 5, 8))
    module = scratch.MultiHeadSelfAttention(8, heads, causal=causal, bias=bias, seed=0)
    if bias:  # torch starts the biases at zero; make them matter
        for p in (module.in_proj_bias, module.out_proj.bias):
            p.value[...] = _rng(7).standard_normal(p.shape)
    _assert_close(compare_with_torch(module, twins.MultiHeadSelfAttention(8, heads, causal=causal, bias=bias), x))


@pytest.mark.parametrize("causal", [False, True])
def test_mhsa_key_padding_mask_matches_torch(causal: bool) -> None:
    x = _rng(8).standard_normal((2, 5, 6))
    pad = np.zeros((2, 5), dtype=bool)
    pad[0, 3:] = True  # the first sequence is 3 long, the second 5
    module = scratch.MultiHeadSelfAttention(6, 3, causal=causal, seed=1)
    _assert_close(compare_with_torch(module, twins.MultiHeadSelfAttention(6, 3, causal=causal), x, pad))
    assert np.all(module.weights[0, :, :, 3:] == 0.0)


def test_mhsa_weights_shape_rows_and_causal_zeros() -> None:
    x = _rng(9).standard_normal((2, 4, 6))
    module = scratch.MultiHeadSelfAttention(6, 2, causal=True, seed=0)
    assert module(x).shape == (2, 4, 6)
    w = module.weights
    assert w.shape == (2, 2, 4, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(np.triu(w, k=1) == 0.0)


@pytest.mark.parametrize("causal", [False, True])
def test_mhsa_gradcheck(causal: bool) -> None:
    x = _rng(10).standard_normal((2, 3, 4))
    module = scratch.MultiHeadSelfAttention(4, 2, causal=causal, seed=0)
    module.in_proj_bias.value[...] = _rng(11).standard_normal(12)
    assert check_gradients(module, x).ok(TOL)
    pad = np.array([[False, False, True], [False, False, False]])
    result = check_gradients(module, x, pad)  # the boolean mask is held fixed
    assert result.ok(TOL), str(result)


def test_mhsa_parameter_names_and_init_match_torch() -> None:
    module = scratch.MultiHeadSelfAttention(8, 2, seed=0)
    twin = twins.MultiHeadSelfAttention(8, 2, seed=0)
    assert [n for n, _ in module.named_parameters()] == list(twin.state_dict())
    assert [n for n, _ in scratch.MultiHeadSelfAttention(8, 2, bias=False).named_parameters()] == list(
        twins.MultiHeadSelfAttention(8, 2, bias=False).state_dict())
    assert np.all(module.in_proj_bias.value == 0.0) and np.all(module.out_proj.bias.value == 0.0)
    for name, p in module.named_parameters():
        assert p.shape == tuple(twin.state_dict()[name].shape)
        w = twin.state_dict()[name].numpy()
        if w.ndim == 2:  # same distribution: the same bound, up to sampling
            assert np.abs(p.value).max() <= np.abs(w).max() * 1.25 + 1e-12
            assert np.abs(w).max() <= np.abs(p.value).max() * 1.25 + 1e-12


def test_mhsa_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="divisible"):
        scratch.MultiHeadSelfAttention(6, 4)


@pytest.mark.parametrize("name", ["ScaledDotProductAttention", "MultiHeadSelfAttention"])
def test_twin_signatures_match(name: str) -> None:
    ours = inspect.signature(getattr(scratch, name)).parameters
    theirs = inspect.signature(getattr(twins, name)).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]
    fwd_ours = inspect.signature(getattr(scratch, name).forward).parameters
    fwd_theirs = inspect.signature(getattr(twins, name).forward).parameters
    assert list(fwd_ours) == list(fwd_theirs)
