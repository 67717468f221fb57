"""`practicum resume-check`: prove that a killed-and-resumed run ends where an uninterrupted one does.

Three subprocesses of `practicum train` on a shortened copy of a recipe:
(a) the whole run; (b) the same run, SIGKILLed after a checkpoint and before the end;
(c) `--resume` of (b) to the end. Then every tensor of (a) and (c) is compared bit for bit:
the model and optimizer state of checkpoints/last.pt, the bundle's weights, the metrics in
summary.json and the rows of metrics.jsonl (wall-clock fields left out).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from practicum.errors import UserError

log = logging.getLogger(__name__)

CLOCK_KEYS = {"train_time_s", "finished", "samples_per_s"}
"""Fields that measure wall-clock time: they differ between any two runs and are not compared."""


@dataclass
class Comparison:
    """One line of the report: what was compared, whether it matched, and by how much not."""

    what: str
    equal: bool
    max_diff: float = 0.0
    detail: str = ""


@dataclass
class ResumeCheck:
    """The outcome of a resume check."""

    ok: bool
    comparisons: list[Comparison]
    total_steps: int
    kill_step: int
    resume_step: int
    mid_epoch: bool
    timings: dict[str, float] = field(default_factory=dict)
    runs: dict[str, Path] = field(default_factory=dict)  # only meaningful with keep=...

    def failures(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.equal]


def shortened(steps: int) -> list[str]:
    """The overrides that make a recipe a short run with checkpoints to resume from."""
    if steps < 4:
        raise UserError(f"--steps is {steps}; a resume check needs at least 4 steps (e.g. --steps 24)")
    return [f"train.max_steps={steps}", "train.log_every=1", f"train.checkpoint_every={max(1, steps // 5)}",
            f"train.eval_every={max(2, steps // 3)}", "train.progress=never", "train.tensorboard=false"]


def run_resume_check(
    recipe: Any,
    overrides: list[str] | None = None,
    *,
    steps: int = 24,
    keep: str | Path | None = None,
    device: str | None = None,
    nproc: int | None = None,
    between: Callable[[Path], None] | None = None,
) -> ResumeCheck:
    """Run the three trainings and compare them. `between(run_dir)` is called on the killed run's
    folder before it is resumed (a test uses it to damage the checkpoint and see the check fail)."""
    from practicum.api import resolve_config
    from practicum.config import to_yaml

    extra = shortened(steps) + ([f"train.device={device}"] if device else [])
    cfg = resolve_config(recipe, extra + list(overrides or []))
    if keep is not None:
        work = Path(keep)
        if work.exists() and any(work.iterdir()):
            raise UserError(f"--keep folder {work} is not empty; pass a new or empty folder")
        work.mkdir(parents=True, exist_ok=True)
        return _check(cfg, to_yaml, work, between, nproc)
    with tempfile.TemporaryDirectory(prefix="resume-check-") as tmp:
        return _check(cfg, to_yaml, Path(tmp), between, nproc)


def _check(cfg: Any, to_yaml: Any, work: Path, between: Callable[[Path], None] | None,
           nproc: int | None) -> ResumeCheck:
    recipe = work / "recipe.yaml"
    recipe.write_text(to_yaml(cfg), encoding="utf-8")
    full, killed = work / "full", work / "killed"
    timings: dict[str, float] = {}
    timings["full_s"] = _train(recipe, full, None, None, nproc)
    steps, epochs = _train_rows(full)
    kill, resume_at, mid_epoch = choose_kill_step(steps, epochs, cfg.train.checkpoint_every,
                                                  cfg.train.eval_every)
    log.info("uninterrupted run: %d steps; killing the second run at step %d%s (last checkpoint %d)",
             len(steps), kill, " or a little later" if nproc else "", resume_at)
    timings["killed_s"] = _train(recipe, killed, kill, None, nproc)
    if nproc:  # killed from outside: where it really died
        kill, resume_at, mid_epoch = _where_it_died(killed, steps, epochs)
    ckpt = torch.load(killed / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    if ckpt["state"]["step"] != resume_at:
        raise RuntimeError(f"the killed run's checkpoint is at step {ckpt['state']['step']}, "
                           f"expected {resume_at}")
    if between is not None:
        between(killed)
    timings["resumed_s"] = _train(recipe, killed, None, killed, nproc)
    comparisons = compare_runs(full, killed, resume_at)
    return ResumeCheck(all(c.equal for c in comparisons), comparisons, len(steps), kill, resume_at,
                       mid_epoch, timings, {"full": full, "resumed": killed})


def choose_kill_step(steps: list[int], epochs: list[int], ckpt_every: int | None,
                     eval_every: int | None) -> tuple[int, int, bool]:
    """(kill step, checkpoint step it resumes from, whether that checkpoint is mid-epoch).

    Prefers a checkpoint in the middle of an epoch near half-way, and a kill a few steps after it
    (so steps are replayed) and before the next checkpoint and the end."""
    total = len(steps)
    epoch_of = dict(zip(steps, epochs, strict=True))
    saves = sorted({s for s in steps if (ckpt_every and s % ckpt_every == 0)
                    or (eval_every and s % eval_every == 0)})
    options = []
    for i, c in enumerate(saves):
        nxt = saves[i + 1] if i + 1 < len(saves) else total
        if c >= total - 1 or nxt - c < 2:
            continue
        mid = epoch_of.get(c + 1) == epoch_of[c]
        kill = min(c + 2, nxt - 1)
        options.append((not mid, abs(c - total / 2), kill, c, mid))
    if not options:
        raise UserError(f"the run has {total} steps and no checkpoint to resume from before the end; "
                        "raise --steps (e.g. --steps 24)")
    _, _, kill, c, mid = min(options)
    return kill, c, mid


def _where_it_died(run: Path, steps: list[int], epochs: list[int]) -> tuple[int, int, bool]:
    """(last step logged, checkpoint step, mid-epoch) of a run killed from outside."""
    last = run / "checkpoints" / "last.pt"
    if not last.exists():
        raise UserError("the run was killed before its first checkpoint; raise --steps (e.g. --steps 48)")
    resume_at = int(torch.load(last, map_location="cpu", weights_only=True)["state"]["step"])
    logged, _ = _train_rows(run)
    kill = max(logged, default=resume_at)
    if resume_at >= len(steps):
        raise UserError("the run reached its end before it could be killed; raise --steps (e.g. --steps 96)")
    epoch_of = dict(zip(steps, epochs, strict=True))
    return kill, resume_at, resume_at > 0 and epoch_of.get(resume_at + 1) == epoch_of.get(resume_at)


def compare_runs(full: Path, resumed: Path, resume_step: int) -> list[Comparison]:
    """Every comparison of the report, uninterrupted run `full` against the `resumed` one."""
    a = torch.load(full / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    out = [
        _tensors("checkpoint model weights", a["model"], b["model"]),
        _tensors("optimizer state", _flat(a["optimizer"]), _flat(b["optimizer"])),
        _tensors("scheduler state", _flat(a["scheduler"]), _flat(b["scheduler"])),
        _plain("trainer progress (step, epoch, best)", _drop_clock(a["state"]), _drop_clock(b["state"])),
    ]
    for name in ("model.safetensors", "adapter.safetensors"):
        if (full / "bundle" / name).exists() or (resumed / "bundle" / name).exists():
            out.append(_safetensors(f"bundle {name}", full / "bundle" / name, resumed / "bundle" / name))
    sa, sb = (json.loads((r / "summary.json").read_text(encoding="utf-8")) for r in (full, resumed))
    for split in ("val", "test"):
        if sa.get(split) or sb.get(split):
            out.append(_plain(f"summary.json {split} metrics", sa.get(split), sb.get(split)))
    out.append(_plain("summary.json other fields", _drop_clock(sa, {"val", "test"}),
                      _drop_clock(sb, {"val", "test"})))
    ra, rb = (_metric_rows(r) for r in (full, resumed))
    for split in ("train", "val"):
        after_a = [r for r in ra if r.get("split") == split and r.get("step", 0) > resume_step]
        after_b = [r for r in rb if r.get("split") == split and r.get("step", 0) > resume_step]
        out.append(_plain(f"metrics.jsonl {split} rows after step {resume_step} ({len(after_a)})",
                          after_a, after_b))
    return out


def format_report(result: ResumeCheck) -> str:
    """The table the CLI prints."""
    width = max(len(c.what) for c in result.comparisons)
    lines = [f"{'compared':<{width}}  equal  max abs diff", "-" * (width + 22)]
    for c in result.comparisons:
        diff = f"{c.max_diff:.3g}" if c.max_diff else "0"
        lines.append(f"{c.what:<{width}}  {'yes' if c.equal else 'NO':<5}  {diff}"
                     + (f"  ({c.detail})" if c.detail else ""))
    where = "mid-epoch" if result.mid_epoch else "at an epoch boundary"
    t = result.timings
    lines.append(f"\n{result.total_steps} steps; killed (SIGKILL) at step {result.kill_step}, resumed from "
                 f"the checkpoint of step {result.resume_step} ({where})")
    lines.append(f"time: uninterrupted {t.get('full_s', 0):.1f}s, killed {t.get('killed_s', 0):.1f}s, "
                 f"resumed {t.get('resumed_s', 0):.1f}s")
    return "\n".join(lines)


# ---------------------------------------------------------------- running the trainings


def _train(recipe: Path, out: Path, kill_at: int | None, resume: Path | None, nproc: int | None = None) -> float:
    """One `practicum train` in a subprocess; with kill_at it is SIGKILLed at that step."""
    if nproc:
        cmd = [sys.executable, "-m", "practicum.cli", "train", str(recipe), "--nproc", str(nproc)]
    else:  # one process: it kills itself at exactly that step
        cmd = [sys.executable, "-m", "practicum.resume_check", str(kill_at or 0), "train", str(recipe)]
    cmd += ["--resume", str(resume)] if resume is not None else ["--out_dir", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    if nproc and kill_at:
        code, err = _kill_when_logged(cmd, env, out, kill_at)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        code, err = proc.returncode, proc.stderr
    took = time.perf_counter() - start
    if kill_at:
        if code != -signal.SIGKILL:
            raise RuntimeError(f"the run to be killed at step {kill_at} ended with code {code} "
                               f"instead:\n{err[-2000:]}")
    elif code != 0:
        what = "resumed" if resume is not None else "uninterrupted"
        raise UserError(f"the {what} training failed (exit {code}): {_last_line(err)}")
    return took


def _kill_when_logged(cmd: list[str], env: dict[str, str], out: Path, step: int) -> tuple[int, str]:
    """Several processes (torchrun): SIGKILL the whole process group from outside once
    metrics.jsonl shows `step`; the run may get a little further than that before it dies."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        while proc.poll() is None:
            try:
                steps, _ = _train_rows(out)
            except (FileNotFoundError, ValueError, KeyError):  # not started yet, or a row half written
                steps = []
            if steps and max(steps) >= step:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return -signal.SIGKILL, ""
            time.sleep(0.02)
        err.seek(0)
        return proc.returncode, err.read()


