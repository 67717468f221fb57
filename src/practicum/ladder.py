"""The fine-tuning ladder: every way of adapting one pretrained model to one labelled text data
set, cheapest first, measured the same way on the same split.

    zero_shot      label names only: cosine to their embeddings (encoders) or label
                   log-likelihood after a prompt (causal LMs); nothing trains
    few_shot       K examples per class: embeddings + logistic regression (encoders) or K
                   demonstrations in the prompt (causal LMs); repeated over seeds
    prompt_tuning  soft prompt + head        linear_probe  head only
    lora           adapters + head           full          every weight

Training rungs are ordinary runs (`practicum train` with peft.strategy set), so each leaves a
run folder and a bundle. Each rung reports accuracy and macro F1 on the evaluation split (test
when the config has one, else val; training rungs pick their best checkpoint on val), with a
95% t-interval over seeds where it ran more than one, trainable parameters, training time, the
process's peak resident memory during the rung, and the median latency of one-text requests.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from practicum.config import RunConfig
from practicum.errors import UserError

log = logging.getLogger(__name__)

RUNGS = ("zero_shot", "few_shot", "prompt_tuning", "linear_probe", "lora", "full")
TRAINING_RUNGS = ("prompt_tuning", "linear_probe", "lora", "full")
LATENCY_CALLS = 30


@dataclass
class Rung:
    """One rung's figures; `accuracy`/`f1_macro` are means over `seeds` runs."""

    name: str
    method: str
    accuracy: float
    f1_macro: float
    seeds: int = 1
    accuracy_ci: float | None = None  # half-width of the 95% interval
    f1_ci: float | None = None
    trainable_params: int = 0
    train_time_s: float = 0.0
    peak_rss_mb: float | None = None
    latency_ms: float | None = None
    run_dir: str | None = None
    per_seed: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Ladder:
    recipe: str
    model: str
    data: str
    eval_split: str
    eval_rows: int
    train_rows: int
    classes: int
    shots: int
    rungs: list[Rung]
    out_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rungs": [asdict(r) for r in self.rungs]}


