"""The served models: one per bundle, each with its own worker thread(s).

    Predictor       classification, regression, token classification bundles: predict + embed,
                    micro-batched (one forward pass serves every request of a batch)
    LanguageModel   causal LMs: generate (continuous batching, decoding.py) + embed;
                    masked LMs: embed

Embeddings: a predictor's is the vector its head reads (text classifiers: the pooled state;
pretrained encoders: their pooling); a language model's is the mean of its last hidden states
over the real tokens.

Each request's inputs are decoded and checked alone (`prepare`, before anything is batched:
a bad input is that request's 422); the worker thread only runs the model, and a result that
is not a finite number fails its own request alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from practicum.bundle import Bundle
from practicum.errors import UserError
from practicum.generate import GenerationConfig
from practicum.serve import inputs
from practicum.serve.batching import Job, MicroBatcher, settle
from practicum.serve.decoding import DecodeEngine, RequestStream
from practicum.serve.limits import ApiError
from practicum.serve.metrics import ServeMetrics
from practicum.serve.settings import ServeSettings

log = logging.getLogger(__name__)

MASKED_TEXT_MODELS = ("transformer", "rnn")
"""Text models that ignore padding columns (masked attention, packed sequences): the server
cuts a batch's trailing padding before running them."""
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>")
"""Tokens that end an assistant turn in common chat templates; a chat request stops at them."""


class ServedModel:
    """A bundle behind a name. Subclasses say what it can do (`endpoints`, the one list that
    /v1/models shows and every route checks) and do it."""

    endpoints: tuple[str, ...] = ()

    def __init__(self, name: str, bundle: Bundle, settings: ServeSettings, metrics: ServeMetrics) -> None:
        self.name, self.bundle, self.settings, self.metrics = name, bundle, settings, metrics
        self.task = str(bundle.info.get("task"))
        self.created = _created(bundle.info.get("created"))
        self.batcher = MicroBatcher(name, self._run_jobs, settings.max_batch, settings.max_wait_ms / 1000,
                                    on_batch=lambda n: metrics.batch_size.labels(name, "predict").observe(n),
                                    on_cancel=lambda n: metrics.cancelled.labels(name, "inputs").inc(n))

    @property
    def kind(self) -> str:
        return "text"

    @property
    def labels(self) -> list[str] | None:
        return None

    def describe(self) -> dict[str, Any]:
        """This model's entry in GET /v1/models."""
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "practicum",
                "task": self.task, "kind": self.kind, "labels": self.labels,
                "model_type": self.bundle.config.model.type, "endpoints": list(self.endpoints),
                "chat": "chat" in self.endpoints}

    def require(self, endpoint: str) -> None:
        if endpoint not in self.endpoints:
            can = ", ".join(f"/v1/{e}" for e in self.endpoints) or "nothing"
            raise ApiError(400, f"model {self.name!r} is a {self.task} model and has no /v1/{endpoint}; "
                           f"it serves {can}", "model", "unsupported_endpoint")

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
        self.batcher.stop()

    async def warm(self) -> None:
        """Run each endpoint once, so the first real request does not pay for lazy set-up."""

    async def run(self, op: str, items: list[Any]) -> list[Any]:
        """predict or embed over a request's inputs (checked alone first), batched with other
        requests."""
        self.require(op)
        return await self.batcher.submit(op, items, await self.prepare(items))

    async def prepare(self, items: list[Any]) -> Any:
        """A request's inputs decoded and checked, in the form the worker batches (422 naming
        the bad input)."""
        return None

    def _run_jobs(self, jobs: list[Job]) -> None:
        raise NotImplementedError


