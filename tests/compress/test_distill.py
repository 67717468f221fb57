"""Knowledge distillation: the loss against torch's kl_div, tiny students of classifier and
causal-LM teachers through the one Trainer, exact resume, and the errors users see."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from finetune_data import TOPICS
from safetensors.torch import load_file
from torch import nn

import practicum
from practicum.bundle import Bundle, save_lm_bundle
from practicum.compress.distill import distill_bundle
from practicum.data import raw_split
from practicum.data.lm import IGNORE_INDEX
from practicum.errors import UserError
from practicum.tasks import ClassificationTask, build_task
from practicum.tasks.distill import DistillationTask, softened_kl
from practicum.train.trainer import Trainer

QUIET = {"progress": "never", "tensorboard": False, "seed": 0}
TEXT_STUDENT = {"model": {"type": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1, "d_ff": 32},
                "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, **QUIET}}
LM_STUDENT = {"model": {"type": "lm", "preset": "llama-tiny", "n_layer": 1, "n_head": 2, "n_kv_head": 1,
                        "n_embd": 32, "intermediate_size": 64, "block_size": 32},
              "train": {"max_steps": 40, "batch_size": 8, "lr": 1e-2, "eval_every": 20, **QUIET}}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def topic_corpus(tmp_path_factory) -> Path:
    """A small text file of the topic sentences, one per line."""
    lines = [f"{text} {i % 7}" for i in range(12) for rows in TOPICS.values() for text in rows]
    path = tmp_path_factory.mktemp("corpus") / "topics.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def confident_causal_teacher(tiny_causal_source, tmp_path_factory) -> Path:
    """tiny_causal_source with its output layer scaled 30x: random weights give near-uniform
    next-token distributions, too flat to teach anything; these are peaked."""
    source = Bundle.load(tiny_causal_source)
    with torch.no_grad():
        source.model.lm_head.weight.mul_(30.0)
    out = tmp_path_factory.mktemp("confident_llama") / "bundle"
    return save_lm_bundle(out, source.config, source.model, source.tokenizer, {},
                          extra={"chat_template": source.info["chat_template"]})


# ---------------------------------------------------------------- the loss


def test_softened_kl_equals_kl_div_and_a_hand_computation():
    torch.manual_seed(0)
    student, teacher, T = torch.randn(6, 5), torch.randn(6, 5) * 3, 2.5
    oracle = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1),
                      log_target=True, reduction="batchmean") * T**2
    p = np.exp(teacher.numpy() / T) / np.exp(teacher.numpy() / T).sum(-1, keepdims=True)
    q = np.exp(student.numpy() / T) / np.exp(student.numpy() / T).sum(-1, keepdims=True)
    by_hand = (p * np.log(p / q)).sum(-1).mean() * T**2
    got = softened_kl(student, teacher, T)
    assert torch.allclose(got, oracle, atol=1e-6)
    assert float(got) == pytest.approx(by_hand, rel=1e-5)
    assert float(softened_kl(teacher, teacher, T)) == pytest.approx(0.0, abs=1e-7)


def test_softened_kl_over_tokens_averages_the_kept_positions():
    torch.manual_seed(1)
    student, teacher = torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    keep = torch.tensor([[True, True, False, True], [False, True, True, False]])
    oracle = F.kl_div(F.log_softmax(student[keep], -1), F.log_softmax(teacher[keep], -1),
                      log_target=True, reduction="batchmean")
    assert torch.allclose(softened_kl(student, teacher, 1.0, keep), oracle, atol=1e-6)


def test_batch_loss_mixes_soft_and_hard_terms_and_only_the_student_learns():
    torch.manual_seed(2)
    teacher, student = nn.Linear(4, 3), nn.Linear(4, 3)
    batch = {"x": torch.randn(8, 4), "target": torch.randint(0, 3, (8,))}
    hard = ClassificationTask(["a", "b", "c"], label_smoothing=0.1)
    task = DistillationTask(hard, _Keyword(teacher), temperature=3.0, alpha=0.3)
    outputs = student(batch["x"])
    loss = task.batch_loss(outputs, batch)
    soft = F.kl_div(F.log_softmax(outputs / 3, -1), F.log_softmax(teacher(batch["x"]).detach() / 3, -1),
                    log_target=True, reduction="sum") * 9
    ce = F.cross_entropy(outputs, batch["target"], reduction="sum", label_smoothing=0.1)
    assert torch.allclose(loss, 0.3 * soft + 0.7 * ce, atol=1e-5)
    loss.backward()
    assert student.weight.grad is not None and teacher.weight.grad is None
    assert task.loss(outputs, batch["target"]).item() == pytest.approx(ce.item())  # validation: hard
    assert task.default_monitor == "accuracy" and task.label_names == ["a", "b", "c"]


def test_alpha_zero_is_the_hard_loss_and_never_asks_the_teacher():
    class NoTeacher(nn.Module):
        def forward(self, **_):
            raise AssertionError("the teacher ran with alpha=0")

    hard = build_task("causal_lm", vocab_size=11)
    task = DistillationTask(hard, NoTeacher(), temperature=2.0, alpha=0.0)
    logits, target = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    batch = {"tokens": target, "target": target}
    assert torch.equal(task.batch_loss(logits, batch), hard.batch_loss(logits, batch))


def test_causal_lm_soft_term_covers_only_the_positions_with_a_target():
    torch.manual_seed(3)
    teacher = nn.Embedding(9, 9)
    tokens = torch.randint(0, 9, (3, 6))
    target = torch.randint(0, 9, (3, 6))
    target[0, :2] = IGNORE_INDEX
    target[2, 4:] = IGNORE_INDEX
    student_logits = torch.randn(3, 6, 9)
    task = DistillationTask(build_task("causal_lm", vocab_size=9), _Keyword(teacher), 2.0, alpha=1.0)
    keep = target != IGNORE_INDEX
    oracle = F.kl_div(F.log_softmax(student_logits[keep] / 2, -1),
                      F.log_softmax(teacher(tokens)[keep].detach() / 2, -1),
                      log_target=True, reduction="batchmean") * 4 * 3
    got = task.batch_loss(student_logits, {"tokens": tokens, "target": target})
    assert torch.allclose(got, oracle, atol=1e-5)


class _Keyword(nn.Module):
    """A module called as the Trainer calls models: with the batch's one input as a keyword."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        (only,) = inputs.values()
        return self.inner(only)


