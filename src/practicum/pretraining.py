"""Language-model runs: text corpus -> tokenizer -> token files -> TransformerLM -> Trainer -> bundle.

The same Trainer as every other run; what differs is the data (rows are token windows read from
a memory-mapped corpus, or BERT sentence pairs) and the task (causal_lm, masked_lm).

    run_dir/tokenizer.json     the tokenizer (trained on the corpus, or loaded)
    run_dir/corpus/            train.bin, val.bin, meta.json (token ids)
    run_dir/samples.txt        text sampled from the final causal model
    run_dir/bundle/            bundle.json, model.safetensors, tokenizer.json, metrics.json
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from practicum.config import LMConfig, RunConfig, to_yaml
from practicum.errors import UserError

log = logging.getLogger(__name__)

LM_TASKS = ("causal_lm", "masked_lm")
TOKENIZER_KINDS = ("char", "bpe", "wordpiece")
SAMPLE_PROMPTS = 3  # samples written to samples.txt at the end of a causal run
SAMPLE_TOKENS = 200


def is_lm_run(cfg: RunConfig) -> bool:
    return cfg.task.type in LM_TASKS or cfg.model.type == "lm"


def lm_task_type(cfg: RunConfig) -> str:
    """causal_lm or masked_lm, checked against the model's attention."""
    if not isinstance(cfg.model, LMConfig):
        raise UserError(
            f"task.type {cfg.task.type} needs model.type lm (a Transformer language model), "
            f"not {cfg.model.type}; set --model.type lm (and e.g. --model.preset gpt-tiny)"
        )
    task = cfg.task.type
    if task not in LM_TASKS:
        task = "causal_lm" if cfg.model.causal else "masked_lm"
    if task == "causal_lm" and not cfg.model.causal:
        raise UserError("task.type causal_lm needs model.causal true (a GPT-style model); "
                        "use task.type masked_lm for a bidirectional (BERT-style) model")
    if task == "masked_lm" and cfg.model.causal:
        raise UserError("task.type masked_lm needs model.causal false (a BERT-style model); "
                        "set --model.causal false or use task.type causal_lm")
    return task


def prepare_tokenizer(cfg: RunConfig, run_dir: Path) -> Any:
    """The run's tokenizer: the saved one when resuming, else trained on the corpus or loaded."""
    from practicum.data.corpus import iter_documents
    from practicum.data.tokenizers import Tokenizer, train_tokenizer

    saved = run_dir / "tokenizer.json"
    if saved.is_file():
        return Tokenizer.load(saved)
    corpus = cfg.data.corpus
    if corpus.tokenizer in TOKENIZER_KINDS:
        log.info("training a %s tokenizer (vocab <= %d) on %s", corpus.tokenizer,
                 corpus.vocab_size, cfg.data.path)
        texts = iter_documents(cfg.data.path, corpus.text_field)
        return train_tokenizer(corpus.tokenizer, texts, corpus.vocab_size, corpus.min_frequency,
                               source=cfg.data.path)
    if not Path(corpus.tokenizer).exists():
        raise UserError(
            f"data.corpus.tokenizer {corpus.tokenizer!r} is neither a kind "
            f"({', '.join(TOKENIZER_KINDS)}) nor an existing tokenizer.json or folder"
        )
    return Tokenizer.load(corpus.tokenizer)


def vocab_size_for(cfg: LMConfig, tokenizer: Any, requested: str = "auto") -> int:
    """The model's vocabulary: the tokenizer's, or model.vocab_size when set (and not smaller)."""
    from practicum.data.corpus import token_dtype

    need = tokenizer.vocab_size
    token_dtype(need, requested)  # refuses a vocabulary the token files cannot hold
    if cfg.vocab_size is not None and cfg.vocab_size < need:
        raise UserError(
            f"model.vocab_size {cfg.vocab_size} is smaller than the tokenizer's {need} tokens; "
            f"set model.vocab_size to at least {need} or null"
        )
    return cfg.vocab_size or need


def prepare_corpus(cfg: RunConfig, tokenizer: Any, run_dir: Path) -> dict[str, Any]:
    """Tokenize the corpus into run_dir/corpus once (a resumed run reuses it)."""
    from practicum.data.corpus import build_corpus

    out = run_dir / "corpus"
    meta_file = out / "meta.json"
    if meta_file.is_file():
        return json.loads(meta_file.read_text(encoding="utf-8"))
    return build_corpus(cfg.data.path, tokenizer, out, val_fraction=cfg.data.split.val_fraction,
                        text_field=cfg.data.corpus.text_field, seed=cfg.data.split.seed,
                        dtype=cfg.data.corpus.token_dtype)


