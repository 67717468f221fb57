"""Continuous batching for a causal language model: one decoding loop on a worker thread that
admits waiting sequences into the running batch between steps.

    engine = DecodeEngine("gpt", model, tokenizer, max_batch=32, max_wait_s=0.005)
    engine.start()
    stream = engine.open(prompts=[ids], cfg=GenerationConfig(...), stop_ids={eos})
    async for event in stream.events(): ...          # Event(index, text piece, finish_reason)

Every running sequence is one row of a shared KV cache whose columns are decoding steps: a
row's tokens sit right-aligned before the current column t, padding before them is masked
out, and each row carries its own positions, so rows of any length decode together. A new
group of sequences is prefilled on its own (left padding), then its keys and values are
copied into new rows of the cache, ending at column t (the cache is re-laid out then: leading
columns no row needs are dropped, and room is made for the longest remaining budget).
A sequence that has filled the context (block_size tokens) leaves the cache: from then on
each step runs its last block_size tokens from scratch (a sliding window, as
`practicum.generate` does), batched with the other full sequences.
Sampling is per row (each request has its own temperature, top-k/p, seed and stop strings)
with `practicum.generate.sample_next`, so a request gives what `practicum.generate` gives.

One request's trouble stays its own: a row whose sampling fails ends alone with an error, a
group whose prefill fails fails alone, and sequences whose client left (RequestStream.cancel)
are dropped before the next step, queued or running (counted by `on_cancel`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from practicum.data.tokenizers import Tokenizer
from practicum.generate import GenerationConfig, TextTracker, sample_next
from practicum.models.lm import KVCache, TransformerLM

log = logging.getLogger(__name__)


@dataclass
class Event:
    """A new piece of one sequence's text; `finish_reason` is set on its last event."""

    index: int
    text: str = ""
    finish_reason: str | None = None  # "stop" | "length"
    tokens: int = 0
    prompt_tokens: int = 0
    error: BaseException | None = None


class Sequence:
    """One prompt being completed: its sampling state, text tracker and where its events go."""

    def __init__(self, index: int, prompt: list[int], cfg: GenerationConfig, budget: int,
                 stop_ids: frozenset[int], tokenizer: Tokenizer, emit: Callable[[Event], None]) -> None:
        self.index, self.prompt, self.cfg, self.budget = index, prompt, cfg, budget
        self.stop_ids, self.emit = stop_ids, emit
        self.tracker = TextTracker(tokenizer, cfg.stop)
        self.history = list(prompt)  # prompt + new tokens, for the repetition penalty
        self.made = self.shown = 0
        self.col = 0  # cache column of the first prompt token
        self.cancelled = False
        self.generator: torch.Generator | None = None
        if not cfg.greedy:
            self.generator = torch.Generator()
            if cfg.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(cfg.seed)

    @property
    def length(self) -> int:
        """Tokens in the sequence: prompt and new ones."""
        return len(self.prompt) + self.made

    @property
    def position(self) -> int:
        """Position of the last chosen token (the one the next decoding step reads)."""
        return self.length - 1

    @property
    def remaining(self) -> int:
        return self.budget - self.made

    def push(self, token: int) -> bool:
        """Take the chosen token, send the text it completes; True when the sequence ended."""
        self.made += 1
        self.history.append(token)
        reason = None
        if token in self.stop_ids or self.tracker.push(token):  # a stop token is not text
            reason = "stop"
        elif self.made >= self.budget:
            reason = "length"
        if reason is not None:
            text = self.tracker.finish()
            self.emit(Event(self.index, text[self.shown:], reason, self.made, len(self.prompt)))
            return True
        text = self.tracker.shown_text()
        if len(text) > self.shown:
            self.emit(Event(self.index, text[self.shown:]))
            self.shown = len(text)
        return False


class RequestStream:
    """The event-loop end of one request's sequences."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.sequences: list[Sequence] = []
        self.open = count

    def emit(self, event: Event) -> None:
        """Called on the worker thread."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.cancel()

    def cancel(self) -> None:
        for s in self.sequences:
            s.cancelled = True

    async def events(self) -> AsyncIterator[Event]:
        """Every event until each sequence has finished; an engine failure is raised."""
        try:
            while self.open:
                event = await self.queue.get()
                if event.error is not None:
                    raise event.error
                if event.finish_reason is not None:
                    self.open -= 1
                yield event
        finally:
            if self.open:
                self.cancel()  # the client left early: free the rows

    async def collect(self) -> list[Event]:
        """Wait for every sequence; one Event per sequence with its whole text, in index order."""
        pieces: dict[int, list[str]] = {s.index: [] for s in self.sequences}
        last: dict[int, Event] = {}
        async for event in self.events():
            pieces[event.index].append(event.text)
            if event.finish_reason is not None:
                last[event.index] = event
        return [Event(i, "".join(pieces[i]), last[i].finish_reason, last[i].tokens, last[i].prompt_tokens)
                for i in sorted(pieces)]