# ---------------------------------------------------------------- classifiers


def _agreement_on_test(teacher: Bundle, student: Bundle) -> float:
    """Oracle: both bundles' own outputs on the test split the run scored."""
    raw = raw_split(teacher.config.data, teacher.config.task, "test")
    batch = student.preprocessor.transform(raw, with_target=False)
    return float((teacher.outputs(batch).argmax(-1) == student.outputs(batch).argmax(-1)).float().mean())


def test_text_student_follows_its_teacher_and_its_bundle_loads(text_classifier_bundle, labelled_csv,
                                                               tmp_path, one_thread):
    teacher = practicum.load(text_classifier_bundle)
    result = distill_bundle(teacher, TEXT_STUDENT, None, tmp_path / "student", temperature=2.0, alpha=0.7)
    student = practicum.load(result.bundle)
    assert student.info["distilled_from"] == str(teacher.path)
    assert student.info["distillation"] == {"teacher": str(teacher.path), "temperature": 2.0, "alpha": 0.7}
    assert student.info["parameters"] < teacher.info["parameters"] / 2
    teacher_pre = json.loads((teacher.path / "preprocess.json").read_text())
    assert json.loads((result.bundle / "preprocess.json").read_text()) == teacher_pre  # same vocabulary
    gap = result.summary["distillation"]
    agreement = _agreement_on_test(teacher, student)
    assert gap["teacher_agreement"] == pytest.approx(agreement)
    assert agreement > 1 / 3 + 0.3  # three classes: chance is 1/3
    records = student.predict(["my card was declined", "the refund is late"])
    assert [r["prediction"] for r in records] == [r["prediction"] for r in teacher.predict(
        ["my card was declined", "the refund is late"])]
    assert (result.run_dir / "report.html").is_file() and (result.run_dir / "config.yaml").is_file()


