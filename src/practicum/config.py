"""The run schema: one typed, validated config for data, model, train and task.

This file is the only place defaults live. Each field's docstring is its help text
(`practicum config fields`). Recipes are YAML files of the same shape; CLI flags
such as `--train.lr 3e-4` override any field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from practicum.errors import UserError


class Section(BaseModel):
    """Base for every config section: unknown fields are errors, docstrings are help."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, use_attribute_docstrings=True
    )


# ---------------------------------------------------------------- data


class SplitConfig(Section):
    method: Literal["random", "stratified", "files"] = "stratified"
    """How val/test are carved from the training file: random, stratified by target, or only given files."""
    val_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Fraction of the training file held out for validation (when no val_path is given)."""
    test_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Fraction of the training file held out for test (when no test_path or official test split exists)."""
    seed: int = 0
    """Seed of the split; the same seed gives the same split on every machine."""


class TextConfig(Section):
    tokenizer: Literal["word", "char"] = "word"
    """Vocabulary unit for text columns: whitespace/punctuation words or characters."""
    lowercase: bool = True
    """Lowercase text before tokenizing."""
    max_length: Annotated[int, Field(ge=1)] = 64
    """Tokens kept per example; longer texts are truncated."""
    min_freq: Annotated[int, Field(ge=1)] = 1
    """Tokens seen fewer times than this in training map to <unk>."""
    max_vocab: Annotated[int, Field(ge=4)] = 30000
    """Largest vocabulary kept (most frequent tokens first), specials included."""


class AugmentConfig(Section):
    enabled: bool = False
    """Apply random augmentation to training images (never to val/test)."""
    crop_padding: Annotated[int, Field(ge=0)] = 0
    """Random crop: pad each side by this many pixels, then crop back to the original size."""
    hflip: bool = False
    """Random horizontal flip with probability 0.5 (off for digits and text-like images)."""
    rotation: Annotated[float, Field(ge=0.0, le=180.0)] = 0.0
    """Random rotation by up to this many degrees either way."""


class ImageConfig(Section):
    normalize: bool = True
    """Standardise pixels with per-channel mean and std measured on the training split."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    """Training-time augmentation."""


class CorpusConfig(Section):
    tokenizer: str = "char"
    """Language-model tokenizer: char, bpe (byte-level BPE) or wordpiece, trained on the corpus; or the path of a tokenizer.json or Hugging Face tokenizer folder."""
    vocab_size: Annotated[int, Field(ge=8)] = 8000
    """Largest vocabulary a trained tokenizer may have, specials included (char keeps every character seen min_frequency times, up to this)."""
    min_frequency: Annotated[int, Field(ge=1)] = 1
    """A trained tokenizer keeps only symbols/merges seen at least this often."""
    text_field: str = "text"
    """The JSONL field that holds each document's text."""
    token_dtype: Literal["auto", "uint16", "uint32"] = "auto"
    """Id type of the token files: auto picks uint16 when the vocabulary fits (<= 65,536), else uint32."""
    sampling: Literal["random", "phase"] = "random"
    """Training windows: random (independent random offsets, nanoGPT) or phase (non-overlapping windows, a random phase per epoch); both exactly reproducible."""
    max_eval_tokens: Annotated[int, Field(ge=1)] | None = 200_000
    """Validate on at most this many tokens (windows spread evenly over the val split); null uses all."""


