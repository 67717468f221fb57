import math

import pytest
import torch
from torch import nn

from practicum.config import TrainConfig
from practicum.train.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def test_biases_and_norms_are_not_decayed():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert len(no_decay["params"]) == 4  # two biases, layer-norm weight and bias


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("adamw", torch.optim.AdamW)])
def test_optimizer_choice(name, cls):
    opt = build_optimizer(nn.Linear(3, 3), TrainConfig(optimizer=name, nesterov=name == "sgd"))
    assert isinstance(opt, cls)


def test_cosine_with_warmup_shape():
    cfg = TrainConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, cfg, 110) == pytest.approx(0.1)
    assert lr_factor(9, cfg, 110) == pytest.approx(1.0)
    assert lr_factor(60, cfg, 110) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(110, cfg, 110) == pytest.approx(0.1)


def test_step_and_constant_schedules():
    step = TrainConfig(schedule="step", step_size=5, gamma=0.5)
    assert [lr_factor(s, step, 100) for s in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(50, TrainConfig(schedule="constant"), 100) == 1.0


def test_onecycle_peaks_at_lr_and_ends_low():
    cfg = TrainConfig(schedule="onecycle", lr=0.1, optimizer="sgd")
    opt = build_optimizer(nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[-1] < 1e-3 and lrs[0] < 0.01
    assert math.isclose(lrs.index(max(lrs)) / 100, 0.3, abs_tol=0.02)