def test_a_from_scratch_teachers_data_is_not_held_to_the_fine_tuning_leakage_check(labelled_csv, tmp_path,
                                                                                   one_thread):
    """The train/held-out duplicate check guards fine-tuning of pretrained models; a word-vocabulary
    teacher trained on data with near-duplicate rows across its splits still distils."""
    rows = labelled_csv.read_text().splitlines()
    (tmp_path / "dup.csv").write_text("\n".join(rows + [r.replace(",", " !,", 1) for r in rows[1:]]) + "\n")
    teacher = practicum.train(None, [
        f"data.path={tmp_path / 'dup.csv'}", "data.kind=text", "data.features=[text]", "data.target=label",
        "model.type=rnn", "model.hidden_size=8", "train.epochs=1", f"out_dir={tmp_path / 't'}"]).bundle
    recipe = {"model": {"type": "rnn", "hidden_size": 4}, "train": {"epochs": 1, **QUIET}}
    result = distill_bundle(practicum.load(teacher), recipe, None, tmp_path / "student")
    assert practicum.load(result.bundle).predict(["my card was declined"])[0]["prediction"]


@pytest.mark.slow
@pytest.mark.parametrize(("fixture", "student"), [
    ("image_classifier_bundle", {"type": "mlp", "hidden_sizes": [32]}),
    ("tabular_classifier_bundle", {"type": "mlp", "hidden_sizes": [8]}),
])
def test_image_and_tabular_students(fixture, student, request, tmp_path, one_thread):
    teacher = practicum.load(request.getfixturevalue(fixture))
    recipe = {"model": student, "train": {"epochs": 4, "batch_size": 32, "lr": 1e-2, **QUIET}}
    result = distill_bundle(teacher, recipe, None, tmp_path / "student", temperature=4.0, alpha=0.9)
    loaded = practicum.load(result.bundle)
    classes = len(teacher.info["label_names"])
    agreement = _agreement_on_test(teacher, loaded)
    assert result.summary["distillation"]["teacher_agreement"] == pytest.approx(agreement)
    assert agreement > 1 / classes + 0.3
    assert result.metrics["test"]["accuracy"] > 1 / classes + 0.3