class DataConfig(Section):
    path: str = "builtin:digits"
    """Training data: a CSV/JSONL/Parquet file, an NPZ/NPY array file, a folder of images per class, an IDX file, or builtin:NAME (see `practicum data list`)."""
    format: Literal["auto", "csv", "jsonl", "parquet", "npz", "npy", "image_folder", "idx"] = "auto"
    """File format; auto picks it from the extension or folder layout."""
    kind: Literal["auto", "tabular", "text", "image"] = "auto"
    """What the inputs are; auto: images for image formats, text when the features are one free-text column, else tabular."""
    val_path: str | None = None
    """Optional validation file in the same format (used instead of carving from path)."""
    test_path: str | None = None
    """Optional test file in the same format (for IDX: the test images file)."""
    features: list[str] | None = None
    """Input columns; null means every column except the target."""
    target: str | None = None
    """Target column; null means 'label' (or the built-in data set's own target)."""
    categorical: list[str] | None = None
    """Columns to treat as categorical; null infers them (strings and booleans)."""
    categorical_encoding: Literal["onehot", "embedding"] = "onehot"
    """Categorical features as one-hot columns or as indices for learned embeddings."""
    normalize: bool = True
    """Standardise numeric features with training-split mean and std (missing values get the median)."""
    limit: Annotated[int, Field(ge=1)] | None = None
    """Use only the first N training rows (smoke tests)."""
    shots: Annotated[int, Field(ge=1)] | None = None
    """Few-shot: train on K examples per class drawn (seeded by data.split.seed) from the training split; val/test stay whole."""
    leakage: Literal["error", "warn", "off"] = "error"
    """Text data: exact or near-duplicate rows shared by train and val/test stop the run (error), are only reported (warn), or are not checked (off)."""
    leakage_threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    """Two texts are near duplicates at or above this cosine similarity of their character 3-5-gram TF-IDF vectors."""
    dedupe: bool = False
    """Drop training rows that duplicate (exactly or nearly) a val/test row, instead of stopping."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    """Train/val/test split."""
    text: TextConfig = Field(default_factory=TextConfig)
    """Text columns: vocabulary and length."""
    image: ImageConfig = Field(default_factory=ImageConfig)
    """Images: normalisation and augmentation."""
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    """Language-model pretraining: a text file, folder or JSONL in data.path (or builtin:pydoc) tokenized into a train/val corpus (val share: data.split.val_fraction)."""


# ---------------------------------------------------------------- models

Norm = Literal["none", "batch", "layer"]
Activation = Literal["relu", "gelu", "tanh", "sigmoid", "silu"]


class MLPConfig(Section):
    type: Literal["mlp"] = "mlp"
    """Model architecture (see `practicum config fields`)."""
    hidden_sizes: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [128, 64])
    """Width of each hidden layer."""
    activation: Activation = "relu"
    """Non-linearity after each hidden layer."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Dropout after each hidden layer."""
    norm: Norm = "none"
    """Normalisation after each hidden Linear: none, batch or layer."""
    embedding_dim: Annotated[int, Field(ge=1)] = 8
    """Embedding width per categorical feature (when data.categorical_encoding is embedding)."""


class LeNetConfig(Section):
    type: Literal["lenet"] = "lenet"
    """Model architecture (see `practicum config fields`)."""
    channels: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 64])
    """Output channels of each conv block (conv, norm, activation, 2x2 max-pool)."""
    kernel_size: Annotated[int, Field(ge=1)] = 3
    """Convolution kernel size (padding keeps the size)."""
    hidden_size: Annotated[int, Field(ge=1)] = 128
    """Width of the fully connected layer before the output."""
    activation: Activation = "relu"
    """Non-linearity after each conv and the hidden layer."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.25
    """Dropout before the fully connected layers."""
    norm: Norm = "batch"
    """Normalisation after each conv: none, batch or layer (GroupNorm with one group)."""


class ResNetConfig(Section):
    type: Literal["resnet"] = "resnet"
    """Model architecture (see `practicum config fields`)."""
    widths: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [32, 64, 128])
    """Channels of each stage; every stage after the first halves the spatial size."""
    blocks: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [2, 2, 2])
    """Residual basic blocks per stage (same length as widths)."""
    activation: Activation = "relu"
    """Non-linearity inside the residual blocks."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Dropout before the classifier."""
    norm: Norm = "batch"
    """Normalisation inside the blocks: batch (standard), layer (GroupNorm, 1 group) or none."""


