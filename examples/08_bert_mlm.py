"""BERT's masked language model: fill in the blank from both sides.

Pretrains a small BERT (the `pretrain_bert` recipe, made smaller: 2 layers, 128 wide) with
masked-LM on a text this script generates: a few hundred simple facts (capitals, animal sounds,
opposites, colours) written several ways. 15% of the word pieces are hidden and predicted from
the words on both sides. Then prints the top-5 fill-ins for [MASK] in a few sentences, and how
many facts the model recalls.
"""

import random

import practicum
from practicum.generate import fill_mask
from practicum.learn import lesson_parser

CAPITALS = {"france": "paris", "japan": "tokyo", "italy": "rome", "spain": "madrid",
            "egypt": "cairo", "kenya": "nairobi", "peru": "lima", "canada": "ottawa",
            "china": "beijing", "russia": "moscow", "greece": "athens", "norway": "oslo"}
SOUNDS = {"cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa",
          "owl": "hoot", "lion": "roar", "snake": "hiss"}
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow",
             "old": "new", "open": "closed", "early": "late"}
OPPOSITES |= {b: a for a, b in OPPOSITES.items()}
COLOURS = {"sky": "blue", "sea": "blue", "grass": "green", "leaf": "green", "snow": "white",
           "milk": "white", "sun": "yellow", "banana": "yellow", "blood": "red", "coal": "black"}
# (template, facts): {a} is a key of the facts, {b} its value; the model must learn every pair.
TEMPLATES = [("the capital of {a} is {b} .", CAPITALS), ("{b} is the capital of {a} .", CAPITALS),
             ("the {a} says {b} .", SOUNDS), ("the opposite of {a} is {b} .", OPPOSITES),
             ("the {a} is {b} .", COLOURS)]
SENTENCES = ["the capital of [MASK] is paris .",  # the clue is on the right: GPT would not see it
             "[MASK] is the capital of japan .", "the cow says [MASK] .",
             "the opposite of hot is [MASK] .", "the [MASK] is blue ."]  # two right answers


def main() -> None:
    args = lesson_parser(__doc__).parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lines = []
    for _ in range(5000):
        template, facts = rng.choice(TEMPLATES)
        a = rng.choice(sorted(facts))
        lines.append(template.format(a=a, b=facts[a]))
    corpus = args.out / "facts.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} sentences to {corpus}, e.g. {lines[0]!r}")

    # The recipe's WordPiece tokenizer and masking (80% [MASK], 10% random, 10% kept); a smaller
    # BERT without dropout, as there is nothing to regularise: we want it to learn the facts.
    overrides = [f"data.path={corpus}", f"out_dir={args.out / 'bert'}", "train.tensorboard=false",
                 "model.preset=bert-tiny", "model.block_size=32", "model.dropout=0.0",
                 "data.corpus.vocab_size=500", "train.batch_size=32", "train.lr=1e-3",
                 "train.warmup_steps=50", "train.max_steps=3000", "train.eval_every=500"]
    if args.fast:
        overrides += ["train.max_steps=30", "train.warmup_steps=5", "train.eval_every=30"]
    print(f"pretraining a small BERT ({'30' if args.fast else '3,000'} steps) ...")
    result = practicum.pretrain("pretrain_bert", overrides)
    bundle = practicum.load(result.bundle)
    model, tokenizer = bundle.model, bundle.tokenizer
    accuracy = result.metrics["val"]["mlm_accuracy"]
    print(f"masked-token accuracy on the held-out 10% of the text: {accuracy:.3f}")
    if args.fast:
        print("fast mode: after 30 steps the model only knows which pieces are frequent,\n"
              "so the fill-ins below are rough ('the', '.', 'is'); run without --fast")

    # fill_mask ranks the whole vocabulary for each [MASK]: a softmax over the model's logits there.
    print("\ntop-5 fill-ins:")
    for text in SENTENCES:
        top5 = fill_mask(model, tokenizer, text, top_k=5)[0]  # [(piece, probability), ...]
        guesses = ", ".join(f"{piece} {p:.2f}" for piece, p in top5)
        print(f"  {text:36} {guesses}")

    # Every fact, with its answer hidden: is the right word the model's first choice?
    recalled, total = 0, 0
    for template, facts in TEMPLATES:
        for a, b in facts.items():
            best = fill_mask(model, tokenizer, template.format(a=a, b="[MASK]"), top_k=1)[0][0][0]
            recalled, total = recalled + (best == b), total + 1
    print(f"\nfacts recalled (answer hidden, the model's first choice right): "
          f"{recalled} of {total}")
    print(f"result: {recalled}/{total} facts recalled, masked-token accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
