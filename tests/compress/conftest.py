"""Fixtures of the quantization, pipeline and CLI tests of compress (the trained tiny bundles
come from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from finetune_data import TOPICS


@pytest.fixture(scope="session")
def lm_text(tmp_path_factory) -> Path:
    """A small text file (the topic sentences) to score a language model's loss and perplexity on."""
    path = tmp_path_factory.mktemp("lm_text") / "topics.txt"
    lines = [t for rows in TOPICS.values() for t in rows]
    path.write_text("\n\n".join(lines * 6) + "\n", encoding="utf-8")
    return path
