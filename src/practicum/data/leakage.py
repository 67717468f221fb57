"""Train/val/test leakage in text data: exact and near-duplicate rows shared across splits.

A validation or test row that also sits in the training data (or nearly so) measures
memory, not generalisation; fine-tuning a pretrained model makes this worse, since it
memorises quickly. `check_splits` reports the overlap and refuses to go on unless told.

What counts as the same text: two rows are *exact* duplicates when their
`normalize_text` forms are equal (case, surrounding/repeated whitespace, Unicode
compatibility forms and punctuation ignored). They are *near* duplicates when they are
not exact but the cosine similarity of their TF-IDF vectors over character 3-5-grams
(taken inside word boundaries, scikit-learn's ``char_wb``) of the normalised text is at
least the threshold. Changing one word of a 12-word sentence gives about 0.92-0.94;
unrelated sentences of one domain stay below 0.3. Texts that normalise to nothing
(empty or punctuation only) are never counted.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from scipy import sparse

from practicum.errors import UserError

log = logging.getLogger(__name__)

NEAR_THRESHOLD = 0.9
NGRAMS = (3, 5)
_CHUNK_CELLS = 4_000_000  # similarity cells per sparse product chunk (bounds memory)
_EXAMPLES = 3
_SHORTEN = 80


# ---------------------------------------------------------------- normalisation


@cache
def _punctuation() -> dict[int, None]:
    """str.translate table deleting Unicode punctuation (categories P*) of the Basic Multilingual Plane."""
    return {cp: None for cp in range(0x10000) if unicodedata.category(chr(cp)).startswith("P")}


def normalize_text(s: str) -> str:
    """The form under which two texts are the *same*: NFKC, casefolded, punctuation
    deleted, whitespace collapsed to single spaces and stripped.

    "Where's my CARD?!" and "wheres my  card" are the same. Punctuation is Unicode's
    (categories P*, which include % # & @ * /); symbols (S*: $ € + < =) stay, so "$5"
    and "5" differ. It is deleted rather than spaced, so "don't" == "dont" and
    "profit ." == "profit.".
    """
    s = unicodedata.normalize("NFKC", s).casefold().translate(_punctuation())
    return " ".join(s.split())


# ---------------------------------------------------------------- one pair of splits


@dataclass(eq=False)
class Overlap:
    """Rows of one held-out split (`other`) that duplicate training rows.

    Pairs are (train index, other index) rows of int64 arrays of shape (P, 2), indices
    into the lists given. `near` holds pairs at or above the threshold whose normalised
    texts differ, with their cosine similarity in `near_similarity` (Q,).
    """

    n_other: int
    near_threshold: float
    exact: np.ndarray
    near: np.ndarray
    near_similarity: np.ndarray

    @property
    def exact_rows(self) -> np.ndarray:
        """Indices of `other` rows with an exact duplicate in train."""
        return np.unique(self.exact[:, 1])

    @property
    def near_rows(self) -> np.ndarray:
        """Indices of `other` rows with a near duplicate in train but no exact one."""
        return np.setdiff1d(np.unique(self.near[:, 1]), self.exact_rows)

    @property
    def leaking_rows(self) -> np.ndarray:
        return np.union1d(self.exact_rows, self.near_rows)

    @property
    def train_rows(self) -> np.ndarray:
        """Indices of training rows in any exact or near pair."""
        return np.union1d(self.exact[:, 0], self.near[:, 0])

    @property
    def n_exact(self) -> int:
        return len(self.exact_rows)

    @property
    def n_near(self) -> int:
        return len(self.near_rows)

    @property
    def n_leaking(self) -> int:
        return self.n_exact + self.n_near

    @property
    def exact_fraction(self) -> float:
        return self.n_exact / self.n_other if self.n_other else 0.0

    @property
    def near_fraction(self) -> float:
        return self.n_near / self.n_other if self.n_other else 0.0


def find_overlap(
    train: list[str],
    other: list[str],
    *,
    near_threshold: float = NEAR_THRESHOLD,
    ngram_range: tuple[int, int] = NGRAMS,
) -> Overlap:
    """Exact and near duplicates between `train` and `other` (see the module docstring)."""
    _check_threshold(near_threshold)
    norm_train, norm_other = [normalize_text(t) for t in train], [normalize_text(t) for t in other]
    x_train, x_other = _tfidf([norm_train, norm_other], ngram_range)
    return _overlap(norm_train, norm_other, x_train, x_other, near_threshold)


def _check_threshold(near_threshold: float) -> None:
    if not 0.0 < near_threshold <= 1.0:
        raise ValueError(f"near_threshold must be in (0, 1], got {near_threshold}")


def _tfidf(groups: list[list[str]], ngram_range: tuple[int, int]) -> list[sparse.csr_matrix]:
    """One L2-normalised TF-IDF matrix (rows, n-grams) per group, fitted on all groups
    together: fitting on train alone would drop the other texts' unseen n-grams and
    inflate their similarity."""
    # lazy: keeps `import practicum` fast
    from sklearn.feature_extraction.text import TfidfVectorizer

    sizes = [len(g) for g in groups]
    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=ngram_range, lowercase=False, dtype=np.float32
    )
    try:
        x = vectorizer.fit_transform([t for g in groups for t in g]).tocsr()  # (sum(sizes), V)
    except ValueError:  # empty vocabulary: no group has a non-empty text
        x = sparse.csr_matrix((sum(sizes), 0), dtype=np.float32)
    bounds = np.cumsum([0, *sizes])
    return [x[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _overlap(
    norm_train: list[str],
    norm_other: list[str],
    x_train: sparse.csr_matrix,
    x_other: sparse.csr_matrix,
    near_threshold: float,
) -> Overlap:
    exact = _exact_pairs(norm_train, norm_other)
    near, sim = _near_pairs(x_train, x_other, near_threshold)
    differ = np.array([norm_train[i] != norm_other[j] for i, j in near], dtype=bool)
    return Overlap(len(norm_other), near_threshold, exact, near[differ], sim[differ])


def _exact_pairs(norm_train: list[str], norm_other: list[str]) -> np.ndarray:
    """(P, 2) pairs of equal non-empty normalised texts."""
    where: dict[str, list[int]] = {}
    for i, t in enumerate(norm_train):
        if t:
            where.setdefault(t, []).append(i)
    pairs = [(i, j) for j, t in enumerate(norm_other) if t for i in where.get(t, ())]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _near_pairs(
    x_train: sparse.csr_matrix, x_other: sparse.csr_matrix, near_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, 2) pairs with cosine >= threshold and their similarities (Q,), by chunks of `other`."""
    train_t = x_train.T.tocsr()  # (V, n_train)
    step = max(1, _CHUNK_CELLS // max(1, x_train.shape[0]))
    pairs, sims = [np.zeros((0, 2), dtype=np.int64)], [np.zeros(0, dtype=np.float32)]
    for start in range(0, x_other.shape[0], step):
        sim = (x_other[start : start + step] @ train_t).tocoo()  # (chunk, n_train)
        keep = sim.data >= near_threshold
        pairs.append(np.stack([sim.col[keep], sim.row[keep] + start], axis=1).astype(np.int64))
        sims.append(sim.data[keep])
    return np.concatenate(pairs), np.concatenate(sims)


# ---------------------------------------------------------------- all splits


@dataclass(eq=False)
class LeakageReport:
    """Overlap of each held-out split with train, and repeats inside train (informational)."""

    n_train: int
    near_threshold: float
    train_repeats: int
    """Training rows whose normalised text equals an earlier training row's."""
    splits: dict[str, Overlap]
    examples: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    """Per split, per kind ("exact", "near"): a few pairs with shortened texts."""
    ngram_range: tuple[int, int] = NGRAMS
    seconds: float = 0.0

    @property
    def n_leaking(self) -> int:
        return sum(o.n_leaking for o in self.splits.values())

    def summary(self) -> str:
        """One line per split, then one for repeats inside train."""
        lines = [_split_line(name, o) for name, o in self.splits.items()]
        pct = 100 * self.train_repeats / self.n_train if self.n_train else 0.0
        lines.append(
            f"train: {self.train_repeats} of {self.n_train} rows ({pct:.1f}%) repeat an earlier "
            "training row (informational)"
        )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable counts, fractions and example pairs."""
        return {
            "near_threshold": self.near_threshold,
            "similarity": "cosine of TF-IDF over char_wb {}-{}-grams of normalised text".format(*self.ngram_range),
            "train_rows": self.n_train,
            "train_repeats": self.train_repeats,
            "seconds": round(self.seconds, 3),
            "splits": {
                name: {
                    "rows": o.n_other,
                    "exact_rows": o.n_exact,
                    "exact_fraction": round(o.exact_fraction, 6),
                    "near_rows": o.n_near,
                    "near_fraction": round(o.near_fraction, 6),
                    "exact_pairs": len(o.exact),
                    "near_pairs": len(o.near),
                    "train_rows_involved": len(o.train_rows),
                    "examples": self.examples.get(name, {"exact": [], "near": []}),
                }
                for name, o in self.splits.items()
            },
        }


def _split_line(name: str, o: Overlap) -> str:
    near = f"near duplicates (cosine >= {o.near_threshold:.2f})"
    if o.n_leaking == 0:
        return f"{name}: none of {o.n_other} rows duplicates a training row, exactly or as {near}"
    return (
        f"{name}: {o.n_exact} of {o.n_other} rows ({100 * o.exact_fraction:.1f}%) exactly duplicate a "
        f"training row, {o.n_near} more ({100 * o.near_fraction:.1f}%) are {near}"
    )


def check_splits(
    train_texts: list[str],
    splits: dict[str, list[str]],
    *,
    allow: bool,
    near_threshold: float = NEAR_THRESHOLD,
    ngram_range: tuple[int, int] = NGRAMS,
) -> LeakageReport:
    """Overlap of every split in `splits` (e.g. val, test) with `train_texts`.

    Raises UserError when any split leaks and `allow` is False; otherwise logs the
    summary (a warning when something leaks) and returns the report.
    """
    _check_threshold(near_threshold)
    start = time.perf_counter()
    norm_train = [normalize_text(t) for t in train_texts]
    norm_splits = {name: [normalize_text(t) for t in texts] for name, texts in splits.items()}
    x_train, *x_splits = _tfidf([norm_train, *norm_splits.values()], ngram_range)
    overlaps = {
        name: _overlap(norm_train, norm, x_train, x, near_threshold)
        for (name, norm), x in zip(norm_splits.items(), x_splits, strict=True)
    }
    non_empty = [t for t in norm_train if t]
    report = LeakageReport(
        n_train=len(train_texts),
        near_threshold=near_threshold,
        train_repeats=len(non_empty) - len(set(non_empty)),
        splits=overlaps,
        examples={
            name: _examples(o, train_texts, splits[name]) for name, o in overlaps.items()
        },
        ngram_range=ngram_range,
        seconds=time.perf_counter() - start,
    )
    if report.n_leaking and not allow:
        raise UserError(_refusal(report))
    level = logging.WARNING if report.n_leaking else logging.INFO
    log.log(level, "train/held-out overlap (%.1f s):\n%s", report.seconds, report.summary())
    return report


def _refusal(report: LeakageReport) -> str:
    parts = [
        f"{o.n_leaking} of {o.n_other} {name} rows ({o.n_exact} exact, {o.n_near} near)"
        for name, o in report.splits.items()
        if o.n_leaking
    ]
    return (
        f"train/held-out leakage: {' and '.join(parts)} duplicate a training row (near: cosine >= "
        f"{report.near_threshold:.2f}); set data.leakage: warn to run anyway, or data.dedupe: true "
        "to drop them from train"
    )


def _examples(o: Overlap, train: list[str], other: list[str]) -> dict[str, list[dict[str, Any]]]:
    """A few exact pairs (first rows) and near pairs (least similar first: they show
    whether the threshold is too low)."""
    exact = [
        {"train": int(i), "other": int(j), "train_text": _shorten(train[i]), "other_text": _shorten(other[j])}
        for i, j in o.exact[:_EXAMPLES]
    ]
    order = np.argsort(o.near_similarity, kind="stable")[:_EXAMPLES]
    near = [
        {
            "train": int(o.near[k, 0]),
            "other": int(o.near[k, 1]),
            "similarity": round(float(o.near_similarity[k]), 4),
            "train_text": _shorten(train[o.near[k, 0]]),
            "other_text": _shorten(other[o.near[k, 1]]),
        }
        for k in order
    ]
    return {"exact": exact, "near": near}


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHORTEN else text[: _SHORTEN - 1] + "…"


def drop_leaks(train_texts: list[str], report: LeakageReport) -> np.ndarray:
    """Sorted indices of training rows to keep: every row in an exact or near pair with any
    held-out row is dropped (similarities as measured for `report`; a re-check after
    dropping refits the IDF weights, which can nudge a borderline pair over the threshold)."""
    if len(train_texts) != report.n_train:
        raise ValueError(f"report is for {report.n_train} training rows, got {len(train_texts)}")
    drop = np.zeros(len(train_texts), dtype=bool)
    for o in report.splits.values():
        drop[o.train_rows] = True
    if drop.any():
        log.info("dropping %d of %d training rows that duplicate held-out rows", drop.sum(), len(drop))
    return np.flatnonzero(~drop)
