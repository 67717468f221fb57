"""The one training loop. It knows tasks, batches and optimizers, never which model it trains.

Data is either a dict of tensors (all rows in memory) or a row source such as
`TokenWindows` (language-model corpora: `len(source)` rows, `source.take(indices, epoch)`).

Exactness: the batch order of epoch e comes from a generator seeded by (seed, e), and
augmentation and the task's batch preparation (masked-LM corruption) of batch b from ones
seeded by (seed, e, b). A checkpoint holds the model,
optimizer, scheduler, global RNG states and the position (epoch, batch in epoch), so a
resumed run replays the same batches with the same randomness and ends on the same weights.
It also holds the loss window of the next train row and the progress display's, so the
resumed run logs the same rows.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from practicum.config import TrainConfig
from practicum.errors import TrainingDiverged, UserError
from practicum.evaluate.metrics import higher_is_better, scalar_metrics
from practicum.tasks import Task
from practicum.train import distributed
from practicum.train.checkpoint import (
    RESUME_FIX,
    load_checkpoint,
    remove_stale_temps,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
)
from practicum.train.device import BatchFeeder, resolve_device, wants_pinning
from practicum.train.optim import build_optimizer, build_scheduler
from practicum.train.precision import autocast_context, compiled, grad_scaler, set_checkpointing
from practicum.train.progress import Progress, make_progress
from practicum.train.runlog import LossWindow, RunLog

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
EVAL_LOGITS = 1 << 26
"""Most logits one streamed validation batch may hold (64M floats, 256 MB): rows x T x vocab."""


@dataclass
class TrainState:
    """Everything about progress that a checkpoint must carry besides tensors."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epoch in progress
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    samples_seen: int = 0
    best_value: float | None = None
    best_loss: float | None = None  # validation loss at the best step: breaks ties of the monitor
    best_step: int = -1
    evals_since_best: int = 0
    stopped_early: bool = False
    train_time_s: float = 0.0