class RNNConfig(Section):
    type: Literal["rnn"] = "rnn"
    """Model architecture (see `practicum config fields`)."""
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    """Recurrent cell."""
    embedding_dim: Annotated[int, Field(ge=1)] = 128
    """Token embedding width."""
    hidden_size: Annotated[int, Field(ge=1)] = 128
    """Hidden state width per direction."""
    num_layers: Annotated[int, Field(ge=1)] = 1
    """Stacked recurrent layers."""
    bidirectional: bool = True
    """Read the sequence in both directions."""
    pooling: Literal["last", "mean", "max"] = "mean"
    """How the sequence of states becomes one vector: last state, mean or max over real tokens."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    """Dropout on embeddings, between layers and before the output."""
    norm: Norm = "none"
    """Normalisation of the pooled vector: none, batch or layer."""


class TransformerConfig(Section):
    type: Literal["transformer"] = "transformer"
    """Model architecture (see `practicum config fields`)."""
    d_model: Annotated[int, Field(ge=1)] = 128
    """Embedding and residual width."""
    n_heads: Annotated[int, Field(ge=1)] = 4
    """Attention heads (must divide d_model)."""
    n_layers: Annotated[int, Field(ge=1)] = 2
    """Pre-norm encoder blocks."""
    d_ff: Annotated[int, Field(ge=1)] = 256
    """Hidden width of each block's feed-forward network."""
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    """Position encoding added to token embeddings."""
    pooling: Literal["cls", "mean"] = "cls"
    """Sequence summary: a learned [CLS] token or the mean over real tokens."""
    activation: Activation = "gelu"
    """Non-linearity of the feed-forward networks."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Dropout on attention weights, residual branches and embeddings."""
    norm: Literal["layer", "none"] = "layer"
    """Pre-norm LayerNorm in every block (none only for experiments)."""


_GPT2 = dict(causal=True, positions="learned", norm="layernorm", norm_placement="pre", mlp="gelu",
             gelu_approximate="tanh", bias=True, tie_embeddings=True, norm_eps=1e-5)
_BERT = dict(causal=False, positions="learned", norm="layernorm", norm_placement="post",
             mlp="gelu", gelu_approximate="none", bias=True, tie_embeddings=True, norm_eps=1e-12,
             token_types=2, embedding_norm=True, final_norm=False, head_transform=True,
             lm_head_bias=True, pooler=True)
_LLAMA = dict(causal=True, positions="rotary", norm="rmsnorm", norm_placement="pre", mlp="swiglu",
              bias=False, norm_eps=1e-5)

