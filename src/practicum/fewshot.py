"""Few-shot and zero-shot text classification with a pretrained backbone (see pretrained.py).

    idx = sample_k_shot(train_labels, k=8, seed=0)                # exactly K examples per class
    clf = EmbeddingClassifier(backbone).fit(texts, labels)        # frozen embeddings + logistic regression
    clf = setfit_fit(backbone, texts, labels, seed=0)             # contrastive fine-tuning, same head
    ZeroShotEmbedding(backbone, {"sport": "sports"}).predict(queries)        # nearest label text
    InContextClassifier(backbone, DEMO_TEMPLATE, shots, label_texts).predict(queries)  # causal LMs

Encoders classify by sentence embedding; causal LMs by the log-likelihood of each label's text
after a prompt (`score_labels`), read from the model's logits: no free-text parsing.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.models.lm import KVCache, TransformerLM
from practicum.pretrained import Backbone, embed_texts, encode_texts, pool

log = logging.getLogger(__name__)

DEMO_TEMPLATE = "Text: {text}\nLabel: {label}\n\n"
"""One demonstration; the query is this template cut just before '{label}'."""


def _plain(value: Any) -> Any:
    """A NumPy scalar (np.str_, np.int64) as the Python value it holds."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- K shots


def sample_k_shot(labels: Sequence[Hashable], k: int, seed: int) -> np.ndarray:
    """Indices (K * classes,) of exactly k examples per class, drawn without replacement by
    numpy.random.default_rng(seed); grouped by class (sorted), in draw order within a class."""
    if k < 1:
        raise UserError(f"--shots must be at least 1, got {k}")
    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    for c, n in zip(classes, counts, strict=True):
        if n < k:
            raise UserError(f"class {_plain(c)!r} has only {n} examples, fewer than --shots {k}; "
                            f"lower --shots to {counts.min()} or fewer")
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c in classes]
    return np.concatenate(picks).astype(np.int64)


# ---------------------------------------------------------------- embeddings + logistic regression


class EmbeddingClassifier:
    """Frozen sentence embeddings (`embed_texts`: L2-normalised mean pooling for encoders, last
    token for causal models) under a multinomial logistic-regression head (scikit-learn)."""

    def __init__(self, backbone: Backbone, *, C: float = 1.0, max_iter: int = 2000,
                 batch_size: int = 64, max_length: int = 128) -> None:
        self.backbone = backbone
        self.C, self.max_iter = C, max_iter
        self.batch_size, self.max_length = batch_size, max_length
        self.head: Any = None  # sklearn LogisticRegression once fitted

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, C) float32 sentence embeddings."""
        return embed_texts(self.backbone, list(texts), self.batch_size, self.max_length).cpu().numpy()

    def fit(self, texts: Sequence[str], labels: Sequence[Hashable]) -> EmbeddingClassifier:
        from sklearn.linear_model import LogisticRegression  # lazy: keeps `import practicum` fast

        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        if len(set(labels)) < 2:
            raise UserError("a classifier needs examples of at least 2 classes; give more labels")
        self.head = LogisticRegression(C=self.C, max_iter=self.max_iter)  # lbfgs: multinomial
        self.head.fit(self.embed(texts), np.asarray(labels))
        return self

    @property
    def classes(self) -> list[Hashable]:
        """The labels, in the column order of predict_proba."""
        if self.head is None:
            raise RuntimeError("call fit(texts, labels) first")
        return [_plain(c) for c in self.head.classes_]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(N, K) class probabilities; columns follow `classes`."""
        if self.head is None:
            raise RuntimeError("call fit(texts, labels) first")
        return self.head.predict_proba(self.embed(texts))

    def predict(self, texts: Sequence[str]) -> list[Hashable]:
        classes = self.classes
        return [classes[i] for i in self.predict_proba(texts).argmax(axis=1)]


# ---------------------------------------------------------------- SetFit


