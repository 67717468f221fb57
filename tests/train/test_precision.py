"""Mixed precision, pinned batches and background batch workers in the Trainer."""

import pytest
import torch
from torch import nn

from practicum.config import TrainConfig
from practicum.errors import UserError
from practicum.tasks import build_task
from practicum.train.precision import autocast_context, grad_scaler
from practicum.train.trainer import Trainer


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def blobs(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (n,), generator=g)
    return {"x": torch.randn(n, 4, generator=g) + nn.functional.one_hot(target, 4).float() * 3, "target": target}


def noisy(batch, gen):
    """An augmentation drawing from its own generator (as image augmentations do)."""
    return {**batch, "x": batch["x"] + 0.1 * torch.randn(batch["x"].shape, generator=gen)}


def run(tmp_path, name, **overrides):
    torch.manual_seed(0)
    overrides = {"epochs": 2, "schedule": "constant", **overrides}
    cfg = TrainConfig(progress="never", tensorboard=False, device="cpu", lr=1e-2, batch_size=8, **overrides)
    task = build_task("classification", label_names=["a", "b", "c"])
    trainer = Trainer(cfg, Net(), task, blobs(), blobs(32, seed=1), tmp_path / name, augment=noisy)
    trainer.fit()
    return trainer


def test_fp16_on_cpu_is_a_user_error():
    with pytest.raises(UserError, match="fp16 needs CUDA"):
        autocast_context("fp16", torch.device("cpu"))
    assert grad_scaler("fp16", torch.device("cpu")) is None
    assert grad_scaler("bf16", torch.device("cpu")) is None


def test_bf16_autocast_runs_linear_layers_in_bf16():
    with autocast_context("bf16", torch.device("cpu")):
        out = nn.Linear(4, 2)(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16


def test_workers_give_bit_identical_weights(tmp_path, one_thread):
    plain = run(tmp_path, "w0")
    threaded = run(tmp_path, "w2", num_workers=2)
    for key, value in plain.model.state_dict().items():
        assert torch.equal(value, threaded.model.state_dict()[key]), key


def test_workers_keep_exact_resume(tmp_path, one_thread):
    whole = run(tmp_path, "whole", num_workers=2)
    torch.manual_seed(0)
    cfg = TrainConfig(progress="never", tensorboard=False, device="cpu", lr=1e-2, batch_size=8, epochs=2,
                      num_workers=2, max_steps=7, schedule="constant")
    task = build_task("classification", label_names=["a", "b", "c"])
    Trainer(cfg, Net(), task, blobs(), blobs(32, seed=1), tmp_path / "cut", augment=noisy).fit()
    cfg = cfg.model_copy(update={"max_steps": None})
    resumed = Trainer(cfg, Net(), task, blobs(), blobs(32, seed=1), tmp_path / "cut", augment=noisy)
    resumed.fit(resume=True)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_pin_memory_true_without_cuda_is_ignored(tmp_path, one_thread):
    trainer = run(tmp_path, "pin", pin_memory=True, epochs=1)
    assert trainer.pin is torch.cuda.is_available()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 with a gradient scaler needs CUDA")
def test_fp16_on_cuda_trains_and_checkpoints_the_scaler(tmp_path):
    trainer = run(tmp_path, "fp16", device="cuda", precision="fp16")
    ckpt = torch.load(trainer.last_path, weights_only=True)
    assert ckpt["scaler"]["scale"] > 0
    assert trainer.evaluate(blobs(32, seed=1))["accuracy"] > 0.5


def test_cli_short_flags_become_train_overrides():
    from practicum import cli

    args = cli._parser().parse_args(["train", "r.yaml", "--device", "cpu", "--precision", "bf16", "--compile"])
    assert cli._strategy(args) == ["train.device=cpu", "train.precision=bf16", "train.compile=true"]
    args = cli._parser().parse_args(["pretrain", "--precision", "fp16", "--nproc", "2", "--strategy", "fsdp"])
    assert cli._strategy(args) == ["train.strategy=fsdp", "train.precision=fp16"]
    cfg = TrainConfig.model_validate({"precision": "fp16", "compile": True, "pin_memory": False})
    assert cfg.compile and cfg.pin_memory is False
