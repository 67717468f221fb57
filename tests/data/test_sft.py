"""SFT rows: chat-template rendering as Hugging Face does it, and losses on responses only."""

from __future__ import annotations

import json

import pytest
import torch

from practicum.data.lm import IGNORE_INDEX
from practicum.data.sft import read_pairs, render_pair, sft_rows, trim
from practicum.data.tokenizers import Tokenizer, train_tokenizer
from practicum.errors import UserError

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    texts = ["what is the capital of france", "paris is the capital", "<|im_start|>user", "hello there"] * 5
    return train_tokenizer("bpe", texts, 300, 1)


def test_plain_rendering_ends_the_response_with_eos(tok):
    prefix, full = render_pair("hi?", "hello", tok, None)
    assert prefix == "hi?\n" and full == "hi?\nhello" + tok.specials["eos"]


def test_chat_template_rendering_matches_transformers(tok):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed")
    prefix, full = render_pair("What is 2+2?", "4", tok, CHATML)
    assert prefix == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert full == prefix + "4<|im_end|>"
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok.inner)
    hf.chat_template = CHATML
    messages = [{"role": "user", "content": "What is 2+2?"}]
    assert hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == prefix


def test_only_response_tokens_carry_targets(tok):
    pairs = [("what is the capital of france", "paris"), ("hello", "hello there friend")]
    rows = sft_rows(pairs, tok, None, max_length=64)
    for i, (prompt, response) in enumerate(pairs):
        prefix, full = render_pair(prompt, response, tok, None)
        ids, start = tok.encode(full), len(tok.encode(prefix))
        target = rows["target"][i]
        assert (target[: start - 1] == IGNORE_INDEX).all()
        assert target[start - 1 : len(ids) - 1].tolist() == ids[start:]
        assert (target[len(ids) - 1 :] == IGNORE_INDEX).all()
        assert rows["tokens"][i, : len(ids)].tolist() == ids


def test_trim_drops_columns_after_the_last_target(tok):
    rows = sft_rows([("a b", "c"), ("hello", "hello there friend again and again")], tok, None, 64)
    short = trim({k: v[:1] for k, v in rows.items()})
    assert short["tokens"].shape[1] < rows["tokens"].shape[1]
    assert (short["target"][:, -1] != IGNORE_INDEX).all()


def test_long_examples_are_cut_and_a_prompt_filling_the_context_is_an_error(tok):
    with pytest.raises(UserError, match="raise it"):
        sft_rows([("what is the capital of france " * 10, "paris")], tok, None, max_length=8)
    rows = sft_rows([("hi", "paris is the capital " * 10)], tok, None, max_length=12)
    assert rows["tokens"].shape[1] == 12


def test_read_pairs_names_missing_fields(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"q": "hi", "a": "hello"}) for _ in range(3)) + "\n")
    with pytest.raises(UserError, match=r"no 'prompt', 'response' field .*set task.prompt_field"):
        read_pairs(str(path))
    assert read_pairs(str(path), "q", "a") == [("hi", "hello")] * 3
    assert torch.is_tensor(sft_rows(read_pairs(str(path), "q", "a"), train_tokenizer("char", ["hi hello"], 50, 1), None, 32)["tokens"])