def contrastive_pairs(labels: Sequence[Hashable], pairs_per_example: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SetFit's pairs: in each of `pairs_per_example` rounds, every example gets one positive
    partner (same label; another example when its class has one) and one negative partner
    (another label). Returns left (P,), right (P,) indices and target (P,) 1.0 / 0.0, P = 2RN."""
    y = np.asarray(labels)
    if len(np.unique(y)) < 2:
        raise UserError("contrastive pairs need examples of at least 2 classes")
    same = [np.flatnonzero(y == y[i]) for i in range(len(y))]
    same = [s[s != i] if s.size > 1 else s for i, s in enumerate(same)]
    other = [np.flatnonzero(y != y[i]) for i in range(len(y))]
    rng = np.random.default_rng(seed)
    left, right, target = [], [], []
    for _ in range(pairs_per_example):
        for i in range(len(y)):
            left += [i, i]
            right += [same[i][rng.integers(same[i].size)], other[i][rng.integers(other[i].size)]]
            target += [1.0, 0.0]
    return np.array(left), np.array(right), np.array(target, dtype=np.float32)


def setfit_fit(backbone: Backbone, texts: Sequence[str], labels: Sequence[Hashable], *,
               pairs_per_example: int = 20, epochs: int = 1, lr: float = 2e-5,
               batch_size: int = 16, seed: int = 0, max_length: int = 64,
               C: float = 1.0) -> EmbeddingClassifier:
    """SetFit (Tunstall et al., 2022): fine-tune a copy of the encoder so that the cosine
    similarity of mean-pooled embeddings is 1 for same-label pairs and 0 for others (MSE, as
    sentence-transformers' CosineSimilarityLoss; AdamW, 10% linear warmup then linear decay),
    then fit the logistic-regression head on the new embeddings. The caller's backbone is left
    as it was; the returned classifier holds the tuned copy. Deterministic for a seed on CPU."""
    texts = list(texts)
    left, right, target = contrastive_pairs(labels, pairs_per_example, seed)
    model = copy.deepcopy(backbone.model).train()
    device = next(model.parameters()).device
    steps = epochs * math.ceil(len(target) / batch_size)
    warmup = max(1, math.ceil(0.1 * steps))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)  # decay 0.01, as sentence-transformers
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    forked = [device.index or 0] if device.type == "cuda" else []
    total = 0.0
    with torch.random.fork_rng(devices=forked):  # dropout draws from a seeded, private stream
        torch.manual_seed(seed)
        order_rng = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            for batch in torch.randperm(len(target), generator=order_rng).split(batch_size):
                b = batch.numpy()
                loss = _pair_loss(model, backbone.tokenizer, [texts[i] for i in left[b]],
                                  [texts[i] for i in right[b]], torch.from_numpy(target[b]),
                                  max_length)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item()
    log.info("setfit: %d pairs, %d steps, mean loss %.4f", len(target), steps, total / max(1, steps))
    info = {**backbone.info, "setfit": {"pairs": len(target), "epochs": epochs, "lr": lr, "seed": seed}}
    tuned = Backbone(model.eval(), backbone.tokenizer, backbone.source, info)
    return EmbeddingClassifier(tuned, C=C, max_length=max_length).fit(texts, labels)


def _pair_loss(model: TransformerLM, tokenizer: Tokenizer, left: list[str], right: list[str],
               target: Tensor, max_length: int) -> Tensor:
    """MSE between cos(u, v) of mean-pooled states and the 1 / 0 targets (one forward pass)."""
    device = next(model.parameters()).device
    ids, mask = encode_texts(tokenizer, left + right, max_length)
    ids, mask = ids.to(device), mask.to(device)
    states = model.hidden_states(ids, mask=mask)  # (2B, T, C)
    u, v = pool(states.float(), mask, "mean").chunk(2)  # (B, C) each
    return F.mse_loss(F.cosine_similarity(u, v, dim=-1), target.to(device))


# ---------------------------------------------------------------- zero-shot by embedding


class ZeroShotEmbedding:
    """Zero-shot by similarity: each text gets the label whose description (put in `template`)
    has the nearest embedding in cosine."""

    def __init__(self, backbone: Backbone, label_texts: Mapping[Hashable, str],
                 template: str = "{label}", *, batch_size: int = 64, max_length: int = 128) -> None:
        if len(label_texts) < 2:
            raise UserError("zero-shot classification needs at least 2 labels")
        self.backbone, self.batch_size, self.max_length = backbone, batch_size, max_length
        self.labels = list(label_texts)
        descriptions = [template.format(label=label_texts[k]) for k in self.labels]
        self.label_embeddings = self._embed(descriptions)  # (L, C), unit rows

    def _embed(self, texts: Sequence[str]) -> Tensor:
        return embed_texts(self.backbone, list(texts), self.batch_size, self.max_length)

    def scores(self, texts: Sequence[str]) -> Tensor:
        """(N, L) cosine similarity of each text to each label; columns follow `labels`."""
        return self._embed(texts) @ self.label_embeddings.T

    def predict(self, texts: Sequence[str]) -> list[Hashable]:
        return [self.labels[i] for i in self.scores(texts).argmax(dim=1).tolist()]


# ---------------------------------------------------------------- causal-LM label scoring


@torch.no_grad()
def score_labels(backbone: Backbone, prompts: Sequence[str], label_texts: Sequence[str],
                 batch_size: int = 16, normalize: bool = False) -> Tensor:
    """(N, L) log-likelihood under a causal LM of each label text continuing each prompt: the sum
    over the label's tokens of log p(token | prompt, earlier label tokens), divided by the label's
    token count when `normalize`.

    A batch of prompts runs once (left-padded, keys and values kept in a KV cache); the label
    continuations then run together on copies of that cache, right-padded and masked; one-token
    labels need no second pass. About `batch_size` (prompt, label) rows go through at once. A
    prompt too long for the context (model.cfg.block_size) loses tokens from its front.
    """
    model, tok = backbone.model, backbone.tokenizer
    if not model.cfg.causal:
        raise UserError(f"{backbone.source} is an encoder (bidirectional attention); label "
                        "scoring needs a causal LM (GPT, LLaMA). Use ZeroShotEmbedding instead")
    conts = [tok.encode(t) for t in label_texts]
    if not conts or not all(conts):
        raise UserError("every label needs a non-empty text to score")
    room = model.cfg.block_size - max(len(c) for c in conts)
    if room < 1:
        raise UserError(f"the longest label text has {max(len(c) for c in conts)} tokens, "
                        f"no room left in model.block_size {model.cfg.block_size}; shorten it")
    encoded = [_prompt_ids(tok, p, i) for i, p in enumerate(prompts)]
    cut = sum(len(ids) > room for ids in encoded)
    if cut:
        log.warning("%d of %d prompts are longer than the %d tokens the context leaves them; "
                    "their first tokens are dropped", cut, len(encoded), room)
    encoded = [ids[-room:] for ids in encoded]
    device = next(model.parameters()).device
    pad = _pad(tok)
    cont_ids, cont_mask = _right_padded(conts, pad)  # (L, Tc)
    cont_ids, cont_mask = cont_ids.to(device), cont_mask.to(device)
    per_pass = max(1, batch_size // len(conts))  # prompts per prompt pass
    per_chunk = max(1, batch_size // per_pass)  # labels per continuation pass
    was_training = model.training
    model.eval()
    rows = []
    for start in range(0, len(encoded), per_pass):
        prompt = _run_prompts(model, encoded[start : start + per_pass], pad, device, cont_ids.size(1))
        rows.append(torch.cat([_run_labels(model, prompt, cont_ids[j : j + per_chunk],
                                           cont_mask[j : j + per_chunk])
                               for j in range(0, len(conts), per_chunk)], dim=1))  # (B, L)
    model.train(was_training)
    scores = torch.cat(rows).cpu() if rows else torch.zeros((0, len(conts)))
    return scores / cont_mask.sum(1).cpu().to(scores) if normalize else scores


def _prompt_ids(tok: Tokenizer, prompt: str, i: int) -> list[int]:
    """A prompt's ids without specials (as generate does); bos alone for an empty prompt."""
    ids = tok.encode(prompt)
    if ids:
        return ids
    if tok.bos_id is None:
        raise UserError(f"prompt {i} is empty and the tokenizer has no bos token; give some text")
    return [tok.bos_id]


def _pad(tok: Tokenizer) -> int:
    for found in (tok.pad_id, tok.eos_id, tok.unk_id):
        if found is not None:
            return found
    return 0


def _right_padded(rows: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    """(N, T) int64 ids and bool mask, each row left-aligned."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.int64)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    return ids, mask


class _Prompts:
    """One pass over left-padded prompts: its KV cache, the log-probs at the last position
    (B, V), the prompt mask (B, P) and the prompt lengths (B,)."""

    def __init__(self, cache: KVCache, last: Tensor, mask: Tensor) -> None:
        self.cache, self.last, self.mask = cache, last, mask
        self.length = mask.long().sum(1)


def _run_prompts(model: TransformerLM, prompts: list[list[int]], pad: int, device: torch.device,
                 cont_width: int) -> _Prompts:
    """Run the prompts once, leaving room in the cache for cont_width - 1 more positions."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad, dtype=torch.int64)
    mask = torch.zeros((len(prompts), P), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), True
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.long().cumsum(1) - 1).clamp(min=0)  # (B, P): real tokens count from 0
    cache = model.new_cache(len(prompts), P + cont_width - 1)
    hidden = model.hidden_states(ids, mask=mask, positions=positions, cache=cache)  # (B, P, C)
    last = F.log_softmax(model.logits(hidden[:, -1]).float(), dim=-1)  # (B, V)
    return _Prompts(cache, last, mask)


def _run_labels(model: TransformerLM, prompt: _Prompts, cont: Tensor, cont_mask: Tensor) -> Tensor:
    """Summed log-probs (B, Lc) of Lc right-padded continuations (Lc, Tc) after each prompt."""
    B, (Lc, Tc) = prompt.last.size(0), cont.shape
    rows = torch.arange(B, device=cont.device).repeat_interleave(Lc)  # (B*Lc,) prompt of each pair
    toks, tmask = cont.repeat(B, 1), cont_mask.repeat(B, 1)  # (B*Lc, Tc)
    logp = prompt.last[rows].gather(1, toks[:, :1])  # (B*Lc, 1): first token, from the prompt pass
    if Tc > 1:  # the rest: feed all but the last continuation token after the cached prompt
        cache = copy.copy(prompt.cache)
        cache.select(rows)  # fresh (.., B*Lc, ..) tensors; the prompt's cache stays as it was
        keys = torch.cat([prompt.mask[rows], tmask[:, :-1]], dim=1)  # (B*Lc, P + Tc-1)
        positions = prompt.length[rows, None] + torch.arange(Tc - 1, device=cont.device)  # (B*Lc, Tc-1)
        hidden = model.hidden_states(toks[:, :-1], mask=keys, positions=positions, cache=cache)
        rest = F.log_softmax(model.logits(hidden).float(), dim=-1)  # (B*Lc, Tc-1, V)
        logp = torch.cat([logp, rest.gather(2, toks[:, 1:, None]).squeeze(-1)], dim=1)  # (B*Lc, Tc)
    return (logp * tmask).sum(1).view(B, Lc)


# ---------------------------------------------------------------- in-context learning


class InContextClassifier:
    """In-context learning with a causal LM: `instruction`, then each shot as `template` filled
    with its text and label text, then the query (the template cut just before '{label}'); the
    prediction is the label whose text is most likely next (`score_labels`). Shots keep their
    order (shuffle them if they are grouped by class). When the prompt would not fit the context,
    whole demonstrations are dropped from the front, with a warning."""

    def __init__(self, backbone: Backbone, template: str = DEMO_TEMPLATE,
                 shots: Sequence[tuple[str, Hashable]] = (),
                 label_texts: Mapping[Hashable, str] | None = None, *, instruction: str = "",
                 batch_size: int = 16, normalize: bool = False) -> None:
        if "{text}" not in template or "{label}" not in template:
            raise UserError(f"template {template!r} needs both {{text}} and {{label}}")
        if label_texts is None:
            label_texts = {lab: str(lab) for lab in sorted({lab for _, lab in shots}, key=str)}
        missing = {lab for _, lab in shots} - set(label_texts)
        if missing:
            raise UserError(f"shot labels {sorted(map(str, missing))} have no entry in label_texts")
        if len(label_texts) < 2:
            raise UserError("in-context classification needs at least 2 labels")
        self.backbone, self.instruction = backbone, instruction
        self.batch_size, self.normalize = batch_size, normalize
        self.labels = list(label_texts)
        head = template.split("{label}", 1)[0]
        self.query_template = head.rstrip(" ")  # a label's leading space belongs to its tokens
        gap = head[len(self.query_template) :]
        self.continuations = [gap + label_texts[k] for k in self.labels]
        self.demos = [template.format(text=text, label=label_texts[lab]) for text, lab in shots]
        tok = backbone.tokenizer
        self._demo_tokens = [len(tok.encode(d)) for d in self.demos]
        self._fixed_tokens = (len(tok.encode(instruction))
                              + max(len(tok.encode(c)) for c in self.continuations))

    def prompt(self, text: str) -> str:
        """The prompt for one query, with as many of the last demonstrations as fit the context."""
        prompt, dropped = self._build(text)
        if dropped:
            self._warn(dropped, 1)
        return prompt

    def scores(self, texts: Sequence[str]) -> Tensor:
        """(N, L) log-likelihood of each label's text; columns follow `labels`."""
        built = [self._build(t) for t in texts]
        dropped = [d for _, d in built if d]
        if dropped:
            self._warn(max(dropped), len(dropped))
        return score_labels(self.backbone, [p for p, _ in built], self.continuations,
                            self.batch_size, self.normalize)

    def predict(self, texts: Sequence[str]) -> list[Hashable]:
        return [self.labels[i] for i in self.scores(texts).argmax(dim=1).tolist()]

    def _build(self, text: str) -> tuple[str, int]:
        """The prompt and how many demonstrations were dropped from its front to fit."""
        query = self.query_template.format(text=text)
        room = (self.backbone.model.cfg.block_size - self._fixed_tokens
                - len(self.backbone.tokenizer.encode(query)))
        first = 0  # token counts of separate pieces: close to, not exactly, the joined count
        while first < len(self.demos) and sum(self._demo_tokens[first:]) > room:
            first += 1
        return self.instruction + "".join(self.demos[first:]) + query, first

    def _warn(self, dropped: int, queries: int) -> None:
        log.warning("prompt too long for model.block_size %d: dropped up to %d of %d "
                    "demonstrations (from the front) for %d queries",
                    self.backbone.model.cfg.block_size, dropped, len(self.demos), queries)


# ---------------------------------------------------------------- metrics


def evaluate_predictions(true: Sequence[Hashable], pred: Sequence[Hashable],
                         labels: Sequence[Hashable]) -> dict[str, Any]:
    """practicum.evaluate.metrics.classification_metrics (accuracy, macro F1, per class,
    confusion matrix) over label values; `labels` fixes the class order."""
    from practicum.evaluate.metrics import classification_metrics

    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(v) for v in [*true, *pred] if v not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the {len(index)} given labels")
    return classification_metrics([index[v] for v in true], [index[v] for v in pred],
                                  label_names=[str(label) for label in labels])