@pytest.mark.slow
def test_an_interrupted_distillation_resumes_exactly(text_classifier_bundle, tmp_path, monkeypatch,
                                                     one_thread):
    teacher = practicum.load(text_classifier_bundle)
    over = ["train.max_steps=10", "train.checkpoint_every=2", "train.eval_every=5"]
    whole = distill_bundle(teacher, TEXT_STUDENT, over, tmp_path / "a", alpha=0.5)
    real_step = Trainer._step

    def dying_step(self, group):
        if self.state.step == 6:
            raise KeyboardInterrupt
        return real_step(self, group)

    monkeypatch.setattr(Trainer, "_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        distill_bundle(teacher, TEXT_STUDENT, over, tmp_path / "b", alpha=0.5)
    monkeypatch.setattr(Trainer, "_step", real_step)
    torch.manual_seed(999)  # the checkpoint must restore the RNG
    with pytest.raises(UserError, match="alpha"):
        distill_bundle(teacher, TEXT_STUDENT, over, tmp_path / "b", alpha=0.6, resume=True)
    resumed = distill_bundle(teacher, TEXT_STUDENT, over, tmp_path / "b", alpha=0.5, resume=True)
    a, b = load_file(whole.bundle / "model.safetensors"), load_file(resumed.bundle / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["steps"] == 10


# ---------------------------------------------------------------- causal language models


@pytest.mark.slow
def test_causal_lm_student_moves_toward_its_teacher(confident_causal_teacher, topic_corpus, tmp_path,
                                                    one_thread):
    teacher = practicum.load(confident_causal_teacher)
    result = distill_bundle(teacher, LM_STUDENT, [f"data.path={topic_corpus}"], tmp_path / "lm",
                            temperature=2.0, alpha=0.5)
    gap = result.summary["distillation"]
    assert gap["kl_to_teacher"] < 0.7 * gap["kl_to_teacher_before"]
    student = practicum.load(result.bundle)
    assert student.info["vocab_size"] == teacher.info["vocab_size"]
    assert student.info["chat_template"] == teacher.info["chat_template"]
    assert student.config.model.n_layer == 1 and student.info["distilled_from"] == str(teacher.path)
    # oracle: the KL of the saved student on a validation window, by kl_div
    ids = np.fromfile(result.run_dir / "corpus" / "val.bin",
                      dtype=json.loads((result.run_dir / "corpus" / "meta.json").read_text())["dtype"])
    tokens = torch.from_numpy(ids[:32].astype(np.int64))[None]
    with torch.no_grad():
        kl = F.kl_div(F.log_softmax(student.model(tokens), -1), F.log_softmax(teacher.model(tokens), -1),
                      log_target=True, reduction="batchmean") / 32
    assert float(kl) < gap["kl_to_teacher_before"]
    assert math.isfinite(result.metrics["val"]["loss"])


def test_lm_student_must_keep_the_teachers_vocabulary_and_fit_its_context(confident_causal_teacher,
                                                                          topic_corpus, tmp_path):
    teacher = practicum.load(confident_causal_teacher)
    data = [f"data.path={topic_corpus}"]
    with pytest.raises(UserError, match="vocab_size 500 differs"):
        distill_bundle(teacher, LM_STUDENT, [*data, "model.vocab_size=500"], tmp_path / "a")
    with pytest.raises(UserError, match="block_size 128 is longer"):
        distill_bundle(teacher, LM_STUDENT, [*data, "model.block_size=128"], tmp_path / "b")
    with pytest.raises(UserError, match="not a causal_lm recipe"):
        distill_bundle(teacher, TEXT_STUDENT, data, tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"alpha": 1.5}, "alpha must be in"), ({"alpha": -0.1}, "alpha must be in"),
    ({"temperature": 0.0}, "temperature must be"), ({"temperature": -2.0}, "temperature must be"),
    ({"temperature": float("nan")}, "temperature must be"),
])
def test_bad_loss_settings_are_user_errors(kwargs, match, text_classifier_bundle, tmp_path):
    with pytest.raises(UserError, match=match):
        distill_bundle(text_classifier_bundle, TEXT_STUDENT, None, tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_teacher_must_be_a_classifier_or_causal_lm_bundle(tmp_path, tiny_source, text_classifier_bundle):
    with pytest.raises(UserError, match="not a practicum bundle"):
        distill_bundle(tmp_path, TEXT_STUDENT, None, tmp_path / "x")
    with pytest.raises(UserError, match="teacher must be a bundle"):
        distill_bundle(3, TEXT_STUDENT, None, tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="masked_lm bundle"):
        distill_bundle(tiny_source, LM_STUDENT, None, tmp_path / "x")
    with pytest.raises(UserError, match="not a classification recipe"):
        distill_bundle(text_classifier_bundle, LM_STUDENT, None, tmp_path / "x")
    with pytest.raises(UserError, match="not a classification recipe"):
        distill_bundle(text_classifier_bundle, TEXT_STUDENT, ["task.type=regression"], tmp_path / "x")
    with pytest.raises(UserError, match="teacher's preprocessing"):
        distill_bundle(text_classifier_bundle, TEXT_STUDENT, ["data.text.max_length=8"], tmp_path / "x")
    with pytest.raises(UserError, match="needs text data|needs image data"):
        distill_bundle(text_classifier_bundle, {"model": {"type": "lenet"}}, None, tmp_path / "x")
