"""Text generation from a causal TransformerLM, and fill-mask for a bidirectional one.

    cfg = GenerationConfig(max_new_tokens=50, temperature=0.8, top_k=40, seed=0)
    [c.text for c in generate(model, tokenizer, ["Once upon", "The"], cfg)]
    for delta in stream(model, tokenizer, "Once upon", cfg): ...
    fill_mask(bert, tokenizer, "Paris is the [MASK] of France.")

Layers: `sample_next` picks one token per row from logits; `generate_ids` is the id-level
loop (left-padded batch, prefill then one token a step through the KV cache; once the
sequence fills the context, the model reads a sliding window of its last block_size tokens);
`generate` and `stream` add the tokenizer: incremental decoding and stop strings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from practicum.data.tokenizers import Tokenizer
from practicum.errors import UserError
from practicum.models.lm import TransformerLM

FinishReason = Literal["stop", "eos", "length"]
MASK_MARKER = "[MASK]"
"""Written in fill_mask text where a token is missing (the tokenizer's own mask token works too)."""
GREEDY_BELOW = 1e-5
"""Temperatures below this pick the most likely token (as vLLM does): dividing logits by a
smaller number only overflows them."""


@dataclass
class GenerationConfig:
    """How to pick new tokens and when to stop."""

    max_new_tokens: int = 128
    """New tokens per prompt, unless eos or a stop string ends it first. Past the context
    (model.block_size) the model reads only the last block_size tokens (a sliding window)."""
    temperature: float = 1.0
    """Divide logits by this before sampling; 0 (or below GREEDY_BELOW) = greedy (always the
    most likely token)."""
    top_k: int | None = None
    """Sample only among the k most likely tokens."""
    top_p: float | None = None
    """Nucleus sampling: only the smallest set of tokens whose probability sums to >= top_p."""
    repetition_penalty: float = 1.0
    """> 1 discourages tokens already present (CTRL rule: positive logits / p, negative * p)."""
    stop: list[str] = field(default_factory=list)
    """A sequence ends when its new text contains one of these; the text is cut before it."""
    seed: int | None = None
    """Seed of the sampling generator, for reproducible samples; None = random."""
    use_cache: bool = True
    """Keep keys/values of past positions (KV cache); False re-runs the whole sequence each step."""
    stop_at_eos: bool = True
    """End a sequence when it produces the tokenizer's eos token."""

    def __post_init__(self) -> None:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (math.isfinite(self.temperature) and self.temperature >= 0,
             f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature}"),
            (self.top_k is None or self.top_k >= 1, f"top_k must be >= 1 or None, got {self.top_k}"),
            (self.top_p is None or 0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (math.isfinite(self.repetition_penalty) and self.repetition_penalty > 0,
             f"repetition_penalty must be a finite number > 0 (1 = off), got {self.repetition_penalty}"),
            (all(self.stop), "stop strings must not be empty; remove the empty string from stop"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"generation: {message}")

    @property
    def greedy(self) -> bool:
        """True when sampling is the argmax (temperature 0 or below GREEDY_BELOW)."""
        return self.temperature < GREEDY_BELOW


@dataclass
class Completion:
    """One prompt's result: the new text only (not the prompt) and how it ended."""

    text: str
    token_ids: list[int]
    """Every new token, including an eos or the tokens of a stop string that ended it."""
    finish_reason: FinishReason
    prompt_tokens: int
    new_tokens: int


@dataclass
class Step:
    """One decoding step of `generate_ids`."""

    tokens: dict[int, int]
    """Prompt index -> the token it got this step (sequences still running only)."""
    finished: dict[int, FinishReason]
    """Prompt index -> why it ended, for the sequences that ended at this step."""


# ---------------------------------------------------------------- sampling


def sample_next(logits: Tensor, history: Tensor | None, cfg: GenerationConfig,
                generator: torch.Generator | None = None) -> Tensor:
    """The next token of each row: (B,) int64, from logits (B, V).

    history (B, S): ids already in each sequence (prompt and generated; negative = padding),
    for the repetition penalty. Processors run in Hugging Face's order: repetition penalty,
    temperature, top-k, top-p; then argmax (cfg.greedy) or a draw from `generator`.
    Any valid settings give a token: logits that overflow (a tiny temperature or penalty
    divides them) are clamped, NaN never wins, and a row left with no finite logit takes its
    most likely token.
    """
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and history is not None:
        logits = apply_repetition_penalty(logits, history, cfg.repetition_penalty)
    logits = _finite(logits)
    if cfg.greedy:
        return logits.argmax(dim=-1)
    first = logits
    logits = _finite(logits / cfg.temperature)
    if cfg.top_k is not None:
        logits = top_k_filter(logits, cfg.top_k)
    if cfg.top_p is not None and cfg.top_p < 1.0:
        logits = top_p_filter(logits, cfg.top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    lost = ~torch.isfinite(probs).all(dim=-1) | ~(probs.sum(dim=-1) > 0)  # (B,)
    if bool(lost.any()):
        best = first[lost].argmax(dim=-1, keepdim=True)
        probs[lost] = torch.zeros_like(probs[lost]).scatter_(1, best, 1.0)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _finite(logits: Tensor) -> Tensor:
    """NaN -> -inf (never chosen), +inf -> the largest float (ties share the mass)."""
    return torch.nan_to_num(logits, nan=float("-inf"), posinf=torch.finfo(logits.dtype).max,
                            neginf=float("-inf"))


def apply_repetition_penalty(logits: Tensor, history: Tensor, penalty: float) -> Tensor:
    """Logits of tokens present in history: positive ones / penalty, negative ones * penalty."""
    real = history >= 0
    counts = torch.zeros_like(logits).scatter_add_(1, history.clamp(min=0), real.to(logits.dtype))
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(counts > 0, penalised, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """-inf everywhere but the k largest logits of each row (ties with the k-th are kept)."""
    k = min(k, logits.size(-1))
    kth = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """-inf outside each row's nucleus: the fewest most-likely tokens whose probability sums
    to >= p (at least one token)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
    drop_sorted = before >= p  # the top token has 0 before it, so it always stays
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


# ---------------------------------------------------------------- the id-level loop


class _Batch:
    """Left-padded decoding state of the running rows: ids, mask, KV cache.

    While the columns fit the context (model.block_size), each step runs the newest column
    through the KV cache. Once they do not, every step runs the last block_size columns
    from scratch, at positions counted from the window's start (nanoGPT's crop): the cache
    cannot simply drop its oldest column, since every later key and value was computed
    with that token in view (and, with learned positions, at other positions).
    """

    def __init__(self, model: TransformerLM, prompts: list[list[int]], cfg: GenerationConfig,
                 steps: int) -> None:
        self.model, self.cfg = model, cfg
        device = next(model.parameters()).device
        lengths = [len(p) for p in prompts]
        B, P = len(prompts), max(lengths)
        self.padded = min(lengths) < P
        self.block = model.cfg.block_size
        self.ids = torch.zeros(B, P + steps, dtype=torch.long, device=device)
        self.mask = torch.ones(B, P + steps, dtype=torch.bool, device=device)
        for row, prompt in enumerate(prompts):
            self.ids[row, P - len(prompt):P] = torch.tensor(prompt, dtype=torch.long)
            self.mask[row, :P - len(prompt)] = False
        self.t = P  # columns filled so far
        self.cache = model.new_cache(B, min(P + steps, self.block)) if cfg.use_cache else None
        self.generator: torch.Generator | None = None
        if not cfg.greedy:
            self.generator = torch.Generator(device=device)
            if cfg.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(cfg.seed)
        self.logits = self._window()

    def _window(self) -> Tensor:
        """Run the last block_size columns (all of them while they fit) from an empty cache."""
        start = max(0, self.t - self.block)
        mask = self.mask[:, start:self.t]  # (B, T)
        positions = (mask.cumsum(1) - 1).clamp(min=0)  # (B, T), from the window's first real token
        if self.cache is not None:
            self.cache.length = 0
        return self._run(self.ids[:, start:self.t], mask, positions)

    def _newest(self) -> Tensor:
        """Run column t-1 through the cache, which holds columns 0..t-2."""
        mask = self.mask[:, :self.t]  # (B, t)
        positions = mask.sum(1, keepdim=True) - 1  # (B, 1)
        return self._run(self.ids[:, self.t - 1:self.t], mask, positions)

    def _run(self, ids: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
        """The next-token logits (B, V) after these columns."""
        out = self.model(ids, mask=mask if self.padded else None, positions=positions, cache=self.cache)
        logits = out[0] if isinstance(out, tuple) else out  # (B, T, V)
        return logits[:, -1]

    @torch.inference_mode()
    def sample(self) -> list[int]:
        """Choose each running row's next token and write it in column t."""
        history = None
        if self.cfg.repetition_penalty != 1.0:
            history = self.ids[:, :self.t].masked_fill(~self.mask[:, :self.t], -1)  # (B, t)
        chosen = sample_next(self.logits, history, self.cfg, self.generator)  # (B,)
        self.ids[:, self.t] = chosen
        self.t += 1
        return chosen.tolist()

    @torch.inference_mode()
    def advance(self, keep: list[int]) -> None:
        """Keep these rows (the others ended) and compute logits after the tokens just chosen."""
        if len(keep) < self.ids.size(0):
            rows = torch.tensor(keep, device=self.ids.device)
            self.ids, self.mask = self.ids[rows], self.mask[rows]
            if self.cache is not None:
                self.cache.select(rows)
        fits = self.cache is not None and self.t <= self.block
        self.logits = self._newest() if fits else self._window()


def check_prompts(model: TransformerLM, prompts: list[list[int]]) -> None:
    """Refuse, before any work, what generation cannot do: a bidirectional model, an empty
    prompt, a prompt longer than the context (its start would be dropped unread)."""
    if model.cfg.causal is False:
        raise UserError("generation needs a causal (GPT- or LLaMA-style) model; this is a "
                        "bidirectional masked LM: use fill_mask")
    block = model.cfg.block_size
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise UserError(f"prompt {i} has no tokens; give at least one token")
        if len(prompt) > block:
            raise UserError(f"prompt {i} has {len(prompt)} tokens but the context (model."
                            f"block_size) is {block}; shorten it to at most {block} tokens")


def generate_ids(model: TransformerLM, prompts: list[list[int]], cfg: GenerationConfig,
                 eos_id: int | None = None,
                 stop_when: Callable[[int, int], bool] | None = None) -> Iterator[Step]:
    """Generate from token-id prompts (any lengths, batched with left padding); yield each Step.

    The prompts are checked here (`check_prompts`), before the first step is asked for.
    stop_when(prompt index, new token) is asked after every token; True ends that sequence
    with finish reason "stop". A sequence also ends at eos_id (cfg.stop_at_eos), and after
    cfg.max_new_tokens: "length". Past the context the model reads the last block_size tokens.
    The model runs in eval mode (restored after) and under torch.inference_mode.
    """
    check_prompts(model, prompts)
    return _decode(model, prompts, cfg, eos_id, stop_when)


def _decode(model: TransformerLM, prompts: list[list[int]], cfg: GenerationConfig,
            eos_id: int | None, stop_when: Callable[[int, int], bool] | None) -> Iterator[Step]:
    if not prompts:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            batch = _Batch(model, prompts, cfg, cfg.max_new_tokens)
        running, made = list(range(len(prompts))), [0] * len(prompts)
        while running:
            chosen = batch.sample()
            step, keep = Step({}, {}), []
            for row, (i, token) in enumerate(zip(running, chosen, strict=True)):
                step.tokens[i] = token
                made[i] += 1
                stopped = stop_when is not None and stop_when(i, token)
                if cfg.stop_at_eos and token == eos_id:
                    step.finished[i] = "eos"
                elif stopped:
                    step.finished[i] = "stop"
                elif made[i] >= cfg.max_new_tokens:
                    step.finished[i] = "length"
                else:
                    keep.append(row)
            yield step
            running = [running[row] for row in keep]
            if running:
                batch.advance(keep)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------- text


class StopMatcher:
    """Finds the first stop string in text that arrives piece by piece, in time linear in the
    text: one Knuth-Morris-Pratt automaton per stop string, fed each new character once.

    `held` is the length of the longest end of the text that may still grow into a stop
    string (it must not be shown yet).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.fail = [_prefix_function(s) for s in self.stops]
        self.state = [0] * len(self.stops)  # per stop: its longest prefix the text ends with
        self.seen = 0  # characters fed so far

    def feed(self, piece: str) -> int | None:
        """Read more text; the offset (in all the text fed) where the first completed stop string
        begins, or None. After a hit the matcher is done."""
        for j, ch in enumerate(piece):
            found: int | None = None
            for k, stop in enumerate(self.stops):
                q, fail = self.state[k], self.fail[k]
                while q and stop[q] != ch:
                    q = fail[q - 1]
                if stop[q] == ch:
                    q += 1
                if q == len(stop):
                    start = self.seen + j + 1 - q
                    found = start if found is None else min(found, start)
                    q = fail[q - 1]
                self.state[k] = q
            if found is not None:
                return found
        self.seen += len(piece)
        return None

    @property
    def held(self) -> int:
        return max(self.state, default=0)


def _prefix_function(s: str) -> list[int]:
    """pi[i]: length of the longest proper prefix of s[:i + 1] that is also its suffix."""
    pi = [0] * len(s)
    for i in range(1, len(s)):
        q = pi[i - 1]
        while q and s[i] != s[q]:
            q = pi[q - 1]
        pi[i] = q + 1 if s[i] == s[q] else 0
    return pi


class TextTracker:
    """One sequence's new text as tokens arrive: decoded only once stable, cut at a stop string.

    Decoding a short window of recent tokens (the vLLM scheme) keeps each step cheap; text is
    added only when the window's decode grew and does not end in U+FFFD (a byte-level token
    that completes a character may still be coming). Stop strings are matched as the text
    grows (StopMatcher), so each step costs the new characters, whatever the stop strings' length.
    """

    def __init__(self, tokenizer: Tokenizer, stop: list[str]) -> None:
        self.tokenizer, self.stop = tokenizer, stop
        self.matcher = StopMatcher(stop) if stop else None
        self.ids: list[int] = []
        self.prefix = self.read = 0  # window start; end of the tokens already turned to text
        self.text = ""  # stable text so far (up to `cut` once a stop string was seen)
        self.cut: int | None = None
        self.done = False

    def push(self, token: int) -> bool:
        """Add a token; True when a stop string has appeared."""
        self.ids.append(token)
        if self.cut is None:
            self._decode(final=False)
        return self.cut is not None

    def finish(self) -> str:
        """Decode what is left (even if it ends in U+FFFD) and return the final text."""
        if self.cut is None and self.read < len(self.ids):
            self._decode(final=True)
        self.done = True
        return self.final_text

    @property
    def final_text(self) -> str:
        return self.text if self.cut is None else self.text[:self.cut]

    def shown_text(self) -> str:
        """Text safe to show now: never a possible start of a stop string."""
        if self.done or self.cut is not None:
            return self.final_text
        held = self.matcher.held if self.matcher is not None else 0
        return self.text[:len(self.text) - held]

    def _decode(self, final: bool) -> None:
        before = self.tokenizer.decode(self.ids[self.prefix:self.read])
        after = self.tokenizer.decode(self.ids[self.prefix:])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not final):
            return
        piece = after[len(before):]
        self.text += piece
        self.prefix, self.read = self.read, len(self.ids)
        if self.matcher is not None and not final:
            self.cut = self.matcher.feed(piece)


def _encode_prompts(tokenizer: Tokenizer, prompts: list[str]) -> list[list[int]]:
    encoded = tokenizer.encode_batch(prompts)
    for i, ids in enumerate(encoded):
        if not ids:
            if tokenizer.bos_id is None:
                raise UserError(f"prompt {i} is empty and the tokenizer has no bos token to "
                                "start from; give some prompt text")
            ids.append(tokenizer.bos_id)
    return encoded


class _TextRun:
    """generate_ids over text prompts, with a text tracker per prompt (prompts checked at once)."""

    def __init__(self, model: TransformerLM, tokenizer: Tokenizer, prompts: list[str],
                 cfg: GenerationConfig) -> None:
        self.encoded = _encode_prompts(tokenizer, prompts)
        self.trackers = [TextTracker(tokenizer, cfg.stop) for _ in prompts]
        push = (lambda i, token: self.trackers[i].push(token))  # noqa: E731
        self._steps = generate_ids(model, self.encoded, cfg, tokenizer.eos_id, push)

    def steps(self) -> Iterator[Step]:
        for step in self._steps:
            for i in step.finished:
                self.trackers[i].finish()
            yield step


def generate(model: TransformerLM, tokenizer: Tokenizer, prompts: str | list[str],
             cfg: GenerationConfig | None = None) -> list[Completion]:
    """Complete each prompt (batched); one Completion per prompt, in order."""
    cfg = cfg or GenerationConfig()
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        return []
    run = _TextRun(model, tokenizer, prompts, cfg)
    new: list[list[int]] = [[] for _ in prompts]
    reasons: dict[int, FinishReason] = {}
    for step in run.steps():
        for i, token in step.tokens.items():
            new[i].append(token)
        reasons.update(step.finished)
    return [Completion(run.trackers[i].final_text, new[i], reasons[i], len(run.encoded[i]),
                       len(new[i])) for i in range(len(prompts))]


def stream(model: TransformerLM, tokenizer: Tokenizer, prompt: str,
           cfg: GenerationConfig | None = None) -> Iterator[str]:
    """The new text of one prompt, piece by piece as tokens arrive.

    The prompt is checked by this call (a UserError before anything is generated); the
    pieces join to exactly `generate(...)[0].text`: a piece is given only once its
    characters are complete and it cannot be the start of a stop string.
    """
    return _pieces(_TextRun(model, tokenizer, [prompt], cfg or GenerationConfig()))


def _pieces(run: _TextRun) -> Iterator[str]:
    shown = 0
    for _ in run.steps():
        text = run.trackers[0].shown_text()
        if len(text) > shown:
            yield text[shown:]
            shown = len(text)


# ---------------------------------------------------------------- fill-mask


def fill_mask(model: TransformerLM, tokenizer: Tokenizer, text: str,
              top_k: int = 5) -> list[list[tuple[str, float]]]:
    """For each mask in `text` (written [MASK] or as the tokenizer's mask token), in order,
    the top_k most likely (token, probability) pairs, most likely first."""
    if model.cfg.causal:
        raise UserError("fill-mask needs a masked-LM (BERT-style) bundle; this model is causal "
                        "(GPT/LLaMA-style): use generate")
    if tokenizer.mask_id is None:
        raise UserError("the tokenizer has no mask token; fill-mask needs one (e.g. <mask> or "
                        "[MASK]) in the tokenizer the model was trained with")
    if top_k < 1:
        raise UserError(f"top_k must be >= 1, got {top_k}")
    markers = {MASK_MARKER, tokenizer.specials["mask"]}
    pieces = re.split("|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True)), text)
    if len(pieces) == 1:
        raise UserError(f"no mask in the text; write {' or '.join(sorted(markers))} where a "
                        "token is missing")
    ids = [] if tokenizer.cls_id is None else [tokenizer.cls_id]
    for n, piece in enumerate(pieces):
        if n:
            ids.append(tokenizer.mask_id)
        ids.extend(tokenizer.encode(piece))
    if tokenizer.sep_id is not None:
        ids.append(tokenizer.sep_id)
    if len(ids) > model.cfg.block_size:
        raise UserError(f"the text has {len(ids)} tokens but the context (model.block_size) is "
                        f"{model.cfg.block_size}; shorten it")
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(tokens)
            logits = (out[0] if isinstance(out, tuple) else out)[0]  # (T, V)
            probs = logits[tokens[0] == tokenizer.mask_id].float().softmax(dim=-1)  # (M, V)
            best = probs.topk(min(top_k, probs.size(-1)), dim=-1)
    finally:
        model.train(was_training)
    return [[(tokenizer.decode([i], skip_special=False), p) for i, p in zip(row_ids, row_p, strict=True)]
            for row_ids, row_p in zip(best.indices.tolist(), best.values.tolist(), strict=True)]