class Predictor(ServedModel):
    """Classifier, regressor or tagger bundles: predict and embed in one forward pass."""

    def __init__(self, name: str, bundle: Bundle, settings: ServeSettings, metrics: ServeMetrics) -> None:
        super().__init__(name, bundle, settings, metrics)
        self.endpoints = ("predict",) if bundle.tagging is not None else ("predict", "embed")
        self._captured: list[torch.Tensor] = []
        if bundle.tagging is None:
            _head(bundle.model).register_forward_pre_hook(
                lambda module, args: self._captured.append(args[0].detach().float().cpu()))

    @property
    def kind(self) -> str:
        return "text" if self.bundle.tagging is not None else str(self.bundle.preprocessor.kind)

    @property
    def labels(self) -> list[str] | None:
        if self.bundle.tagging is not None:
            return list(self.bundle.info["tag_names"])
        return self.bundle.preprocessor.label_names

    def describe(self) -> dict[str, Any]:
        """Tabular models add "features": [{"name", "type", "example"}, ...] (to build a record)."""
        info = super().describe()
        fields = self.bundle.preprocessor.feature_fields() if self.bundle.tagging is None else None
        if fields is not None:
            info["features"] = fields
        return info

    async def warm(self) -> None:
        await self.run("predict", [self._example()])

    def _example(self) -> Any:
        """A valid input built from the bundle alone (an empty record is imputed)."""
        pre = self.bundle.preprocessor
        if self.bundle.tagging is not None or pre.kind == "text":
            return "warm up"
        if pre.kind == "image":
            import base64
            import io

            from PIL import Image

            c, h, w = pre.inputs.shape
            buffer = io.BytesIO()
            Image.new({1: "L", 3: "RGB", 4: "RGBA"}[c], (w, h)).save(buffer, format="PNG")
            return {"image": base64.b64encode(buffer.getvalue()).decode()}
        return {pre.features[0]: None}

    async def prepare(self, items: list[Any]) -> Any:
        """Images are decoded on a thread (the event loop goes on); other inputs are cheap."""
        limits = (self.settings.max_image_pixels, self.settings.max_request_pixels)
        if self.bundle.tagging is None and self.bundle.preprocessor.kind == "image":
            return await asyncio.to_thread(inputs.prepare, self.bundle, items, *limits)
        return inputs.prepare(self.bundle, items, *limits)

    def _run_jobs(self, jobs: list[Job]) -> None:
        if self.bundle.tagging is not None:
            records = self.bundle.predict(inputs.join([j.prepared for j in jobs]))
            return _share(jobs, [{k: v for k, v in r.items() if k != "input"} for r in records], None)
        pre, raw = self.bundle.preprocessor, inputs.join([j.prepared for j in jobs])
        if pre.kind == "text":  # the encoder alone: what transform() does after pandas
            batch = pre.inputs.encode(raw)
            if self.bundle.config.model.type in MASKED_TEXT_MODELS:
                batch = _trim(batch)
        else:
            batch, _, _ = pre.load_inputs(raw)
        self._captured.clear()
        outputs = self.bundle.outputs(batch)
        features = torch.cat(self._captured) if self._captured else None
        records = self.bundle.task.predictions(outputs)
        _share(jobs, records, features)


class LanguageModel(ServedModel):
    """A language-model bundle: generation (causal) and embeddings (both kinds)."""

    def __init__(self, name: str, bundle: Bundle, settings: ServeSettings, metrics: ServeMetrics) -> None:
        super().__init__(name, bundle, settings, metrics)
        self.tokenizer = bundle.tokenizer
        self.block = int(bundle.config.model.block_size)
        self.causal = bool(bundle.config.model.causal)
        self.chat_template: str | None = bundle.info.get("chat_template") or None
        self.endpoints = _lm_endpoints(self.causal, self.chat_template is not None)
        self.engine: DecodeEngine | None = None
        if self.causal:
            self.engine = DecodeEngine(
                name, bundle.model, self.tokenizer, settings.max_batch, settings.max_wait_ms / 1000,
                on_step=lambda n: self._on_step(n),
                on_admit=lambda n: metrics.prompt_tokens.labels(name).inc(n),
                on_cancel=lambda n: metrics.cancelled.labels(name, "sequences").inc(n))

    def _on_step(self, rows: int) -> None:
        self.metrics.batch_size.labels(self.name, "generate").observe(rows)
        self.metrics.generated.labels(self.name).inc(rows)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "context_length": self.block}

    def require(self, endpoint: str) -> None:
        if endpoint == "chat" and self.causal and self.chat_template is None:
            raise ApiError(400, f"model {self.name!r} has no chat template; use /v1/completions "
                           "(or /v1/generate) with a plain prompt", "messages", "no_chat_template")
        super().require(endpoint)

    def start(self) -> None:
        super().start()
        if self.engine is not None:
            self.engine.start()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop(self.settings.graceful_timeout)
        super().stop()

    async def warm(self) -> None:
        await self.run("embed", ["warm up"])
        if self.chat_template is not None:  # a template that cannot render stops the start-up
            self.render_chat([{"role": "user", "content": "warm up"}])
        if self.engine is not None:
            stream = self.generate([self.encode("warm up", "prompt")], GenerationConfig(
                max_new_tokens=2, temperature=0))
            async for _ in stream.events():
                pass

    def encode(self, prompt: str, param: str) -> list[int]:
        """A prompt's token ids, checked against the context (400 when it does not fit; new
        tokens past the context are generated from a sliding window of the last ones)."""
        ids = self.tokenizer.encode(prompt)
        if not ids:
            if self.tokenizer.bos_id is None:
                raise ApiError(400, f"{param} is empty and the tokenizer has no bos token to start from; "
                               "give some text", param, "empty_prompt")
            ids = [self.tokenizer.bos_id]
        if len(ids) > self.block:
            raise ApiError(400, f"{param} has {len(ids)} tokens but model {self.name!r} reads at most "
                           f"{self.block} (its context); shorten it to at most {self.block} tokens",
                           param, "context_length_exceeded")
        return ids

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """The conversation as the prompt text the model was tuned on (its chat template)."""
        from jinja2 import TemplateError

        from practicum.data.sft import render_chat

        if self.chat_template is None:
            raise ApiError(400, f"model {self.name!r} has no chat template; use /v1/completions "
                           "(or /v1/generate) with a plain prompt", "messages", "no_chat_template")
        try:
            return render_chat(self.chat_template, messages, True, self.tokenizer)
        except TemplateError as exc:  # raise_exception() of the template, or what its sandbox refused
            raise ApiError(400, f"messages: the chat template of model {self.name!r} cannot render "
                           f"this conversation: {type(exc).__name__}: {exc}", "messages",
                           "chat_template_error") from None

    def stop_ids(self, chat: bool) -> frozenset[int]:
        """eos, and for chat the end-of-turn tokens its template writes."""
        ids = {self.tokenizer.eos_id} if self.tokenizer.eos_id is not None else set()
        if chat and self.chat_template:
            vocab = self.tokenizer.inner.get_vocab(with_added_tokens=True)
            ids |= {vocab[t] for t in END_OF_TURN if t in self.chat_template and t in vocab}
        return frozenset(ids)

    def generate(self, prompts: list[list[int]], cfg: GenerationConfig, chat: bool = False) -> RequestStream:
        self.require("generate")
        assert self.engine is not None
        return self.engine.open(prompts, cfg, self.stop_ids(chat))

    async def prepare(self, items: list[Any]) -> Any:
        bad = next((i for i, item in enumerate(items) if not isinstance(item, str)), None)
        if bad is not None:
            raise ApiError(422, f"inputs.{bad}: a language model embeds text; send a string",
                           f"inputs.{bad}", "invalid_input")
        return None

    def _run_jobs(self, jobs: list[Job]) -> None:
        from practicum.data.text import encode_texts

        texts = [t for job in jobs for t in job.items]
        ids, mask = encode_texts(self.tokenizer, texts, self.block)
        device = self.bundle.model.wte.weight.device
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            states = self.bundle.model.hidden_states(ids, mask=mask)  # (N, T, C)
            m = mask[..., None].to(states.dtype)
            pooled = ((states * m).sum(1) / m.sum(1).clamp(min=1.0)).float().cpu()  # (N, C)
        _share(jobs, None, pooled)