class DecodeEngine:
    """The decoding loop of one model. `open()` from the event loop; the rest runs on the worker."""

    def __init__(self, name: str, model: TransformerLM, tokenizer: Tokenizer, max_batch: int,
                 max_wait_s: float, on_step: Callable[[int], None] | None = None,
                 on_admit: Callable[[int], None] | None = None,
                 on_cancel: Callable[[int], None] | None = None) -> None:
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.max_batch, self.max_wait_s = max(1, max_batch), max(0.0, max_wait_s)
        self.on_step, self.on_admit, self.on_cancel = on_step, on_admit, on_cancel
        self.block = int(model.cfg.block_size)
        self._queue: queue.Queue[Sequence | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._reset()

    # ------------------------------------------------------------ the event-loop side

    def open(self, prompts: list[list[int]], cfg: GenerationConfig,
             stop_ids: frozenset[int]) -> RequestStream:
        """Queue one sequence per prompt (each prompt at most the context long)."""
        if self._stopping or self._thread is None:
            raise RuntimeError(f"model {self.name} is not running (the server is shutting down)")
        stream = RequestStream(len(prompts))
        for i, prompt in enumerate(prompts):
            seq = Sequence(i, prompt, cfg, cfg.max_new_tokens, stop_ids, self.tokenizer, stream.emit)
            stream.sequences.append(seq)
        for seq in stream.sequences:
            self._queue.put(seq)
        return stream

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"decode-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let running and queued sequences finish, then end the worker."""
        if self._thread is not None:
            self._stopping = True
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------ the worker

    def _reset(self) -> None:
        self._reset_cache()
        self.full: list[Sequence] = []  # sequences past the context: sliding window, no cache
        self.full_logits: Tensor | None = None  # (F, V)

    def _reset_cache(self) -> None:
        self.rows: list[Sequence] = []  # sequences in the cache, one row each
        self.cache: KVCache | None = None
        self.mask: Tensor | None = None  # (B, cap) bool: which cache columns hold a row's tokens
        self.logits: Tensor | None = None  # (B, V): the next-token logits of each row

    @property
    def running(self) -> list[Sequence]:
        return self.rows + self.full

    def _loop(self) -> None:
        stop = False
        with torch.inference_mode():
            while not (stop and not self.running):
                pending, stop = self._take(stop)
                if pending:
                    try:
                        self._admit(pending)
                    except Exception as exc:  # fail the new group alone; the running rows go on
                        log.exception("prefill of model %s failed", self.name)
                        for s in pending:
                            s.emit(Event(s.index, error=exc))
                if not self.running:
                    continue
                try:
                    self._step()
                except Exception as exc:  # the model itself failed: fail this batch, keep serving
                    log.exception("decoding step of model %s failed", self.name)
                    for s in self.running:
                        s.emit(Event(s.index, error=exc))
                    self._reset()

    def _take(self, stop: bool) -> tuple[list[Sequence], bool]:
        """Waiting sequences to admit now: blocks (then waits max_wait) only when idle."""
        pending: list[Sequence] = []
        room = self.max_batch - len(self.running)
        deadline = None
        if not self.running and not stop:
            first = self._queue.get()
            if first is None:
                return [], True
            pending.append(first)
            deadline = time.perf_counter() + self.max_wait_s
        while len(pending) < room:
            left = 0.0 if deadline is None else deadline - time.perf_counter()
            try:
                seq = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if seq is None:
                stop = True
                break
            pending.append(seq)
        live = [s for s in pending if not s.cancelled]
        self._cancelled(len(pending) - len(live))
        return live, stop

    def _cancelled(self, n: int) -> None:
        if n and self.on_cancel is not None:
            self.on_cancel(n)

    def _admit(self, new: list[Sequence]) -> None:
        """Prefill the new sequences together and add them as rows of the running batch."""
        if self.on_admit is not None:
            self.on_admit(sum(len(s.prompt) for s in new))
        L = max(len(s.prompt) for s in new)
        device = self.model.wte.weight.device
        ids = torch.zeros(len(new), L, dtype=torch.long, device=device)
        mask = torch.zeros(len(new), L, dtype=torch.bool, device=device)
        for i, s in enumerate(new):
            ids[i, L - len(s.prompt):] = torch.tensor(s.prompt, dtype=torch.long)
            mask[i, L - len(s.prompt):] = True
        positions = (mask.cumsum(1) - 1).clamp(min=0)  # (n, L)
        cache = self.model.new_cache(len(new), L)
        out = self.model(ids, mask=None if bool(mask.all()) else mask, positions=positions, cache=cache)
        logits = (out[0] if isinstance(out, tuple) else out)[:, -1].float()  # (n, V)
        self._merge(new, cache, mask, logits)

    def _merge(self, new: list[Sequence], cache: KVCache, mask: Tensor, logits: Tensor) -> None:
        """Lay the cache out again: the live columns of the old rows, then the new rows, all
        ending at the new current column, with room for the longest remaining budget."""
        n, L = mask.shape
        old, B = self.rows, len(self.rows)
        if B:
            t = self.cache.length
            first = min(s.col for s in old)
            width = t - first
        else:
            t = first = width = 0
        now = max(width, L)  # the new current column
        cap = now + max(min(s.remaining, self.block - s.length) for s in old + new) + 1
        merged = self.model.new_cache(B + n, cap)
        full_mask = torch.zeros(B + n, cap, dtype=torch.bool, device=mask.device)
        if B:
            shift = now - width
            merged.k[:, :B, :, shift:now] = self.cache.k[:, :, :, first:t]
            merged.v[:, :B, :, shift:now] = self.cache.v[:, :, :, first:t]
            full_mask[:B, shift:now] = self.mask[:, first:t]
            for s in old:
                s.col += shift - first
        merged.k[:, B:, :, now - L:now] = cache.k[:, :, :, :L]
        merged.v[:, B:, :, now - L:now] = cache.v[:, :, :, :L]
        full_mask[B:, now - L:now] = mask
        for s in new:
            s.col = now - len(s.prompt)
        merged.length = now
        self.cache, self.mask, self.rows = merged, full_mask, old + new
        self.logits = logits if self.logits is None or not B else torch.cat([self.logits, logits])

    def _sample(self, rows: list[Sequence], logits: Tensor | None) -> list[int | None]:
        """Each row's next token, with that row's own sampling settings and generator; None for
        a row whose sampling failed (that sequence alone ends, with the error)."""
        chosen: list[int | None] = [0] * len(rows)
        if not rows:
            return chosen
        plain = [i for i, s in enumerate(rows) if s.cfg.greedy and s.cfg.repetition_penalty == 1.0]
        if plain:
            best = logits[plain].argmax(dim=-1).tolist()
            for i, token in zip(plain, best, strict=True):
                chosen[i] = token
        for i, s in enumerate(rows):
            if (s.cfg.greedy and s.cfg.repetition_penalty == 1.0) or s.cancelled:
                continue
            try:
                history = None
                if s.cfg.repetition_penalty != 1.0:
                    history = torch.tensor([s.history], dtype=torch.long, device=logits.device)
                chosen[i] = int(sample_next(logits[i:i + 1], history, s.cfg, s.generator)[0])
            except Exception as exc:
                log.warning("sampling failed for one sequence of model %s: %s: %s", self.name,
                            type(exc).__name__, exc)
                s.emit(Event(s.index, error=exc))
                s.cancelled, chosen[i] = True, None
        return chosen

    def _ends(self, s: Sequence, token: int | None) -> bool:
        """Whether the sequence leaves the batch now: its client left, its sampling failed, or
        the chosen token ended it."""
        if token is None:
            return True
        if s.cancelled:
            self._cancelled(1)
            return True
        return s.push(token)

    def _step(self) -> None:
        """One token for every sequence; ended ones leave; the rest read their token: one
        forward through the cache, one over the windows of the sequences past the context."""
        chosen = self._sample(self.rows, self.logits)
        chosen_full = self._sample(self.full, self.full_logits)
        if self.on_step is not None:
            self.on_step(len(self.running))
        self.full = [s for s, token in zip(self.full, chosen_full, strict=True) if not self._ends(s, token)]
        keep = [row for row, (s, token) in enumerate(zip(self.rows, chosen, strict=True))
                if not self._ends(s, token)]
        self.full += [self.rows[r] for r in keep if self.rows[r].length > self.block]
        keep = [r for r in keep if self.rows[r].length <= self.block]
        self._decode_cached(keep, chosen)
        self._decode_full()

    def _decode_full(self) -> None:
        """Next-token logits of the sequences past the context, each from its last block_size
        tokens at positions 0..block_size-1 (all are that long, so no padding)."""
        if not self.full:
            self.full_logits = None
            return
        device = self.model.wte.weight.device
        ids = torch.tensor([s.history[-self.block:] for s in self.full], dtype=torch.long,
                           device=device)  # (F, block)
        out = self.model(ids)
        self.full_logits = (out[0] if isinstance(out, tuple) else out)[:, -1].float()  # (F, V)

    def _decode_cached(self, keep: list[int], chosen: list[int]) -> None:
        """The kept cache rows read the tokens just chosen (one step through the cache)."""
        if not keep:
            self._reset_cache()
            return
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, device=self.mask.device)
            self.cache.select(index)
            self.mask = self.mask[index]
            self.rows = [self.rows[r] for r in keep]
        t = self.cache.length
        if t >= self.mask.size(1):  # never expected: the layout leaves room for every budget
            raise RuntimeError(f"decoding cache of model {self.name} is full at column {t}")
        device = self.mask.device
        tokens = torch.tensor([[chosen[r]] for r in keep], dtype=torch.long, device=device)  # (B, 1)
        positions = torch.tensor([[s.position] for s in self.rows], dtype=torch.long, device=device)
        self.mask[:, t] = True
        out = self.model(tokens, mask=self.mask[:, :t + 1], positions=positions, cache=self.cache)
        self.logits = (out[0] if isinstance(out, tuple) else out)[:, -1].float()  # (B, V)
