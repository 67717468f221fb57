"""train.compile: the same loss trajectory as eager, original state-dict keys, a fallback."""

import json

import pytest
import torch
from torch import nn

from practicum.config import TrainConfig
from practicum.tasks import build_task
from practicum.train import precision
from practicum.train.trainer import Trainer


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def blobs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (n,), generator=g)
    return {"x": torch.randn(n, 4, generator=g) + nn.functional.one_hot(target, 4).float() * 3, "target": target}


def train(tmp_path, name, compile_: bool):
    torch.manual_seed(0)
    model = Net()
    cfg = TrainConfig(progress="never", tensorboard=False, device="cpu", lr=1e-2, batch_size=16, epochs=2,
                      log_every=1, compile=compile_)
    task = build_task("classification", label_names=["a", "b", "c"])
    trainer = Trainer(cfg, model, task, blobs(), blobs(32, seed=1), tmp_path / name)
    trainer.fit()
    rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return trainer, [r["loss"] for r in rows if r["split"] == "train"]


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path, one_thread):
    why = precision.compile_unsupported(torch.device("cpu"))
    if why:
        pytest.skip(why)
    eager, losses = train(tmp_path, "eager", False)
    comp, losses_c = train(tmp_path, "compiled", True)
    if not isinstance(comp.forward, precision.CompiledForward) or comp.forward.compiled is None:
        pytest.skip("inductor cannot compile here (fell back to eager)")
    assert len(losses) == len(losses_c) == 8
    assert max(abs(a - b) for a, b in zip(losses, losses_c, strict=True)) < 1e-4
    ckpt = torch.load(comp.last_path, weights_only=True)
    assert set(ckpt["model"]) == set(eager.model.state_dict())  # no _orig_mod. prefix


def test_compile_failure_falls_back_to_eager(tmp_path, monkeypatch, caplog):
    def broken(module):
        def fail(**inputs):
            raise RuntimeError("no compiler today")
        return fail

    monkeypatch.setattr(precision, "compile_unsupported", lambda device: None)
    monkeypatch.setattr(torch, "compile", broken)
    eager, losses = train(tmp_path, "eager", False)
    fallback, losses_f = train(tmp_path, "fallback", True)
    assert losses_f == losses
    assert "torch.compile failed (RuntimeError: no compiler today)" in caplog.text
