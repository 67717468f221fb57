"""A character-level GPT learns to write like Shakespeare.

Pretrains a small GPT (the `shakespeare_char` recipe: 4 layers, 4 heads, 128 wide, context 64,
LLaMA layout) to predict the next character of Tiny Shakespeare when ../shared/data is there,
else of the Python documentation (builtin:pydoc). Prints the validation loss of the model
before and after training beside the loss of a uniform guess, and text sampled from both.
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

import practicum
from practicum.data.corpus import load_corpus
from practicum.generate import GenerationConfig, generate
from practicum.learn import lesson_parser
from practicum.models.lm import TransformerLM

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@torch.no_grad()
def val_loss(model: TransformerLM, ids: torch.Tensor, block: int, max_windows: int = 256) -> float:
    """Mean cross-entropy of predicting each next token: windows of block+1 ids, input = the first
    block, target = the same shifted by one."""
    n = min(max_windows, (len(ids) - 1) // block)
    windows = ids[: n * block + 1].unfold(0, block + 1, block)  # (n, block + 1), one overlap each
    logits = model.eval()(windows[:, :-1])  # (n, block, vocab)
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()


def main() -> None:
    args = lesson_parser(__doc__).parse_args()
    if SHAKESPEARE.is_file():
        data, prompt = str(SHAKESPEARE), "ROMEO:\n"
    else:
        print(f"{SHAKESPEARE} is not there: using the Python docs (builtin:pydoc) instead")
        data, prompt = "builtin:pydoc", "The "
    overrides = [f"data.path={data}", f"out_dir={args.out / 'char_gpt'}", "train.tensorboard=false"]
    if args.fast:  # 30 steps of 16 windows: the loss only starts to fall
        overrides += ["train.max_steps=30", "train.batch_size=16", "train.warmup_steps=5",
                      "train.eval_every=30", "train.log_every=10",
                      "data.corpus.max_eval_tokens=4096"]

    print(f"pretraining a char-level GPT on {data} ...")
    result = practicum.pretrain("shakespeare_char", overrides)
    bundle = practicum.load(result.bundle)
    tokenizer, trained = bundle.tokenizer, bundle.model
    block = bundle.config.model.block_size

    # The same architecture with fresh random weights: what the model was before training.
    torch.manual_seed(0)
    untrained = TransformerLM(bundle.config.model, vocab_size=trained.vocab_size)

    # The run kept its validation split as token ids: 10% of the text, never trained on.
    _, val_ids, _ = load_corpus(result.run_dir / "corpus")
    ids = torch.from_numpy(val_ids.astype("int64"))
    before, after = val_loss(untrained, ids, block), val_loss(trained, ids, block)
    uniform = math.log(tokenizer.vocab_size)  # loss of giving every character the same chance
    print(f"\nvocabulary: {tokenizer.vocab_size} characters; "
          f"model: {trained.num_parameters():,} parameters")
    print(f"loss on {min(len(ids) - 1, 256 * block):,} held-out characters (nats per character): "
          f"uniform guess {uniform:.3f}, before training {before:.3f}, after {after:.3f}")

    # The training curve the run logged (metrics.jsonl: one JSON row per log / validation).
    print("\n  step  train loss")
    for line in (result.run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] == "train":
            print(f"  {row['step']:>4}  {row['loss']:.3f}")

    # Sampling: temperature < 1 sharpens the distribution, top_k keeps the 40 likeliest characters.
    # The model sees at most `block` characters, so a longer text is written in pieces, each
    # continuing from the last half-context of the text so far.
    for name, model in (("before", untrained), ("after", trained)):
        text = prompt
        for piece in range(5):  # a new seed per piece, or the same random draws would repeat
            settings = GenerationConfig(max_new_tokens=block // 2, temperature=0.8, top_k=40,
                                        seed=piece)
            text += generate(model, tokenizer, text[-block // 2:], settings)[0].text
        print(f"\n--- sample {name} training ---\n{text}")
    print(f"\nresult: validation loss {before:.2f} before -> {after:.2f} after "
          f"{result.summary['steps']} steps (uniform guess {uniform:.2f})")


if __name__ == "__main__":
    main()
