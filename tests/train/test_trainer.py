"""The Trainer on synthetic tensors and plain modules: accumulation, resume, NaN, early stopping."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from practicum.config import TrainConfig
from practicum.errors import TrainingDiverged, UserError
from practicum.tasks import build_task
from practicum.train.trainer import Trainer


class Net(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))

    def forward(self, x):
        return self.body(x)


def blobs(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) * 0.5 + nn.functional.one_hot(target, 4).float() * 3
    return {"x": x, "target": target}


def make(tmp_path, name="run", dropout=0.0, **overrides):
    torch.manual_seed(0)
    overrides.setdefault("lr", 1e-2)
    overrides.setdefault("progress", "never")
    cfg = TrainConfig(tensorboard=False, **overrides)
    task = build_task("classification", label_names=["a", "b", "c"])
    return Trainer(cfg, Net(dropout), task, blobs(), blobs(60, seed=1), tmp_path / name)


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_learns_and_writes_run_files(tmp_path):
    trainer = make(tmp_path, epochs=5, batch_size=16, lr=0.03)
    state = trainer.fit()
    assert trainer.evaluate(trainer.val_data)["accuracy"] > 0.9
    assert state.step == 5 * 8 and state.epoch == 5
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.safetensors").is_file()
    rows = trainer.runlog.rows()
    assert [r["step"] for r in rows if r["split"] == "val"] == [8, 16, 24, 32, 40]
    assert (run / "metrics.csv").read_text().startswith("split,step,epoch,loss")


def test_gradient_accumulation_matches_the_large_batch(tmp_path):
    big = make(tmp_path, "big", batch_size=32, max_steps=1, optimizer="sgd", grad_clip=None)
    small = make(tmp_path, "small", batch_size=8, grad_accum=4, max_steps=1, optimizer="sgd", grad_clip=None)
    big.fit()
    small.fit()
    for k, v in weights(big).items():
        torch.testing.assert_close(small.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_uneven_last_group_is_normalised_by_its_own_size(tmp_path):
    # 120 rows, batch 50, accumulation 2: the second step sees one micro-batch of 20 rows
    trainer = make(tmp_path, batch_size=50, grad_accum=2, epochs=1, optimizer="sgd", grad_clip=None)
    seen = []
    real_loss = trainer.task.loss
    trainer.task.loss = lambda out, t: seen.append(len(t)) or real_loss(out, t)
    trainer.fit()
    assert seen[:3] == [50, 50, 20] and trainer.state.step == 2


class Interrupt(Exception):
    pass


def progress_lines(caplog, after_step: int) -> list[str]:
    """The progress lines past `after_step`, without their clock parts (steps/s, eta)."""
    lines = [r.getMessage() for r in caplog.records if r.name == "practicum.train.progress"]
    kept = [ln for ln in lines if int(ln.split()[1].split("/")[0]) > after_step]
    return ["  ".join(p for p in ln.split("  ") if not p.endswith("steps/s") and not p.startswith("eta"))
            for ln in kept]


def logged(trainer, split):
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in trainer.runlog.rows()
            if r["split"] == split]


def test_resume_after_interruption_gives_identical_weights(tmp_path, monkeypatch, caplog):
    import io
    import logging

    monkeypatch.setattr("sys.stderr", io.StringIO())  # progress as log lines (every 4 steps)
    caplog.set_level(logging.INFO, "practicum.train.progress")
    # train rows every 3 steps, checkpoints at 5, 7, 10: the checkpoint at 10 falls mid-window
    kwargs = dict(epochs=4, batch_size=16, checkpoint_every=5, eval_every=7, dropout=0.3,
                  log_every=3, progress="auto")
    full = make(tmp_path, "full", **kwargs)
    full.fit()
    full_lines = progress_lines(caplog, 10)
    caplog.clear()

    broken = make(tmp_path, "resumed", **kwargs)
    real_step = broken._step

    def dying_step(group):
        if broken.state.step == 13:  # dies after step 13's checkpoint-free progress
            raise Interrupt
        return real_step(group)

    broken._step = dying_step
    with pytest.raises(Interrupt):
        broken.fit()
    assert broken.state.step == 13  # the checkpoint on disk is from step 10

    resumed = make(tmp_path, "resumed", **kwargs)
    torch.manual_seed(123)  # a different RNG state must be overwritten by the checkpoint's
    caplog.clear()
    resumed.fit(resume=True)
    for k, v in weights(full).items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    steps = [r["step"] for r in resumed.runlog.rows() if r["split"] == "val"]
    assert steps == sorted(set(steps)), "no duplicated rows after resume"
    assert logged(resumed, "train") == logged(full, "train")  # the loss of each row: bit for bit
    assert logged(resumed, "val") == logged(full, "val")
    assert progress_lines(caplog, 10) == full_lines and len(full_lines) == 6


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        make(tmp_path).fit(resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make(tmp_path, epochs=3, batch_size=16, checkpoint_every=4)
    real_forward = trainer.model.forward
    calls = {"n": 0}

    def forward(x):
        calls["n"] += 1
        out = real_forward(x)
        return out * float("nan") if calls["n"] > 10 else out

    trainer.model.forward = forward
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 10 .*last good checkpoint is kept"):
        trainer.fit()
    ckpt = torch.load(trainer.last_path, weights_only=True)
    assert ckpt["state"]["step"] == 8
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_early_stopping_and_best_checkpoint(tmp_path):
    trainer = make(tmp_path, epochs=50, batch_size=16, patience=2, lr=0.05, monitor="loss")
    noise = blobs(60, seed=1)
    noise["target"] = noise["target"][torch.randperm(60, generator=torch.Generator().manual_seed(0))]
    trainer.val_data = noise  # labels unrelated to inputs: validation loss soon stops improving
    state = trainer.fit()
    assert state.stopped_early and state.epoch < 50
    assert state.evals_since_best == 2 and state.best_step < state.step
    best = load_file(trainer.best_path)
    trainer.load_best()
    assert all(torch.equal(best[k], v) for k, v in trainer.model.state_dict().items())


def test_monitor_ties_are_broken_by_validation_loss(tmp_path):
    trainer = make(tmp_path)
    trainer.higher_better = True
    trainer.state.best_value, trainer.state.best_loss = 1.0, 0.5
    assert trainer._improves(1.0, 0.4) and not trainer._improves(1.0, 0.6)
    assert trainer._improves(1.01, 9.9) and not trainer._improves(0.99, 0.0)


def test_unknown_monitor_metric_is_named(tmp_path):
    with pytest.raises(UserError, match="train.monitor 'bleu'"):
        make(tmp_path, epochs=1, monitor="bleu").fit()


def test_bf16_autocast_trains_on_cpu(tmp_path):
    trainer = make(tmp_path, epochs=5, batch_size=16, lr=0.03, precision="bf16")
    trainer.fit()
    assert trainer.evaluate(trainer.val_data)["accuracy"] > 0.8


def test_without_a_terminal_progress_is_logged_in_lines(tmp_path, monkeypatch, caplog):
    import io
    import logging

    monkeypatch.setattr("sys.stderr", io.StringIO())  # output piped into a file: no bar
    caplog.set_level(logging.INFO, "practicum.train.progress")
    make(tmp_path, epochs=5, batch_size=16, log_every=4, progress="auto").fit()
    shown = [r.getMessage() for r in caplog.records if r.name == "practicum.train.progress"]
    assert [s.split("  ")[0] for s in shown] == [f"step {n}/40" for n in range(4, 41, 4)]
    assert "loss" in shown[0] and "steps/s" in shown[0] and "eta" in shown[0]
    assert "val_accuracy" in shown[-1]  # an epoch's validation shows in the next line
