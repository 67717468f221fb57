"""Sample inputs for the parity check of an export, drawn from the bundle's own data.

Classifiers and regressors: rows of their test split (else validation, else training split),
preprocessed as `practicum predict --split test` does; random inputs of the right shapes when
the data can no longer be read. Language models: a fixed English text through their tokenizer.
Every input set comes at two batch sizes and, for token inputs, two sequence lengths, none of
them the shape the exporter traced (example_batch), which is what proves the dynamic axes.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from practicum.errors import UserError

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]

ROWS = 16
"""Rows read from the split; the checked batches take 5 and 1 of them."""
BATCH_SIZES = (5, 1)
TEXT = ("The committee approved the new budget on Monday, and the markets rose sharply after the "
        "announcement. Analysts expect profits to grow in the second half of the year, although "
        "costs remain high. She opened the window, looked at the rain and decided to stay home.")


def sample_batches(bundle: Any) -> list[Batch]:
    """Batches at BATCH_SIZES x (full, shorter) sequence lengths; the first is the widest and
    largest. Token inputs are right-padded (mask False on padding)."""
    full = _lm_batch(bundle) if bundle.is_language_model else _classifier_batch(bundle)
    full = {k: v for k, v in full.items() if k != "target"}
    rows = len(next(iter(full.values())))
    out = []
    for size in BATCH_SIZES:
        lo = 0 if size > 1 else min(BATCH_SIZES[0], rows - 1)  # different rows in the 1-row batch
        part = {k: v[lo : lo + size] for k, v in full.items()}
        out.append(part)
        if "tokens" in part:
            width = part["tokens"].shape[1]
            short = max(1, width // 2) if not bundle.is_language_model else max(2, (2 * width) // 5)
            if short < width:
                out.append({k: v[:, :short] for k, v in part.items()})
    return out


def example_batch(samples: list[Batch]) -> Batch:
    """The batch the exporters trace: 2 rows and a sequence length between the checked ones,
    so no checked shape is the traced one (a size of 1 would be fixed by torch.export)."""
    first = samples[0]
    two = {k: torch.cat([v, v])[:2] if len(v) < 2 else v[:2] for k, v in first.items()}
    if "tokens" in two and len(samples) > 1:
        widths = sorted({s["tokens"].shape[1] for s in samples})
        middle = (widths[0] + widths[-1] + 1) // 2
        if middle not in widths and middle >= 2:
            two = {k: v[:, :middle] for k, v in two.items()}
    return two


def _classifier_batch(bundle: Any) -> Batch:
    from practicum.data import raw_split

    errors = []
    for split in ("test", "val", "train"):
        try:
            raw = raw_split(bundle.config.data, bundle.config.task, split)
        except UserError as exc:
            errors.append(str(exc))
            continue
        if len(raw):
            batch, _, _ = bundle.preprocessor.load_inputs(raw.head(ROWS))
            log.info("parity inputs: %d rows of the %s split of %s", min(len(raw), ROWS), split,
                     bundle.config.data.path)
            return batch
    log.warning("the bundle's data cannot be read (%s); the parity check uses random inputs", errors[-1])
    return random_batch(bundle.preprocessor.spec, ROWS)


def random_batch(spec: Any, rows: int, seed: int = 0) -> Batch:
    """Random inputs of the shapes and ranges a preprocessor with this InputSpec gives."""
    g = torch.Generator().manual_seed(seed)
    if spec.kind == "image":
        return {"image": torch.randn((rows, *spec.image_shape), generator=g)}
    if spec.kind == "text":
        T = max(1, spec.max_length)
        tokens = torch.randint(2, max(3, spec.vocab_size), (rows, T), generator=g)
        lengths = torch.randint(1, T + 1, (rows,), generator=g)
        mask = torch.arange(T)[None, :] < lengths[:, None]  # (rows, T) right padding
        return {"tokens": tokens.masked_fill(~mask, spec.pad_id), "mask": mask}
    batch = {"x": torch.randn(rows, spec.num_features, generator=g)}
    if spec.cat_cardinalities:
        batch["x_cat"] = torch.stack([torch.randint(0, n, (rows,), generator=g)
                                      for n in spec.cat_cardinalities], dim=1)  # (rows, n_cat)
    return batch


def _lm_batch(bundle: Any, rows: int = 5) -> Batch:
    """rows windows of TEXT's tokens, as long as the context allows (at most 32 tokens); the
    last row is padded for its last quarter, so masks are checked too."""
    tok = bundle.tokenizer
    ids = tok.encode(TEXT)
    width = max(2, min(32, bundle.config.model.block_size, len(ids)))
    ids = ids * (1 + (width + rows * 3) // max(1, len(ids)))  # long enough for every window
    tokens = torch.tensor([ids[3 * r : 3 * r + width] for r in range(rows)], dtype=torch.long)  # (rows, T)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[-1, width - max(1, width // 4):] = False
    tokens[~mask] = tok.pad_id if tok.pad_id is not None else 0
    return {"tokens": tokens, "mask": mask}
