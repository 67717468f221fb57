"""Integrated gradients and saliency: Captum's numbers against hand-rolled Riemann sums and plain
autograd, completeness (the attributions add up to f(input) - f(baseline) within the reported
delta), and the per-kind numbers explain() returns."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from practicum.bundle import Bundle
from practicum.explain import ExplainOptions, explain_bundle
from practicum.explain.attributions import (
    embedding_layer,
    image_attributions,
    tabular_attributions,
    token_attributions,
)
from practicum.explain.classifiers import text_baseline


def riemann_ig(f, x: torch.Tensor, baseline: torch.Tensor, n: int) -> torch.Tensor:
    """Right Riemann sum of IG written out: (x - x') * mean_k grad f(x' + k/n (x - x'))."""
    total = torch.zeros_like(x)
    for k in range(1, n + 1):
        point = (baseline + k / n * (x - baseline)).requires_grad_(True)
        total += torch.autograd.grad(f(point), point)[0]
    return (x - baseline) * total / n


def riemann_token_ig(model, tokens, mask, baseline, target, n):
    """The same on the token embeddings: a forward hook swaps in each path point."""
    layer = embedding_layer(model)
    with torch.no_grad():
        e, e0 = layer(tokens), layer(baseline)  # (1, T, E)

    def f(point):
        hook = layer.register_forward_hook(lambda _m, _i, _o: point)
        try:
            return model(tokens, mask)[0, target]
        finally:
            hook.remove()

    return riemann_ig(f, e, e0, n).sum(-1)[0]  # (T,)


def one_text(bundle: Bundle, text: str):
    batch, _, _ = bundle.preprocessor.load_inputs([text])
    width = int(batch["mask"][0].sum())
    return batch["tokens"][:, :width], batch["mask"][:, :width]


def test_captum_ig_equals_a_hand_rolled_riemann_sum_on_a_tiny_mlp(one_thread):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, base = torch.randn(1, 5, dtype=torch.float64), torch.zeros(1, 5, dtype=torch.float64)
    a, _ = tabular_attributions(model, x, None, target=2, steps=16, method="riemann_right")
    expected = riemann_ig(lambda p: model(p)[0, 2], x, base, 16)[0]
    torch.testing.assert_close(a.scores, expected.float(), rtol=1e-5, atol=1e-6)
    assert a.f_input == pytest.approx(float(model(x)[0, 2].detach()), abs=1e-6)


@pytest.mark.parametrize("fixture", ["text_classifier_bundle", "pretrained_classifier_bundle"])
def test_token_ig_equals_a_hand_rolled_riemann_sum_on_the_embeddings(fixture, request, one_thread):
    bundle = Bundle.load(request.getfixturevalue(fixture))
    tokens, mask = one_text(bundle, "my card was declined")
    baseline = text_baseline(bundle.preprocessor.inputs, tokens, bundle.preprocessor.spec.pad_id)
    a = token_attributions(bundle.model, tokens, mask, baseline, 1, steps=12, method="riemann_right")
    expected = riemann_token_ig(bundle.model, tokens, mask, baseline, 1, 12)
    torch.testing.assert_close(a.scores, expected, rtol=1e-4, atol=1e-5)


def test_text_baseline_pads_the_words_and_keeps_the_model_specials(pretrained_classifier_bundle):
    bundle = Bundle.load(pretrained_classifier_bundle)
    tokens, _ = one_text(bundle, "my card")
    baseline = text_baseline(bundle.preprocessor.inputs, tokens, bundle.preprocessor.spec.pad_id)
    tok = bundle.preprocessor.inputs.tokenizer
    assert int(tokens[0, 0]) == tok.cls_id and int(tokens[0, -1]) == tok.sep_id
    assert baseline[0].tolist() == [tok.cls_id] + [tok.pad_id] * (tokens.size(1) - 2) + [tok.sep_id]


@pytest.mark.parametrize("fixture", ["text_classifier_bundle", "rnn_text_bundle", "pretrained_classifier_bundle"])
def test_token_attributions_are_complete(fixture, request, one_thread):
    bundle = Bundle.load(request.getfixturevalue(fixture))
    result = explain_bundle(bundle, ["my card was declined", "the refund is late"],
                            ExplainOptions(views=["attributions"], steps=32))
    outputs = bundle.outputs(bundle.preprocessor.load_inputs(["my card was declined", "the refund is late"])[0])
    for item, logits in zip(result.items, outputs, strict=True):
        a = item["attributions"]
        assert len(a["scores"]) == len(item["tokens"])
        assert item["target_index"] == int(logits.argmax())  # default target: the predicted class
        assert a["f_input"] == pytest.approx(float(logits[item["target_index"]]), abs=1e-4)
        gap = a["f_input"] - a["f_baseline"]
        assert sum(a["scores"]) - gap == pytest.approx(a["delta"], abs=1e-4)
        assert abs(a["delta"]) < 0.01 * abs(gap) + 1e-4


def test_tokens_are_shown_as_the_model_saw_them(text_classifier_bundle, pretrained_classifier_bundle):
    words = explain_bundle(Bundle.load(text_classifier_bundle), ["My card, declined!"],
                           ExplainOptions(views=["attributions"], steps=4)).items[0]
    assert words["tokens"][:2] == ["my", "card"]  # the vocabulary lowercases; unknown words are <unk>
    pieces = explain_bundle(Bundle.load(pretrained_classifier_bundle), ["my card"],
                            ExplainOptions(views=["attributions"], steps=4)).items[0]
    assert pieces["tokens"][0] == "<cls>" and pieces["tokens"][-1] == "<sep>"


def test_an_explicit_target_changes_what_is_explained(text_classifier_bundle, one_thread):
    bundle = Bundle.load(text_classifier_bundle)
    item = explain_bundle(bundle, ["my card was declined"],
                          ExplainOptions(target="travel", views=["attributions"], steps=16)).items[0]
    assert item["target"] == "travel" and item["target_index"] == bundle.preprocessor.label_names.index("travel")
    assert item["prediction"] != "travel"


def test_image_saliency_is_the_gradient_and_ig_is_complete(image_classifier_bundle, one_thread):
    bundle = Bundle.load(image_classifier_bundle)
    batch, _, _ = bundle.preprocessor.load_inputs("builtin:digits")
    image = batch["image"][:1]  # (1, 1, 8, 8)
    black = bundle.preprocessor.inputs.background.view(1, -1, 1, 1).expand_as(image)
    saliency, a = image_attributions(bundle.model, image, black, 3, steps=64)
    x = image.clone().requires_grad_(True)
    grad = torch.autograd.grad(bundle.model(x)[0, 3], x)[0]
    torch.testing.assert_close(saliency, grad[0].abs().amax(dim=0), rtol=1e-5, atol=1e-6)
    gap = a.f_input - a.f_baseline
    assert float(a.scores.sum()) - gap == pytest.approx(a.delta, abs=1e-4)
    assert abs(a.delta) < 0.05 * abs(gap)
    item = explain_bundle(bundle, "builtin:digits", ExplainOptions(max_inputs=2, steps=16)).items
    assert len(item) == 2 and len(item[0]["saliency"]) == 8 and len(item[0]["attributions"]["scores"]) == 1
    assert min(min(r) for r in item[0]["saliency"]) >= 0


def test_tabular_ig_per_column_is_complete(tabular_classifier_bundle, one_thread):
    bundle = Bundle.load(tabular_classifier_bundle)
    record = {"island": "Biscoe", "bill_length_mm": 46, "bill_depth_mm": 15, "flipper_length_mm": 215,
              "body_mass_g": 5200, "sex": "male", "year": 2008}
    item = explain_bundle(bundle, record, ExplainOptions(steps=64)).items[0]
    enc = bundle.preprocessor.inputs
    assert item["features"] == enc.numeric + enc.categorical
    values = dict(zip(item["features"], item["values"], strict=True))
    assert values["island"] == "Biscoe" and float(values["bill_length_mm"]) == pytest.approx(46)
    a = item["attributions"]
    gap = a["f_input"] - a["f_baseline"]
    assert sum(a["scores"]) - gap == pytest.approx(a["delta"], abs=1e-4)
    assert abs(a["delta"]) < 0.02 * abs(gap) + 1e-3


def test_regression_with_embedded_categoricals_is_complete(regression_bundle, one_thread):
    bundle = Bundle.load(regression_bundle)
    record = {"species": "Gentoo", "island": "Biscoe", "bill_length_mm": 46, "bill_depth_mm": 15,
              "flipper_length_mm": 215, "sex": "male", "year": 2008}
    item = explain_bundle(bundle, record, ExplainOptions(steps=64)).items[0]
    assert item["target"] == "body_mass_g" and isinstance(item["prediction"], float)
    a = item["attributions"]
    with torch.no_grad():
        out = bundle.outputs(bundle.preprocessor.load_inputs(record)[0])
    assert a["f_input"] == pytest.approx(float(out[0, 0]), abs=1e-5)
    assert sum(a["scores"]) - (a["f_input"] - a["f_baseline"]) == pytest.approx(a["delta"], abs=1e-4)
    assert "species" in item["features"] and len(a["scores"]) == len(item["features"])


def test_missing_captum_is_a_user_error_naming_the_extra(monkeypatch):
    import sys

    from practicum.errors import UserError
    from practicum.explain.attributions import require_captum

    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(UserError, match=r"practicum\[explain\]"):
        require_captum()


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")  # torch.ao is deprecated
def test_a_quantized_bundle_has_no_attributions(text_classifier_bundle, image_classifier_bundle):
    from torch.ao.quantization import quantize_dynamic

    from practicum.errors import UserError

    bundle = Bundle.load(text_classifier_bundle)
    bundle.model = quantize_dynamic(bundle.model, {nn.Linear}, dtype=torch.qint8)
    result = explain_bundle(bundle, ["my card"])
    assert result.views == ["attention"] and "attributions" not in result.items[0]
    with pytest.raises(UserError, match="quantized .* explain the original"):
        explain_bundle(bundle, ["my card"], ExplainOptions(views=["attributions"]))
    image = Bundle.load(image_classifier_bundle)
    image.model = quantize_dynamic(image.model, {nn.Linear}, dtype=torch.qint8)
    with pytest.raises(UserError, match="quantized"):
        explain_bundle(image, "builtin:digits")
