"""Token classification data: reading JSONL / CoNLL, clear errors, sub-token alignment of tags,
BIO spans and entity F1."""

from __future__ import annotations

import json
import logging

import pytest

from practicum.data.lm import IGNORE_INDEX
from practicum.data.tagging import (
    bio_spans,
    encode_tagged,
    entity_f1,
    read_tagged,
    tag_vocabulary,
)
from practicum.data.text import encode_texts
from practicum.data.tokenizers import train_tokenizer
from practicum.errors import UserError

TEXTS = ["i flew from paris to london", "we live in berlin", "the weather in rome is nice"] * 20
TAGS = {"O": 0, "B-LOC": 1, "I-LOC": 2}


@pytest.fixture(scope="module")
def wordpiece():
    return train_tokenizer("wordpiece", TEXTS, 80, 1)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- alignment


def test_each_tag_sits_on_the_first_sub_token_of_its_word(wordpiece):
    words = [["i", "flew", "to", "amsterdam", "today"], ["rome"]]
    tags = [["O", "O", "O", "B-LOC", "O"], ["B-LOC"]]
    pieces = wordpiece.encode("amsterdam")
    assert len(pieces) > 2  # a word WordPiece splits: only its first piece is tagged
    out = encode_tagged(wordpiece, words, tags, TAGS, max_length=32)
    tokens, mask, target, where = out["tokens"], out["mask"], out["target"], out["word_index"]
    # the same ids (specials included) as encoding the sentence as one text
    ids, text_mask = encode_texts(wordpiece, [" ".join(w) for w in words], 32)
    assert tokens.tolist() == ids.tolist() and mask.tolist() == text_mask.tolist()
    first = 1 + 3  # [CLS] i flew to | amsterdam
    assert tokens[0, first : first + len(pieces)].tolist() == pieces
    assert target[0, first] == TAGS["B-LOC"] and where[0, first] == 3
    assert (target[0, first + 1 : first + len(pieces)] == IGNORE_INDEX).all()
    assert target[0, 0] == IGNORE_INDEX and tokens[0, 0] == wordpiece.cls_id  # [CLS]
    end = int(mask[0].sum()) - 1
    assert target[0, end] == IGNORE_INDEX and tokens[0, end] == wordpiece.sep_id  # [SEP]
    assert (target[1, 3:] == IGNORE_INDEX).all() and not mask[1, 3:].any()  # padding
    assert target[1].tolist()[:3] == [IGNORE_INDEX, TAGS["B-LOC"], IGNORE_INDEX]
    # one target and one word number per word, in order
    for row, row_words in enumerate(words):
        tagged = target[row] != IGNORE_INDEX
        assert (where[row] >= 0).tolist() == tagged.tolist()
        assert where[row][tagged].tolist() == list(range(len(row_words)))
        assert target[row][tagged].tolist() == [TAGS[t] for t in tags[row]]


def test_byte_level_words_keep_their_leading_space():
    bpe = train_tokenizer("bpe", TEXTS, 300, 1)
    words = [["we", "flew", "to", "berlin"]]
    out = encode_tagged(bpe, words, None, TAGS, max_length=32)
    ids, _ = encode_texts(bpe, ["we flew to berlin"], 32)
    assert out["tokens"].tolist() == ids.tolist() and "target" not in out


def test_truncation_cuts_whole_words_and_warns(wordpiece, caplog):
    words = [["i", "flew", "to", "amsterdam"], ["rome"]]
    tags = [["O", "O", "O", "B-LOC"], ["B-LOC"]]
    with caplog.at_level(logging.WARNING):
        out = encode_tagged(wordpiece, words, tags, TAGS, max_length=7)
    assert out["tokens"].shape[1] <= 7
    assert out["word_index"][0].tolist() == [-1, 0, 1, 2, -1]  # amsterdam is gone, not half kept
    assert out["tokens"][0, 4] == wordpiece.sep_id
    assert "1 of 2 sentences" in caplog.text and "1 words" in caplog.text


def test_a_tag_unseen_in_training_is_a_clear_error(wordpiece):
    with pytest.raises(UserError, match=r"validation sentence 1: tag 'B-PER' never occurs"):
        encode_tagged(wordpiece, [["rome"]], [["B-PER"]], TAGS, 16, source="validation")


# ---------------------------------------------------------------- reading