LM_PRESETS: dict[str, dict[str, Any]] = {
    # GPT family (GPT-2 layout)
    "gpt-tiny": {**_GPT2, "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 64},
    "baby-gpt": {**_GPT2, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "bias": False},
    "gpt2": {**_GPT2, "n_layer": 12, "n_head": 12, "n_embd": 768, "block_size": 1024, "vocab_size": 50257},
    "gpt2-medium": {**_GPT2, "n_layer": 24, "n_head": 16, "n_embd": 1024, "block_size": 1024, "vocab_size": 50257},
    # BERT family (post-norm encoder, masked LM head, pooler)
    "bert-tiny": {**_BERT, "n_layer": 2, "n_head": 2, "n_embd": 128, "intermediate_size": 512, "block_size": 512},
    "bert-mini": {**_BERT, "n_layer": 4, "n_head": 4, "n_embd": 256, "intermediate_size": 1024, "block_size": 512},
    "bert-base": {**_BERT, "n_layer": 12, "n_head": 12, "n_embd": 768, "intermediate_size": 3072, "block_size": 512, "vocab_size": 30522},
    # LLaMA family (rotary, RMSNorm, SwiGLU, grouped-query attention)
    "llama-tiny": {**_LLAMA, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64, "intermediate_size": 176, "block_size": 128, "tie_embeddings": False},
    "smollm2-135m": {**_LLAMA, "n_layer": 30, "n_head": 9, "n_kv_head": 3, "n_embd": 576, "intermediate_size": 1536, "block_size": 2048, "rope_base": 100000.0, "vocab_size": 49152, "tie_embeddings": True},
}
"""Named LM architectures; `model.preset` fills the fields a recipe leaves out."""


class LMConfig(Section):
    """One config-driven Transformer language model (litgpt style): GPT-2, BERT and LLaMA
    differ only in these fields. `preset` fills every field the recipe does not set."""

    type: Literal["lm"] = "lm"
    """Model architecture (see `practicum config fields`)."""
    preset: str | None = None
    """Named architecture whose values fill the fields not set here: see practicum.config.LM_PRESETS (gpt-tiny, baby-gpt, gpt2, bert-tiny, bert-base, llama-tiny, ...)."""
    vocab_size: Annotated[int, Field(ge=1)] | None = None
    """Vocabulary size; null takes it from the tokenizer."""
    block_size: Annotated[int, Field(ge=1)] = 256
    """Context length: the most positions the model sees at once."""
    n_layer: Annotated[int, Field(ge=1)] = 4
    """Transformer blocks."""
    n_head: Annotated[int, Field(ge=1)] = 4
    """Query heads (must divide n_embd)."""
    n_kv_head: Annotated[int, Field(ge=1)] | None = None
    """Key/value heads: null = n_head (multi-head), 1 = multi-query, else grouped-query (must divide n_head)."""
    n_embd: Annotated[int, Field(ge=1)] = 128
    """Embedding and residual width."""
    intermediate_size: Annotated[int, Field(ge=1)] | None = None
    """Hidden width of each block's MLP; null = 4 * n_embd."""
    causal: bool = True
    """Causal attention (GPT, LLaMA: each token sees only the past) or bidirectional (BERT)."""
    positions: Literal["learned", "sinusoidal", "rotary"] = "learned"
    """Position information: learned absolute (GPT-2, BERT), fixed sinusoidal, or rotary on queries and keys (LLaMA)."""
    rope_base: Annotated[float, Field(gt=0.0)] = 10000.0
    """Rotary base frequency (theta)."""
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    """LayerNorm (GPT-2, BERT) or RMSNorm (LLaMA)."""
    norm_eps: Annotated[float, Field(gt=0.0)] = 1e-5
    """Epsilon of every norm."""
    norm_placement: Literal["pre", "post"] = "pre"
    """pre: x + f(norm(x)) (GPT-2, LLaMA); post: norm(x + f(x)) (BERT)."""
    mlp: Literal["gelu", "swiglu"] = "gelu"
    """Block MLP: Linear-GELU-Linear or SwiGLU (silu(gate) * up, then down)."""
    gelu_approximate: Literal["tanh", "none"] = "tanh"
    """GELU form: tanh approximation (GPT-2) or exact erf (BERT)."""
    bias: bool = True
    """Biases in attention and MLP linears (False for LLaMA)."""
    tie_embeddings: bool = True
    """Share the token embedding with the output layer."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Dropout on embeddings, attention weights and residual branches."""
    token_types: Annotated[int, Field(ge=0)] = 0
    """Segment (token type) embeddings: 2 for BERT sentence pairs, 0 for none."""
    embedding_norm: bool = False
    """Normalise the summed embeddings before the first block (BERT)."""
    final_norm: bool = True
    """Normalise after the last block (GPT-2 ln_f, LLaMA norm; BERT has none)."""
    head_transform: bool = False
    """BERT's masked-LM head transform (Linear, GELU, LayerNorm) before the output layer."""
    lm_head_bias: bool = False
    """Bias on the output layer (BERT's decoder has one)."""
    pooler: bool = False
    """BERT's pooler (Linear + tanh on the first token), used for next-sentence prediction."""

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        name = data["preset"]
        if name not in LM_PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(LM_PRESETS)}")
        return {**LM_PRESETS[name], **data}

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def mlp_width(self) -> int:
        return self.intermediate_size or 4 * self.n_embd

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


class PretrainedConfig(Section):
    """A pretrained Transformer (bundle, Hugging Face folder, .gguf or shipped model) with a task
    head; peft.strategy says which weights train."""

    type: Literal["pretrained"] = "pretrained"
    """Model architecture (see `practicum config fields`)."""
    init_from: str = "all-MiniLM-L6-v2"
    """The pretrained model: a practicum LM bundle, a Hugging Face folder (GPT-2, BERT, LLaMA), a .gguf file, or a shipped name (all-MiniLM-L6-v2, SmolLM2-135M-Instruct)."""
    pooling: Literal["auto", "cls", "mean", "last"] = "auto"
    """How token states become one vector for the head: first token, mean over real tokens, or last real token; auto: mean for encoders, last for causal models."""
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    """Dropout on the pooled vector before the head."""
    max_length: Annotated[int, Field(ge=2)] = 128
    """Tokens kept per example (the model's own tokenizer, specials included); longer texts are cut."""
    chat_template: str | None = "auto"
    """sft: render examples with the model's chat template (auto: when it has one), a Jinja template of your own, or none for plain "prompt\\nresponse"."""
    backbone: LMConfig | None = None
    """The pretrained architecture, filled in from init_from when a run starts (leave null)."""