def lm_splits(cfg: RunConfig, task_type: str, tokenizer: Any, run_dir: Path) -> tuple[Any, Any]:
    """Train and val row sources: token windows, or sentence pairs for masked LM with NSP."""
    from practicum.data.corpus import TokenWindows, load_corpus

    train_ids, val_ids, _ = load_corpus(run_dir / "corpus")
    T = cfg.model.block_size
    if task_type == "masked_lm" and cfg.task.nsp:
        return _nsp_split(train_ids, tokenizer, cfg, 0), _nsp_split(val_ids, tokenizer, cfg, 1)
    train = TokenWindows(train_ids, T, sampling=cfg.data.corpus.sampling, seed=cfg.train.seed,
                         split="train")
    limit = None if cfg.data.corpus.max_eval_tokens is None else max(1, cfg.data.corpus.max_eval_tokens // T)
    val = TokenWindows(val_ids, T, limit=limit, split="val") if len(val_ids) > T else None
    if val is None:
        log.warning("the val split has %d tokens, fewer than one window: no validation", len(val_ids))
    return train, val


def _nsp_split(ids: Any, tokenizer: Any, cfg: RunConfig, salt: int) -> dict[str, torch.Tensor]:
    from practicum.data.lm import nsp_pairs, split_documents

    if not cfg.model.pooler:
        raise UserError("task.nsp needs model.pooler true (BERT's pooler feeds the next-sentence head)")
    for role in ("cls", "sep", "pad", "mask"):
        if getattr(tokenizer, f"{role}_id") is None:
            raise UserError(f"task.nsp needs a tokenizer with a {role} token; use data.corpus.tokenizer wordpiece")
    gen = torch.Generator().manual_seed(cfg.train.seed * 2 + salt)
    return nsp_pairs(split_documents(ids, tokenizer.eos_id), cfg.model.block_size, gen,
                     cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)


def build_lm_task(task_type: str, cfg: RunConfig, tokenizer: Any, vocab_size: int) -> Any:
    from practicum.data.lm import special_ids
    from practicum.tasks import build_task

    if task_type == "causal_lm":
        table = tokenizer.token_bytes()
        if table is not None:
            table = torch.tensor(table + [0] * (vocab_size - len(table)), dtype=torch.float64)
        return build_task("causal_lm", vocab_size=vocab_size, token_bytes=table,
                          char_level=tokenizer.kind == "char")
    if tokenizer.mask_id is None:
        raise UserError("masked_lm needs a tokenizer with a mask token; train one with practicum "
                        "(data.corpus.tokenizer char, bpe or wordpiece) or add [MASK] to yours")
    return build_task("masked_lm", vocab_size=vocab_size, mask_id=tokenizer.mask_id,
                      special_ids=special_ids(tokenizer), probability=cfg.task.mlm_probability,
                      nsp=cfg.task.nsp)


def train_lm(cfg: RunConfig, run_dir: Path, resume: bool) -> Any:
    """The language-model run; returns an api.RunResult."""
    from practicum.api import RunResult
    from practicum.bundle import save_lm_bundle
    from practicum.evaluate.plots import plot_curves
    from practicum.evaluate.report import write_report
    from practicum.models.lm import TransformerLM
    from practicum.train import distributed
    from practicum.train.trainer import Trainer

    task_type = lm_task_type(cfg)
    cfg = cfg.model_copy(update={"task": cfg.task.model_copy(update={"type": task_type})})
    main = distributed.is_main()  # under torchrun rank 0 writes; the others reuse its tokenizer and corpus
    with distributed.main_first():
        tokenizer = prepare_tokenizer(cfg, run_dir)  # reads the whole corpus: errors come before writes
        vocab = vocab_size_for(cfg.model, tokenizer, cfg.data.corpus.token_dtype)
        model = TransformerLM(cfg.model, vocab_size=vocab)
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = cfg.model_copy(update={"out_dir": str(run_dir)})
        if main:
            (run_dir / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
            tokenizer.save(run_dir / "tokenizer.json")
        meta = prepare_corpus(cfg, tokenizer, run_dir)
    train, val = lm_splits(cfg, task_type, tokenizer, run_dir)
    task = build_lm_task(task_type, cfg, tokenizer, vocab)
    log.info("run folder %s: %s %s on %s (%s train / %s val tokens, vocab %d), %s parameters",
             run_dir, task_type, cfg.model.preset or "lm", cfg.data.path,
             f"{meta['tokens']['train']:,}", f"{meta['tokens']['val']:,}", vocab,
             f"{model.num_parameters():,}")
    trainer = Trainer(cfg.train, model, task, train, val, run_dir)
    state = trainer.fit(resume=resume)
    trainer.load_best()
    if not main:
        return RunResult(run_dir, run_dir / "bundle", run_dir / "report.md", {}, {"rank": trainer.dist.rank})
    metrics = {"val": trainer.evaluate(val) if val is not None else {}}
    bundle = save_lm_bundle(run_dir / "bundle", cfg, trainer.model, tokenizer, metrics)
    samples = _write_samples(run_dir, trainer.model, tokenizer) if task_type == "causal_lm" else []
    plot_curves(trainer.runlog.rows(), run_dir / "plots")
    summary = {
        "task": task_type, "monitor": trainer.monitor, "best_step": state.best_step,
        "best_value": state.best_value, "steps": state.step, "epochs_run": state.epoch,
        "stopped_early": state.stopped_early, "train_time_s": round(state.train_time_s, 3),
        "params": model.num_parameters(), "device": str(trainer.device),
        "tokens": meta["tokens"], "vocab_size": vocab, "tokenizer": tokenizer.kind,
        "val": {k: v for k, v in metrics["val"].items() if isinstance(v, (int, float))},
        "test": {}, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    report = write_report(run_dir)
    result = RunResult(run_dir, bundle, report, metrics, summary)
    result.summary["samples"] = samples
    return result


def _write_samples(run_dir: Path, model: Any, tokenizer: Any) -> list[str]:
    """A few samples from the trained model, so a newcomer sees text appear."""
    try:
        from practicum.generate import GenerationConfig, generate
    except ImportError:  # generation not available: the run is still complete
        return []
    gen = GenerationConfig(max_new_tokens=min(SAMPLE_TOKENS, model.cfg.block_size - 1),
                           temperature=0.8, top_k=40, seed=0)
    prompts = ["\n"] * SAMPLE_PROMPTS
    texts = [c.text for c in generate(model, tokenizer, prompts, gen)]
    body = "\n\n---\n\n".join(texts)
    (run_dir / "samples.txt").write_text(body + "\n", encoding="utf-8")
    return texts