def test_reads_jsonl_with_chosen_field_names_and_numeric_tags(tmp_path):
    path = write_jsonl(tmp_path / "ner.jsonl", [{"words": ["to", "new", "york"], "ner": [0, 1, 2]},
                                                {"words": ["home"], "ner": [0]}])
    rows = read_tagged(path, "words", "ner", tag_names=["O", "B-LOC", "I-LOC"])
    assert rows.words == [["to", "new", "york"], ["home"]]
    assert rows.tags == [["O", "B-LOC", "I-LOC"], ["O"]] and rows.lines == ["line 1", "line 2"]
    assert tag_vocabulary(rows.tags) == ["O", "B-LOC", "I-LOC"]
    assert tag_vocabulary([["B-PER", "O", "B-LOC"]]) == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


def test_reads_a_json_array_and_prediction_input_without_tags(tmp_path):
    path = tmp_path / "ner.json"
    path.write_text(json.dumps([{"tokens": ["a", "b"], "tags": ["O", "B-X"]}]), encoding="utf-8")
    assert read_tagged(path).tags == [["O", "B-X"]]
    plain = write_jsonl(tmp_path / "in.jsonl", [{"tokens": ["in", "rome"]}])
    rows = read_tagged(plain, require_tags=False)
    assert rows.words == [["in", "rome"]] and rows.tags is None


def test_reads_conll_text(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
                    "Peter\tB-PER\nBlackburn\tI-PER\n", encoding="utf-8")
    rows = read_tagged(path)
    assert rows.words == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert rows.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]] and rows.lines == ["line 3", "line 7"]
    words_only = tmp_path / "in.txt"
    words_only.write_text("Peter\nran\n", encoding="utf-8")
    assert read_tagged(words_only, require_tags=False).tags is None


@pytest.mark.parametrize("content, message", [
    ('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
     r"line 2: 2 tokens but 1 tags; give exactly one tag per word"),
    ('{"tokens": ["a"], "labels": ["O"]}\n', r"line 1: no 'tags' field \(it has 'tokens', 'labels'\)"),
    ('{"words": ["a"], "tags": ["O"]}\n', r"line 1: no 'tokens' field .*task.words_field"),
    ('{"tokens": "a b", "tags": ["O", "O"]}\n', r"line 1: 'tokens' is str, not a list"),
    ('{"tokens": ["a"], "tags": ["PER"]}\n', r"line 1: tag 'PER' is not a BIO tag"),
    ('{"tokens": ["a"], "tags": [3]}\n', r"line 1: tag 1 is the number 3; .*task.tag_names"),
    ('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [\n', r"line 2: not valid JSON"),
    ('\n\n', r"no sentences found"),
])
def test_bad_jsonl_files_name_the_file_line_and_fix(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as err:
        read_tagged(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_bad_conll_and_unknown_formats_are_clear(tmp_path):
    conll = tmp_path / "bad.bio"
    conll.write_text("Peter B-PER\nran\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.bio line 2: 'ran' has no tag; write 'word TAG'"):
        read_tagged(conll)
    empty = tmp_path / "empty.conll"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="no sentences found"):
        read_tagged(empty)
    with pytest.raises(UserError, match=r"reads JSON lines .* or CoNLL text"):
        read_tagged(write_jsonl(tmp_path / "x.csv", []))
    with pytest.raises(UserError, match="not found"):
        read_tagged(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- entities


def test_bio_spans_follow_seqevals_default_rules():
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {(0, 2, "PER"), (3, 4, "LOC")}
    assert bio_spans(["O", "I-LOC", "I-LOC", "O"]) == {(1, 3, "LOC")}  # I- without B- starts one
    assert bio_spans(["B-PER", "I-LOC"]) == {(0, 1, "PER"), (1, 2, "LOC")}  # type change
    assert bio_spans(["B-LOC", "B-LOC", "I-LOC"]) == {(0, 1, "LOC"), (1, 3, "LOC")}
    assert bio_spans(["B-MISC-X", "I-MISC-X"]) == {(0, 2, "MISC-X")}
    assert bio_spans(["O", "O"]) == set() and bio_spans([]) == set()


def test_entity_f1_is_micro_over_exact_spans():
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    # true spans 3, predicted 3, exact matches 2
    scores = entity_f1(true, pred)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    # a partial span is wrong; an I- start matches a B- start of the same span
    assert entity_f1([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    assert entity_f1([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])["f1"] == 1.0
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