ModelConfig = Annotated[
    MLPConfig | LeNetConfig | ResNetConfig | RNNConfig | TransformerConfig | LMConfig | PretrainedConfig,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------- training


class TrainConfig(Section):
    epochs: Annotated[int, Field(ge=1)] = 10
    """Passes over the training split (max_steps, when set, stops earlier)."""
    max_steps: Annotated[int, Field(ge=1)] | None = None
    """Stop after this many optimizer steps."""
    batch_size: Annotated[int, Field(ge=1)] = 64
    """Examples per micro-batch: the global micro-batch, split across processes in a distributed run (a multiple of their number); batch_size x grad_accum rows make one optimizer step whatever the number of processes."""
    eval_batch_size: Annotated[int, Field(ge=1)] = 512
    """Examples per batch during validation, test and prediction."""
    group_by_length: bool = False
    """Text: batch rows of similar length together (sorted within random chunks of 50 batches, batches shuffled), so less padding is computed."""
    grad_accum: Annotated[int, Field(ge=1)] = 1
    """Micro-batches per optimizer step; the loss is averaged over all of them."""
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    """sgd (with momentum/nesterov), adam (L2 in the gradient) or adamw (decoupled weight decay)."""
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    """Peak learning rate."""
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.01
    """Weight decay; biases and norm weights are never decayed."""
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    """SGD momentum."""
    nesterov: bool = False
    """Nesterov momentum for SGD."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam/AdamW betas."""
    schedule: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    """Learning-rate schedule over optimizer steps."""
    warmup_steps: Annotated[int, Field(ge=0)] = 0
    """Linear warmup steps (constant, step and cosine schedules)."""
    warmup_ratio: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Warmup as a fraction of all steps; used when warmup_steps is 0."""
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Cosine floor as a fraction of lr."""
    step_size: Annotated[int, Field(ge=1)] = 1000
    """Step schedule: multiply lr by gamma every this many optimizer steps."""
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    """Step schedule decay factor."""
    grad_clip: Annotated[float, Field(gt=0.0)] | None = 1.0
    """Clip the global gradient norm to this value; null disables."""
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Label smoothing for classification cross-entropy."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """fp32; bf16 autocast for forward and loss where the device supports it; fp16 autocast with a gradient scaler (CUDA only)."""
    compile: bool = False
    """torch.compile the model for training; where compiling fails or is unsupported, a warning and eager mode."""
    activation_checkpointing: bool = False
    """Transformers: recompute each block's activations in backward instead of keeping them (less memory, more compute)."""
    pin_memory: Literal["auto"] | bool = "auto"
    """Pin each batch in page-locked memory before the non-blocking copy; auto: on when the device is CUDA."""
    num_workers: Annotated[int, Field(ge=0)] = 0
    """Background threads preparing the next batches (take, augment, task preparation); results identical to 0."""
    device: str = "auto"
    """auto, cpu, cuda, cuda:N or mps; auto picks the best present."""
    strategy: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun (--nproc N): ddp replicates the model on every process; fsdp shards it (CUDA only)."""
    eval_every: Annotated[int, Field(ge=1)] | None = None
    """Validate every N optimizer steps; null validates at the end of each epoch."""
    monitor: str = "auto"
    """Validation metric for best checkpoint and early stopping (accuracy, f1_macro, loss, mae, ...); auto: accuracy for classification, loss for regression."""
    patience: Annotated[int, Field(ge=1)] | None = None
    """Early stopping: stop after this many validations without improvement; null disables."""
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    """Also write the last checkpoint every N optimizer steps (always written after each validation)."""
    log_every: Annotated[int, Field(ge=1)] = 10
    """Log training loss and throughput every N optimizer steps."""
    progress: Literal["auto", "always", "never"] = "auto"
    """Progress on stderr: always a bar; auto a bar on a terminal, else a log line every tenth of the run (and at least every 30 s); never nothing."""
    tensorboard: bool = True
    """Write TensorBoard event files under out_dir/tensorboard."""
    seed: int = 0
    """Seed for initialisation, shuffling, dropout and augmentation."""
    num_threads: Annotated[int, Field(ge=1)] | None = None
    """CPU threads for torch; null keeps torch's default."""


class TaskConfig(Section):
    type: Literal["auto", "classification", "regression", "causal_lm", "masked_lm", "sft",
                  "token_classification"] = "auto"
    """classification, regression, or auto (regression when the target is float with many distinct values); causal_lm (GPT) or masked_lm (BERT) pretrain a model.type lm on a text corpus; sft fine-tunes a pretrained causal LM on prompt/response pairs; token_classification tags each word (BIO) with a pretrained encoder."""
    words_field: str = "tokens"
    """token_classification: the JSONL field with each sentence's words (CoNLL files need none)."""
    tags_field: str = "tags"
    """token_classification: the JSONL field with one BIO tag per word (B-TYPE, I-TYPE, O)."""
    tag_names: list[str] | None = None
    """token_classification: names of numeric tags (Hugging Face datasets store ner_tags as ids)."""
    prompt_field: str = "prompt"
    """sft: the field holding each example's prompt."""
    response_field: str = "response"
    """sft: the field holding the response the model learns to give (the only tokens with a loss)."""
    mlm_probability: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.15
    """masked_lm: share of tokens chosen for prediction (80% masked, 10% random, 10% kept)."""
    nsp: bool = False
    """masked_lm: also train next-sentence prediction on sentence pairs (needs model.pooler)."""


class PeftConfig(Section):
    strategy: Literal["full", "freeze", "linear_probe", "lora", "prompt_tuning"] = "full"
    """Which weights of a pretrained model train: full (all), freeze (embeddings and the lower freeze_layers blocks frozen), linear_probe (only the head), lora (low-rank adapters + head), prompt_tuning (soft prompt + head)."""
    freeze_layers: Annotated[int, Field(ge=0)] | None = None
    """freeze: frozen blocks counted from the bottom; null freezes the lower half."""
    layer_lr_decay: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    """Discriminative learning rates: block i of n trains at lr * decay^(n - i), embeddings at lr * decay^(n + 1); 1.0 = one lr."""
    lora_r: Annotated[int, Field(ge=1)] = 8
    """LoRA rank."""
    lora_alpha: Annotated[float, Field(gt=0.0)] = 16.0
    """LoRA scale numerator: the update is (alpha / r) * B A."""
    lora_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Dropout on the LoRA branch's input."""
    lora_targets: list[str] = Field(default_factory=lambda: ["attn.qkv", "attn.proj", "mlp.fc", "mlp.proj"])
    """Linear layers that get adapters: module-name patterns (fnmatch; a pattern without '*' matches a name ending in it)."""
    prompt_tokens: Annotated[int, Field(ge=1)] = 20
    """prompt_tuning: trainable soft-prompt vectors put before every input."""
    prompt_init: Literal["vocab", "random"] = "vocab"
    """prompt_tuning: start the soft prompt from embeddings of random vocabulary tokens or from N(0, 0.02)."""


class LadderConfig(Section):
    rungs: list[Literal["zero_shot", "few_shot", "prompt_tuning", "linear_probe", "lora", "full"]] = Field(
        default_factory=lambda: ["zero_shot", "few_shot", "prompt_tuning", "linear_probe", "lora", "full"])
    """`practicum ladder`: the rungs to run, cheapest first."""
    shots: Annotated[int, Field(ge=1)] = 8
    """Examples per class for the few_shot rung (demonstrations in all, for a causal LM)."""
    seeds: Annotated[int, Field(ge=1)] = 5
    """Repeats of the cheap rungs (few_shot) with other draws, for a 95% interval."""
    overrides: dict[str, list[str]] = Field(default_factory=lambda: {
        "prompt_tuning": ["train.lr=3e-2"], "linear_probe": ["train.lr=1e-2"], "lora": ["train.lr=1e-3"]})
    """Extra section.field=value overrides per training rung (adapters and heads want higher learning rates than full fine-tuning)."""


class RunConfig(Section):
    name: str = "run"
    """Run name (used in reports)."""
    out_dir: str = "runs/run"
    """Run folder: checkpoints, metrics, plots, report.html and the bundle. An existing finished run is never overwritten: a numbered sibling is used."""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=LeNetConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    peft: PeftConfig = Field(default_factory=PeftConfig)
    """Fine-tuning strategy for model.type pretrained."""
    ladder: LadderConfig = Field(default_factory=LadderConfig)
    """`practicum ladder`: which fine-tuning rungs to compare and how."""


# ---------------------------------------------------------------- loading

from practicum.config_errors import (  # noqa: E402
    Override,
    clean_loc,
    describe,
    field_type,
    line_of,
    origin_of,
    override_at,
)


def load_config(
    source: str | Path | dict[str, Any] | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Build a RunConfig from a recipe (YAML path or dict) plus `section.field=value` overrides.

    An error names the recipe file and line for a field the recipe sets, and the override for a
    field an override sets (its CLI flag when it came from parse_overrides)."""
    text, raw = None, {}
    where = "config"
    if isinstance(source, dict):
        raw = source
    elif source is not None:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise UserError(f"recipe {path} not found; pass a YAML file (see configs/)")
        text = path.read_text(encoding="utf-8")
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise UserError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: a recipe must be a mapping of sections (data, model, train, task)")
    raw = _deep_copy(raw)
    for item in overrides or []:
        _apply_override(raw, item)
    return validate(raw, where=where, text=text, overrides=overrides)


def validate(raw: dict[str, Any], where: str = "config", text: str | None = None,
             overrides: list[str] | None = None) -> RunConfig:
    """Validate a plain dict as a RunConfig; errors name the field path and the expected type,
    and where the bad value came from: the override that set it, else `where` (and its line)."""
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = clean_loc(err["loc"])
        item = override_at(overrides or [], loc, err["type"])
        line = line_of(text, loc) if text and item is None else None
        at = origin_of(item) if item is not None else f"{where}:{line}" if line else where
        raw_loc = [str(p) for p in err["loc"]]
        mtype = raw_loc[1] if raw_loc[:1] == ["model"] and len(raw_loc) > 1 else None
        raise UserError(f"{at}: {describe(err, loc, mtype)}") from None


def parse_overrides(args: list[str]) -> list[str]:
    """Turn CLI tokens like ['--train.lr', '3e-4', '--model.type=mlp'] into 'train.lr=3e-4' items
    (each an Override that errors name by its flag, `--train.lr`)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            raise UserError(f"unexpected argument {token!r}; overrides look like --train.lr 3e-4")
        key = token[2:]
        if "=" in key:
            out.append(Override(key, f"--{key.split('=', 1)[0]}"))
            i += 1
            continue
        if i + 1 >= len(args):
            raise UserError(f"override {token} needs a value, e.g. {token} 3e-4")
        out.append(Override(f"{key}={args[i + 1]}", token))
        i += 2
    return out


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def field_help(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(path, type, help) for every field, walking nested sections; model variants listed by type."""
    rows: list[tuple[str, str, str]] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, Section):
            rows += field_help(ann, f"{path}.")
        elif name == "model" and model is RunConfig:
            for variant in MODEL_CONFIGS.values():
                rows += field_help(variant, f"model[{variant().type}].")
        else:
            rows.append((path, field_type(info), info.description or ""))
    return rows


MODEL_CONFIGS: dict[str, type[Section]] = {
    c().type: c
    for c in (MLPConfig, LeNetConfig, ResNetConfig, RNNConfig, TransformerConfig, LMConfig, PretrainedConfig)
}


# ---------------------------------------------------------------- helpers


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise UserError(f"override {item!r} must look like section.field=value")
    key, value = item.split("=", 1)
    parts = [p for p in key.split(".") if p]
    if not parts:
        raise UserError(f"{origin_of(item)}: the field name is empty; write section.field=value")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"{origin_of(item)}: {part!r} is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        node[parts[-1]] = value
    if parts == ["model", "type"] and node["type"] in MODEL_CONFIGS:
        # switching model type keeps only the recipe's fields that the new model has
        allowed = MODEL_CONFIGS[node["type"]].model_fields
        raw["model"] = {k: v for k, v in node.items() if k in allowed}