def _child(argv: list[str]) -> int:
    """Entry of the training subprocess: `python -m practicum.resume_check KILL_AT train ...`."""
    from practicum.cli import main
    from practicum.train.trainer import Trainer

    kill_at = int(argv[0])
    if kill_at:
        real_step = Trainer._step

        def dying_step(self: Trainer, group: list) -> Any:
            if self.state.step == kill_at:  # as a crash or an OOM killer would: no cleanup at all
                os.kill(os.getpid(), signal.SIGKILL)
            return real_step(self, group)

        Trainer._step = dying_step  # type: ignore[method-assign]
    return main(argv[1:])


# ---------------------------------------------------------------- comparing


def _tensors(what: str, a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    if set(a) != set(b):
        return Comparison(what, False, float("nan"), f"keys differ: {sorted(set(a) ^ set(b))[:3]}")
    worst, names = 0.0, []
    for k in a:
        x, y = a[k], b[k]
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            if x != y:
                names.append(k)
            continue
        if x.shape != y.shape or x.dtype != y.dtype:
            names.append(k)
            worst = float("nan")
        elif not torch.equal(x, y):
            names.append(k)
            diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
            worst = max(worst, diff) if worst == worst else worst
    n_t = sum(isinstance(v, torch.Tensor) for v in a.values())
    count = f"{n_t} tensors" + (f" + {len(a) - n_t} values" if len(a) > n_t else "")
    detail = f"{len(names)} of {len(a)} differ, e.g. {names[0]}" if names else count
    return Comparison(what, not names, worst, detail)


def _safetensors(what: str, a: Path, b: Path) -> Comparison:
    from safetensors.torch import load_file

    if not a.exists() or not b.exists():
        return Comparison(what, False, float("nan"), f"missing in {'resumed' if a.exists() else 'full'} run")
    return _tensors(what, load_file(a), load_file(b))


def _plain(what: str, a: Any, b: Any) -> Comparison:
    fa, fb = _flat(a), _flat(b)
    if any(isinstance(v, torch.Tensor) for v in fa.values()):
        return _tensors(what, fa, fb)
    if set(fa) != set(fb):
        return Comparison(what, False, float("nan"), f"keys differ: {sorted(set(fa) ^ set(fb))[:3]}")
    differ = [k for k in fa if fa[k] != fb[k] and not (fa[k] != fa[k] and fb[k] != fb[k])]  # nan == nan
    worst = max((abs(fa[k] - fb[k]) for k in differ
                 if isinstance(fa[k], (int, float)) and isinstance(fb[k], (int, float))), default=0.0)
    detail = f"{len(differ)} of {len(fa)} values differ, e.g. {differ[0]}" if differ else f"{len(fa)} values"
    return Comparison(what, not differ, float(worst), detail)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as {'a.b.0': leaf}."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {prefix or "value": value}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _drop_clock(d: dict[str, Any], also: set[str] | None = None) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in CLOCK_KEYS and k not in (also or set())}


def _metric_rows(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [_drop_clock(json.loads(line)) for line in lines if line]


def _train_rows(run: Path) -> tuple[list[int], list[int]]:
    rows = [r for r in _metric_rows(run) if r.get("split") == "train"]
    return [int(r["step"]) for r in rows], [int(r["epoch"]) for r in rows]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