def _lm_endpoints(causal: bool, chat_template: bool) -> tuple[str, ...]:
    """What a language model serves: every LM embeds; a causal one generates, and chats when
    its bundle has a chat template to render the messages with."""
    if not causal:
        return ("embed",)
    return ("generate", "completions", *(("chat",) if chat_template else ()), "embed")


def _trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the padding columns after the longest text of the batch (the encoder pads every
    text to max_length): models that mask padding give the same outputs, faster."""
    width = max(1, int(batch["mask"].sum(1).max()))
    return {k: v[:, :width] if v.dim() == 2 else v for k, v in batch.items()}


def _share(jobs: list[Job], records: list[dict] | None, features: torch.Tensor | None) -> None:
    """Give each job its rows: prediction records for predict, vectors for embed. A row that is
    not a finite number (an input far outside what the model was trained on) fails its job."""
    embeds = features is not None and any(job.op == "embed" for job in jobs)
    finite = torch.isfinite(features).all(dim=1).tolist() if embeds else None
    start = 0
    for job in jobs:
        n = len(job.prepared) if job.prepared is not None else len(job.items)
        if job.op == "embed":
            if features is None:
                settle(job.future, error=ApiError(400, "this model has no embedding", "model"))
            elif not all(finite[start:start + n]):
                settle(job.future, error=_not_finite(finite[start:start + n].index(False), "embedding"))
            else:
                settle(job.future, features[start:start + n].tolist())
        else:
            rows = records[start:start + n] if records is not None else []
            bad = next((i for i, r in enumerate(rows) if not _finite(r)), None)
            settle(job.future, rows if bad is None else None,
                   None if bad is None else _not_finite(bad, "prediction"))
        start += n


def _finite(value: Any) -> bool:
    """True when every number in a prediction record is finite (JSON cannot carry the others)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def _not_finite(i: int, what: str) -> ApiError:
    return ApiError(422, f"inputs.{i}: the {what} is not a finite number; a numeric feature is far "
                    "outside the values the model was trained on", f"inputs.{i}", "input_out_of_range")


def _head(model: nn.Module) -> nn.Module:
    """The module whose input is the representation the predictions are read from."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Module):
        return head
    linear = [m for m in model.modules() if "Linear" in type(m).__name__]
    if not linear:
        raise UserError(f"{type(model).__name__} has no linear head to read embeddings from")
    return linear[-1]


def _created(stamp: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp())
    except ValueError:
        return int(time.time())


def load_models(specs: dict[str, Path], settings: ServeSettings, metrics: ServeMetrics) -> dict[str, ServedModel]:
    """Load every bundle; the first that fails stops everything with `cannot serve NAME: why`."""
    models: dict[str, ServedModel] = {}
    for name, path in specs.items():
        try:
            bundle = Bundle.load(path, device=settings.device)
            kind = LanguageModel if bundle.is_language_model else Predictor
            models[name] = kind(name, bundle, settings, metrics)
        except UserError as exc:
            raise UserError(f"cannot serve {name}: {exc}") from None
        except Exception as exc:  # a damaged file, a shape mismatch: still one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(f"cannot serve {name}: {type(exc).__name__}: {first}") from None
        log.info("loaded %s from %s (%s, %s)", name, path, models[name].task, models[name].kind)
    return models
