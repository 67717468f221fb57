"""Leakage: exact and near duplicates between train and held-out texts, refusal, dedupe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from practicum.data import leakage
from practicum.data.leakage import check_splits, drop_leaks, find_overlap, normalize_text
from practicum.errors import UserError

TRAIN = [
    "I am still waiting on my card to arrive in the post",
    "How do I reset the PIN on my new debit card today",
    "Why was I charged a fee for withdrawing cash abroad",
    "Can I top up my account with a bank transfer from overseas",
    "My payment at the supermarket was declined for no reason",
    "What exchange rate do you use when I pay in dollars",
    "the quick brown fox jumps over the lazy dog near the river bank",
    "Please close my account and send me the remaining balance",
    "Is there a limit on how much money I can send to a friend",
    "I think someone has stolen my phone and can use the app",
]
UNRELATED = [
    "Which documents do you need to verify my identity here",
    "The contactless feature stopped working on my card yesterday",
    "Do you offer virtual cards for shopping online safely",
]


def test_normalize_text_ignores_case_space_punctuation_not_symbols() -> None:
    assert normalize_text("  Where's my CARD?! ") == normalize_text("wheres   my card")
    assert normalize_text("Profit rose 5 % to € 80m .") == "profit rose 5 to € 80m"  # % is Po
    assert normalize_text("ＡＢＣ，\tdef") == "abc def"  # NFKC: full-width forms
    assert normalize_text("$5") != normalize_text("5")
    assert normalize_text("?!...") == ""


def test_exact_duplicates_found_through_case_space_punctuation() -> None:
    other = ["  i am STILL waiting on my card, to arrive in the post!", *UNRELATED, "WHY was I charged a fee for withdrawing cash abroad?"]
    o = find_overlap(TRAIN, other)
    assert sorted(map(tuple, o.exact.tolist())) == [(0, 0), (2, 4)]
    assert o.n_exact == 2 and o.n_near == 0
    assert o.exact_fraction == pytest.approx(2 / 5)


@pytest.mark.parametrize("threshold", [0.8, 0.85, 0.9])
def test_near_duplicate_found_unrelated_not(threshold: float) -> None:
    # one word of a 12-word sentence changed
    other = [*UNRELATED, "the quick brown fox jumps over the lazy cat near the river bank"]
    o = find_overlap(TRAIN, other, near_threshold=threshold)
    assert o.near.tolist() == [[6, 3]]
    assert threshold <= o.near_similarity[0] < 1.0
    assert o.n_exact == 0 and o.n_near == 1 and o.near_rows.tolist() == [3]


def test_unrelated_texts_stay_far_below_threshold() -> None:
    o = find_overlap(TRAIN, UNRELATED, near_threshold=0.5)
    assert o.n_leaking == 0 and len(o.near) == 0


def test_exact_row_not_also_counted_near() -> None:
    train = [*TRAIN, "the quick brown fox jumps over the lazy cat near the river bank"]
    o = find_overlap(train, ["The quick brown fox jumps over the lazy cat near the river bank."])
    assert o.exact.tolist() == [[10, 0]] and o.near.tolist() == [[6, 0]]
    assert o.n_exact == 1 and o.n_near == 0


def test_chunked_products_match_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    words = ["card", "pin", "fee", "cash", "top", "up", "account", "transfer", "payment", "declined", "rate", "close"]
    train = [" ".join(rng.choice(words, 6)) for _ in range(40)]
    other = [" ".join(rng.choice(words, 6)) for _ in range(25)]
    whole = find_overlap(train, other, near_threshold=0.6)
    monkeypatch.setattr(leakage, "_CHUNK_CELLS", 7 * len(train))  # 7 rows per chunk
    chunked = find_overlap(train, other, near_threshold=0.6)
    assert len(whole.near) > 0
    np.testing.assert_array_equal(whole.near, chunked.near)
    np.testing.assert_allclose(whole.near_similarity, chunked.near_similarity)


def _planted() -> tuple[list[str], dict[str, list[str]]]:
    val = [UNRELATED[0], "how do i reset the pin on my new debit card today?", UNRELATED[1]]
    test = ["The quick brown fox jumps over the lazy cat near the river bank", UNRELATED[2]]
    return TRAIN, {"val": val, "test": test}


def test_refuses_leaking_split_with_counts_and_remedy() -> None:
    train, splits = _planted()
    with pytest.raises(UserError) as err:
        check_splits(train, splits, allow=False, near_threshold=0.9)
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 of 3 val rows (1 exact, 0 near)" in msg and "1 of 2 test rows (0 exact, 1 near)" in msg
    assert "set data.leakage: warn to run anyway, or data.dedupe: true to drop them from train" in msg


def test_allow_returns_report_with_summary_and_json() -> None:
    train, splits = _planted()
    report = check_splits([*train, TRAIN[3].upper()], splits, allow=True, near_threshold=0.9)
    assert report.splits["val"].n_exact == 1 and report.splits["test"].n_near == 1
    assert report.train_repeats == 1
    lines = report.summary().splitlines()
    assert lines[0] == (
        "val: 1 of 3 rows (33.3%) exactly duplicate a training row, 0 more (0.0%) are near "
        "duplicates (cosine >= 0.90)"
    )
    assert lines[1].startswith("test: 0 of 2 rows (0.0%) exactly") and "1 more (50.0%)" in lines[1]
    assert lines[2].startswith("train: 1 of 11 rows")
    d = json.loads(json.dumps(report.to_dict()))
    assert d["splits"]["val"]["examples"]["exact"][0]["train"] == 1
    near = d["splits"]["test"]["examples"]["near"][0]
    assert near["train"] == 6 and near["other"] == 0 and 0.9 <= near["similarity"] < 1


def test_clean_splits_pass_without_allow() -> None:
    report = check_splits(TRAIN, {"val": UNRELATED}, allow=False, near_threshold=0.9)
    assert report.n_leaking == 0
    assert report.summary().startswith("val: none of 3 rows duplicates a training row")


def test_drop_leaks_removes_exactly_the_leaking_training_rows() -> None:
    train, splits = _planted()
    train = [*train, "How do I reset the PIN on my new debit card today!!"]  # a second copy
    report = check_splits(train, splits, allow=True, near_threshold=0.9)
    keep = drop_leaks(train, report)
    assert sorted(set(range(len(train))) - set(keep.tolist())) == [1, 6, 10]
    kept = [train[i] for i in keep]
    assert check_splits(kept, splits, allow=False, near_threshold=0.9).n_leaking == 0


def test_empty_splits_and_empty_texts() -> None:
    report = check_splits([], {"val": [], "test": ["?"]}, allow=False)
    assert report.n_leaking == 0 and report.train_repeats == 0
    json.dumps(report.to_dict())
    report = check_splits(TRAIN, {"val": []}, allow=False)
    assert report.splits["val"].n_other == 0 and report.splits["val"].exact_fraction == 0.0
    # texts that normalise to nothing never count as duplicates
    assert find_overlap(["", "!!", *TRAIN], ["", "?"]).n_leaking == 0
    assert drop_leaks([], check_splits([], {}, allow=False)).tolist() == []


def test_threshold_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="near_threshold"):
        find_overlap(TRAIN, UNRELATED, near_threshold=0.0)