class Trainer:
    """Fits `model` on `train` for `task`, validating on `val`, writing into `run_dir`."""

    def __init__(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        task: Task,
        train: Batch | Any,
        val: Batch | Any | None,
        run_dir: Path,
        augment: Callable[[Batch, torch.Generator], Batch] | None = None,
    ) -> None:
        self.cfg, self.task, self.train_data, self.augment = cfg, task, train, augment
        self.val_data = val if val is not None and _rows(val) > 0 else None
        self.run_dir = Path(run_dir)
        self.dist = distributed.setup(cfg.device)
        distributed.check_batch(cfg.batch_size, self.dist.world)
        self.device = resolve_device(cfg.device)
        if self.dist.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.fsdp = self.dist.active and cfg.strategy == "fsdp"
        self._plain = copy.deepcopy(model).cpu() if self.fsdp else None  # FSDP shards `model` in place
        if cfg.activation_checkpointing and not set_checkpointing(model, True):
            log.warning("train.activation_checkpointing: this model has no Transformer blocks; ignored")
        self.model = model.to(self.device)  # unwrapped: evaluation and checkpoints use it
        self.net = distributed.wrap(self.model, cfg.strategy, self.device) if self.dist.active else self.model
        self.forward = compiled(self.net, self.device) if cfg.compile else self.net
        self.n_train = _rows(train)
        self.batches_per_epoch = _batches_per_epoch(self.n_train, cfg.batch_size)
        steps_per_epoch = math.ceil(self.batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.total_steps)
        self.monitor = task.default_monitor if cfg.monitor == "auto" else cfg.monitor
        self.higher_better = higher_is_better(self.monitor)
        self.state = TrainState()
        self.runlog = RunLog(self.run_dir, tensorboard=cfg.tensorboard, active=self.dist.main)
        self.last_path = self.run_dir / "checkpoints" / "last.pt"
        self.best_path = self.run_dir / "checkpoints" / "best.safetensors"
        self.autocast = autocast_context(cfg.precision, self.device)
        self.scaler = grad_scaler(cfg.precision, self.device)
        self.pin = wants_pinning(cfg.pin_memory, self.device)
        self.feeder = BatchFeeder(self._prepared, cfg.num_workers)
        self.window, self.progress = LossWindow(), Progress()

    # ------------------------------------------------------------ public

    def fit(self, resume: bool = False) -> TrainState:
        if self.dist.main:
            for folder in (self.run_dir, self.last_path.parent, self.run_dir / "bundle"):
                remove_stale_temps(folder)
        self.window = LossWindow()
        saved_progress = self._restore() if resume else {}
        if self.n_train == 0:
            raise UserError("the training split is empty; check data.path and data.split fractions")
        progress = make_progress(self.cfg.progress if self.dist.main else "never", self.total_steps,
                                 self.state.step)
        progress.load_state_dict(saved_progress)
        self.progress = progress
        start = time.perf_counter() - self.state.train_time_s
        try:
            while self.state.step < self.total_steps and not self.state.stopped_early:
                self._run_epoch(progress, self.window, start)
        finally:
            self.state.train_time_s = time.perf_counter() - start
            self.feeder.close()
            progress.close()
            self.runlog.close()
        if distributed.broadcast(self.val_data is None or not self.best_path.exists()):
            self._save_best()
        self._save_last()
        distributed.barrier()  # every rank may read best weights from here on
        return self.state

    def predict_outputs(self, data: Batch) -> torch.Tensor:
        """Model outputs for every row of `data`, in order, on the CPU (float32)."""
        was_training = self.model.training
        self.model.eval()
        outputs = batched_outputs(self.model, data, self.cfg.eval_batch_size, self.device, self.autocast)
        self.model.train(was_training)
        return outputs

    def evaluate(self, data: Batch | Any) -> dict[str, Any]:
        """Loss and the task's metrics over a whole split."""
        if self.task.streams:
            return self._evaluate_stream(data)
        return self.score(self.predict_outputs(data), data["target"])

    @torch.no_grad()
    def _evaluate_stream(self, data: Batch | Any) -> dict[str, Any]:
        """Metrics accumulated batch by batch (language models: logits are too big to keep).

        Batches of eval_batch_size rows in order (fewer when the logits of a batch would pass
        EVAL_LOGITS elements); the task's preparation (masking) of batch b is seeded by (seed, b),
        so every validation sees the same examples.
        """
        was_training = self.model.training
        self.model.eval()
        totals = self.task.stream_start()
        width = _take(data, torch.arange(1), 0)["tokens"].numel() * self.task.num_outputs()
        bs = max(1, min(self.cfg.eval_batch_size, EVAL_LOGITS // max(width, 1)))
        for b, lo in enumerate(range(0, _rows(data), bs)):
            idx = torch.arange(lo, min(lo + bs, _rows(data)))
            gen = torch.Generator().manual_seed(_mix(self.cfg.seed, -1, b))
            batch = _to_device(self.task.prepare(_take(data, idx, 0), gen), self.device)
            with self.autocast:
                outputs = self.model(**_inputs(batch))
            self.task.stream_add(totals, outputs, batch)
        self.model.train(was_training)
        return self.task.stream_result(totals)

    def score(self, outputs: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Loss and metrics from outputs already computed (so a split is run only once)."""
        loss = float(self.task.loss(outputs, target)) / max(1, len(target))
        return {"loss": loss, **self.task.metrics(outputs, target)}

    def load_best(self) -> None:
        """The best weights; after FSDP training into a plain copy of the model (every rank
        evaluates and rank 0 tests and writes the bundle without the group)."""
        from safetensors.torch import load_file

        if self._plain is not None:
            self.model = self.net = self._plain.to(self.device)
            self.fsdp, self._plain = False, None
        self.model.load_state_dict(load_file(self.best_path, device=str(self.device)))

    # ------------------------------------------------------------ the loop

    def _run_epoch(self, progress: Progress, window: LossWindow, start: float) -> None:
        st, cfg = self.state, self.cfg
        plan = self._batch_plan(st.epoch)
        self.feeder.start(plan, st.batch_in_epoch)
        self.model.train()
        progress.epoch(st.epoch + 1, cfg.epochs)
        while st.batch_in_epoch < len(plan) and st.step < self.total_steps:
            group = plan[st.batch_in_epoch : st.batch_in_epoch + cfg.grad_accum]
            loss, n = self._step(group)
            st.batch_in_epoch += len(group)
            st.samples_seen += n
            window.add(loss * n, n)
            st.step += 1
            if st.step % cfg.log_every == 0 or st.step == self.total_steps:
                self._log_train(window, progress)
            progress.step(st.step, loss, self.optimizer.param_groups[0]["lr"])  # before a checkpoint
            if cfg.eval_every and st.step % cfg.eval_every == 0:
                self._validate(progress, start)
            elif cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
                self._save_last(start)
            if st.stopped_early:
                return
        if st.batch_in_epoch >= len(plan):  # a whole epoch is done
            st.epoch += 1
            st.batch_in_epoch = 0
            if not cfg.eval_every:
                self._validate(progress, start)

    def _step(self, group: list[torch.Tensor]) -> tuple[float, int]:
        """One optimizer step over a group of micro-batches; the loss is averaged over all rows.

        With N processes each rank computes its shard's sum / rows in the group, times N
        (DDP averages gradients over ranks), so the gradient is the single-process one.
        """
        n_group = sum(len(idx) for idx in group)
        total = 0.0
        for b, idx in enumerate(group):
            batch = self._micro_batch(idx, self.state.batch_in_epoch + b)
            with distributed.no_sync(self.net, b == len(group) - 1):
                with self.autocast:
                    outputs = self.forward(**_inputs(batch))
                    loss = self.task.batch_loss(outputs, batch) / n_group
                value = float(loss.detach())
                if not math.isfinite(value):
                    self._diverged(f"loss became {value}")
                loss = loss * self.dist.world if self.dist.active else loss
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += value
        total = distributed.all_reduce_sum(total)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor
            if not torch.isfinite(norm) and self.scaler is None:  # fp16: the scaler skips the step
                self._diverged(f"the gradient norm became {float(norm)}")
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, n_group

    def _micro_batch(self, idx: torch.Tensor, batch_index: int) -> Batch:
        """The global micro-batch `idx`, prepared (maybe ahead, by the feeder's workers),
        then this rank's shard of it, on the device."""
        batch = self.feeder.get(idx, self.state.epoch, batch_index)
        return _to_device(distributed.shard(batch, self.dist), self.device, self.pin)

    def _prepared(self, idx: torch.Tensor, epoch: int, batch_index: int) -> Batch:
        """Rows `idx` augmented and prepared with their (seed, epoch, batch) generators, exactly
        as in one process and in any order."""
        batch = _take(self.train_data, idx, epoch)
        if self.augment is not None:
            batch = self.augment(batch, self._augment_generator(batch_index, 0, epoch))
        return self.task.prepare(batch, self._augment_generator(batch_index, 1, epoch))

    def _batch_plan(self, epoch: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(_mix(self.cfg.seed, epoch))
        order = torch.randperm(self.n_train, generator=gen)
        bs = self.cfg.batch_size
        mask = self.train_data.get("mask") if isinstance(self.train_data, dict) else None
        if self.cfg.group_by_length and mask is not None:
            order = _grouped_by_length(order, mask.sum(1), bs, gen)
        plan = [order[i : i + bs] for i in range(0, self.n_train, bs)]
        if len(plan) > 1 and len(plan[-1]) == 1:  # a batch of one breaks batch norm
            plan.pop()
        return plan

    def _augment_generator(self, batch_index: int, stream: int = 0, epoch: int | None = None) -> torch.Generator:
        """Seeded by (seed, epoch, batch); stream 1 is the task's preparation, 0 augmentation."""
        epoch = self.state.epoch if epoch is None else epoch
        parts = (self.cfg.seed, epoch, batch_index) + ((stream,) if stream else ())
        return torch.Generator().manual_seed(_mix(*parts))

    # ------------------------------------------------------------ validation, checkpoints

    def _validate(self, progress: Progress, start: float) -> None:
        st = self.state
        if self.val_data is None:
            self._save_last(start)
            return
        metrics = scalar_metrics(self.evaluate(self.val_data))
        if self.monitor not in metrics:
            raise UserError(
                f"train.monitor {self.monitor!r} is not a validation metric; "
                f"choose one of {', '.join(sorted(metrics))}"
            )
        self.runlog.write({"split": "val", "step": st.step, "epoch": st.epoch, **metrics})
        value = metrics[self.monitor]
        if self._improves(value, metrics["loss"]):
            st.best_value, st.best_loss, st.best_step = value, metrics["loss"], st.step
            st.evals_since_best = 0
            self._save_best()
        else:
            st.evals_since_best += 1
            if self.cfg.patience is not None and st.evals_since_best >= self.cfg.patience:
                st.stopped_early = True
                log.info("early stopping at step %d: no %s improvement in %d validations",
                         st.step, self.monitor, st.evals_since_best)
        progress.validated(self.monitor, value)
        self.runlog.flush()
        self._save_last(start)

    def _improves(self, value: float, loss: float) -> bool:
        """Better on the monitor, or equal on it (accuracy saturates on small sets) with lower loss."""
        best = self.state.best_value
        if best is None:
            return True
        if value != best:
            return value > best if self.higher_better else value < best
        return self.state.best_loss is not None and loss < self.state.best_loss

    def _save_last(self, start: float | None = None) -> None:
        """Rank 0 writes the unwrapped model, optimizer, scheduler, progress and RNG state."""
        if start is not None:
            self.state.train_time_s = time.perf_counter() - start
        model = distributed.model_state(self.model, self.fsdp)  # FSDP: every rank gathers
        optimizer = distributed.optimizer_state(self.model, self.optimizer, self.fsdp)
        if not self.dist.main:
            return
        save_checkpoint(
            self.last_path,
            {
                "model": model,
                "optimizer": optimizer,
                "scheduler": self.scheduler.state_dict(),
                "state": asdict(self.state),
                "rng": rng_state(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "window": self.window.state_dict(),
                "progress": self.progress.state_dict(),
            },
        )

    def _save_best(self) -> None:
        weights = distributed.model_state(self.model, self.fsdp)
        if self.dist.main:
            save_weights(self.best_path, weights)

    def _restore(self) -> dict[str, Any]:
        """Load last.pt into the model, optimizer, loop and loss window; returns the progress
        display's saved state."""
        if not self.last_path.exists():
            raise UserError(
                f"nothing to resume: {self.last_path} does not exist; start the run without --resume"
            )
        ckpt = load_checkpoint(self.last_path, map_location=self.device)
        missing = [k for k in ("model", "optimizer", "scheduler", "state", "rng") if k not in ckpt]
        if missing:
            raise UserError(f"checkpoint {self.last_path} is not a practicum training checkpoint "
                            f"(no {', '.join(missing)}); {RESUME_FIX}")
        try:
            distributed.load_model_state(self.model, ckpt["model"], self.fsdp)
        except RuntimeError as err:
            detail = str(err).splitlines()[-1].strip()
            raise UserError(f"checkpoint {self.last_path} does not fit this run's model ({detail}); "
                            f"resume with the config it was written with, or {RESUME_FIX}") from None
        distributed.load_optimizer_state(self.model, self.optimizer, ckpt["optimizer"], self.fsdp)
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(**ckpt["state"])
        set_rng_state(ckpt["rng"])
        if ckpt.get("window"):  # checkpoints of earlier releases have none: the window starts empty
            self.window.load_state_dict(ckpt["window"])
        self.runlog.truncate_after(self.state.step)
        log.info("resumed from %s at step %d (epoch %d, batch %d)", self.last_path,
                 self.state.step, self.state.epoch, self.state.batch_in_epoch)
        return ckpt.get("progress") or {}

    def _diverged(self, what: str) -> None:
        st = self.state
        kept = (
            f"the last good checkpoint is kept at {self.last_path}"
            if self.last_path.exists()
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"{what} at step {st.step + 1} (epoch {st.epoch + 1}); training stopped and {kept}. "
            "Lower --train.lr or set --train.grad_clip, then run again (or --resume)."
        )

    def _log_train(self, window: LossWindow, progress: Progress) -> None:
        loss, rate = window.take()
        st = self.state
        lr = self.optimizer.param_groups[0]["lr"]
        self.runlog.write({"split": "train", "step": st.step, "epoch": st.epoch,
                           "loss": loss, "lr": lr, "samples_per_s": rate})
        progress.trained(loss, rate)


# ---------------------------------------------------------------- helpers


def _grouped_by_length(order: torch.Tensor, lengths: torch.Tensor, bs: int,
                       gen: torch.Generator, chunk_batches: int = 50) -> torch.Tensor:
    """A shuffled order in which each run of `bs` rows has similar lengths: sort within random
    chunks of chunk_batches batches, then shuffle the batches (Hugging Face's group_by_length)."""
    chunk = bs * chunk_batches
    parts = []
    for i in range(0, len(order), chunk):
        piece = order[i : i + chunk]
        parts.append(piece[torch.argsort(lengths[piece], descending=True, stable=True)])
    grouped = torch.cat(parts)
    batches = list(grouped.split(bs))
    tail = batches.pop() if len(batches) > 1 and len(batches[-1]) < bs else None
    shuffled = [batches[j] for j in torch.randperm(len(batches), generator=gen).tolist()]
    return torch.cat(shuffled + ([tail] if tail is not None else []))


def _mix(*parts: int) -> int:
    """A seed from several integers (stable across runs and machines)."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value * 6364136223846793005 + int(p) + 1442695040888963407) % (1 << 63)
    return value


def _rows(data: Batch | Any) -> int:
    if not isinstance(data, dict):  # a row source (TokenWindows)
        return len(data)
    return len(next(iter(data.values()))) if data else 0


def _take(data: Batch | Any, idx: torch.Tensor, epoch: int) -> Batch:
    """Rows `idx` of a split: sliced from in-memory tensors, or read from a row source."""
    if isinstance(data, dict):
        return _slice(data, idx)
    return data.take(idx, epoch)


def _batches_per_epoch(n: int, bs: int) -> int:
    full, rest = divmod(n, bs)
    return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


def _slice(data: Batch, idx: Any) -> Batch:
    return {k: v[idx] for k, v in data.items()}


def _to_device(batch: Batch, device: torch.device, pin: bool = False) -> Batch:
    """On `device`; pinned first (page-locked) when `pin`, so the copy can overlap compute."""
    return {k: (v.pin_memory() if pin else v).to(device, non_blocking=True) for k, v in batch.items()}


def _inputs(batch: Batch) -> Batch:
    """The model's keyword arguments: every key but the targets (target, nsp_target, ...)."""
    return {k: v for k, v in batch.items() if k != "target" and not k.endswith("_target")}


@torch.no_grad()
def batched_outputs(model: nn.Module, data: Batch, batch_size: int, device: torch.device,
                    autocast: Any = None) -> torch.Tensor:
    """Model outputs for every row of `data`, in order, as float32 on the CPU (no gradients)."""
    outs = []
    for lo in range(0, _rows(data), batch_size):
        batch = _to_device(_slice(data, slice(lo, lo + batch_size)), device)
        with autocast or nullcontext():
            outs.append(model(**_inputs(batch)).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)