def run_ladder(config: RunConfig, out_dir: str | Path) -> Ladder:
    """Run config.ladder's rungs for a fine-tuning recipe (model.type pretrained) and write
    ladder.json, ladder.md and ladder.html into out_dir."""
    from practicum.data.loading import text_splits
    from practicum.pretrained import load_backbone

    if config.model.type != "pretrained":
        raise UserError(f"ladder needs a fine-tuning recipe (model.type pretrained), got {config.model.type}")
    chosen = [r for r in RUNGS if r in config.ladder.rungs]  # cheapest first
    seeds, shots, train_overrides = config.ladder.seeds, config.ladder.shots, config.ladder.overrides
    unknown = sorted(set(train_overrides) - set(TRAINING_RUNGS))
    if unknown:
        raise UserError(f"ladder.overrides names {', '.join(unknown)}; only training rungs take "
                        f"overrides ({', '.join(TRAINING_RUNGS)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = text_splits(config.data, config.task)
    eval_split = "test" if "test" in splits else "val"
    train, evaluation = splits["train"], splits[eval_split]
    labels = sorted(set(train[1]))
    backbone = load_backbone(config.model.init_from)
    results = []
    for name in chosen:
        log.info("ladder: rung %s", name)
        with PeakRSS() as peak:
            if name in TRAINING_RUNGS:
                rung = _training_rung(name, config, out, train_overrides.get(name, []),
                                      eval_split)
            else:
                rung = _prompting_rung(name, backbone, train, evaluation, labels, seeds, shots,
                                       config.model.max_length)
        rung.peak_rss_mb = peak.mb
        results.append(rung)
        log.info("ladder: %s accuracy %.4f, macro F1 %.4f", name, rung.accuracy, rung.f1_macro)
    ladder = Ladder(config.name, config.model.init_from, config.data.path, eval_split,
                    len(evaluation[0]), len(train[0]), len(labels), shots, results, str(out))
    write_ladder(ladder, out)
    return ladder


# ---------------------------------------------------------------- rungs


def _prompting_rung(name: str, backbone: Any, train: tuple[list[str], list[str]],
                    evaluation: tuple[list[str], list[str]], labels: list[str], seeds: int,
                    shots: int, max_length: int) -> Rung:
    """zero_shot and few_shot: nothing trains by gradient (few_shot fits a logistic head)."""
    from practicum.fewshot import (
        EmbeddingClassifier,
        InContextClassifier,
        ZeroShotEmbedding,
        evaluate_predictions,
        sample_k_shot,
    )

    texts, truth = evaluation
    names = {lab: lab.replace("_", " ") for lab in labels}
    runs, predictor, start = [], None, time.perf_counter()
    for seed in range(1 if name == "zero_shot" else seeds):
        if name == "zero_shot":
            method = "label-name cosine" if not backbone.causal else "label log-likelihood"
            predictor = (InContextClassifier(backbone, shots=(), label_texts=names)
                         if backbone.causal else ZeroShotEmbedding(backbone, names, max_length=max_length))
        else:
            picked = sample_k_shot(train[1], shots, seed)
            if backbone.causal:  # K demonstrations in the prompt, shuffled
                order = list(picked)
                random.Random(seed).shuffle(order)
                method = f"in-context, {shots} demonstrations"
                predictor = InContextClassifier(backbone, shots=[(train[0][i], train[1][i]) for i in order[:shots]],
                                                label_texts=names)
            else:
                method = f"embeddings + logistic regression, {shots} per class"
                predictor = EmbeddingClassifier(backbone, max_length=max_length).fit(
                    [train[0][i] for i in picked], [train[1][i] for i in picked])
        m = evaluate_predictions(truth, predictor.predict(texts), labels)
        runs.append({"seed": seed, "accuracy": m["accuracy"], "f1_macro": m["f1_macro"]})
    elapsed = time.perf_counter() - start
    acc, acc_ci = mean_ci([r["accuracy"] for r in runs])
    f1, f1_ci = mean_ci([r["f1_macro"] for r in runs])
    trainable = len(labels) * (backbone.model.cfg.n_embd + 1) if name == "few_shot" and not backbone.causal else 0
    return Rung(name, method, acc, f1, len(runs), acc_ci, f1_ci, trainable,
                round(elapsed / len(runs), 2) if name == "few_shot" else 0.0,
                latency_ms=_latency(lambda text: predictor.predict([text]), texts), per_seed=runs)


def _training_rung(name: str, config: RunConfig, out: Path, extra: list[str], eval_split: str) -> Rung:
    from practicum import api

    overrides = [f"peft.strategy={name}", f"out_dir={out / name}", *extra]
    result = api.train(config, overrides)
    metrics = result.metrics.get(eval_split) or result.metrics["val"]
    bundle = api.load(result.bundle)
    texts = _sample_texts(bundle, config)
    return Rung(name, _describe(name, result), float(metrics["accuracy"]), float(metrics["f1_macro"]),
                trainable_params=int(result.summary["trainable_params"]),
                train_time_s=float(result.summary["train_time_s"]),
                latency_ms=_latency(lambda text: bundle.predict([text]), texts),
                run_dir=str(result.run_dir))


def _describe(name: str, result: Any) -> str:
    cfg = RunConfig.model_validate(json.loads((Path(result.bundle) / "bundle.json").read_text())["config"])
    p, t = cfg.peft, cfg.train
    what = {"prompt_tuning": f"soft prompt of {p.prompt_tokens} + head", "linear_probe": "head only",
            "lora": f"LoRA r={p.lora_r} on {', '.join(p.lora_targets)} + head", "full": "all weights"}[name]
    return f"{what}; lr {t.lr:g}, {result.summary['epochs_run']} epochs"


def _sample_texts(bundle: Any, config: RunConfig) -> list[str]:
    from practicum.data.loading import raw_split
    from practicum.data.text import column_text

    raw = raw_split(config.data, config.task, "val")
    return column_text(raw.frame.head(LATENCY_CALLS), bundle.preprocessor.features)


def _latency(predict: Any, texts: list[str]) -> float | None:
    """Median milliseconds of one-text predictions (after one warm-up call)."""
    texts = [t for t in texts[:LATENCY_CALLS] if t] or texts[:1]
    if not texts:
        return None
    predict(texts[0])
    times = []
    for text in texts:
        start = time.perf_counter()
        predict(text)
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 2)


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """Mean and the half-width of its 95% Student-t interval (None for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    from scipy.stats import t

    half = t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, float(half)


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 50 ms), in MB."""

    def __init__(self) -> None:
        self.mb: float | None = None
        self._stop = threading.Event()

    def _rss(self) -> float | None:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):
            return None

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            now = self._rss()
            if now is not None:
                self.mb = max(self.mb or 0.0, now)

    def __enter__(self) -> PeakRSS:
        self.mb = self._rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self.mb is not None:
            self.mb = round(self.mb, 1)


# ---------------------------------------------------------------- output


def read_ladder(path: str | Path) -> Ladder:
    """A ladder back from its ladder.json (to redraw its pages)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["rungs"] = [Rung(**r) for r in data["rungs"]]
    return Ladder(**data)


def write_ladder(ladder: Ladder, out: Path) -> None:
    from practicum.ladder_page import ladder_html, ladder_markdown

    (out / "ladder.json").write_text(json.dumps(ladder.to_dict(), indent=2), encoding="utf-8")
    (out / "ladder.md").write_text(ladder_markdown(ladder), encoding="utf-8")
    (out / "ladder.html").write_text(ladder_html(ladder, out), encoding="utf-8")
