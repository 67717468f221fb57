"""Compression: prune and quantize a trained model, and measure what it costs.

Trains the `transformer_text` recipe (a 2-layer Transformer encoder classifier) on Financial
PhraseBank sentiment when ../shared/data is there, else on the ChatterBot corpus's topics,
then writes three smaller bundles with practicum.api.compress: dynamic int8 quantization, 50%
magnitude pruning followed by a short recovery fine-tune, and both. Prints the trade-off
table: size of the weights file, share of non-zero weights, latency and test accuracy.
"""

from pathlib import Path

import practicum
from practicum import api
from practicum.learn import lesson_parser

ROOT = Path(__file__).resolve().parents[1]
PHRASEBANK = ROOT.parent / "shared" / "data" / "financial_phrasebank" / "train.csv"


def main() -> None:
    args = lesson_parser(__doc__).parse_args()
    if PHRASEBANK.is_file():
        overrides = [f"data.path={PHRASEBANK}"]
    else:
        print(f"{PHRASEBANK} is not there: using the ChatterBot corpus (sentence -> topic) instead")
        overrides = ["data.path=builtin:chatterbot", "data.text.min_freq=1"]
    overrides += [f"out_dir={args.out / 'transformer'}", "train.tensorboard=false",
                  "train.epochs=8"]
    if args.fast:
        overrides += ["data.limit=400", "train.epochs=1", "model.d_model=64", "model.d_ff=128"]
    print("training the model to compress ...")
    result = practicum.train("transformer_text", overrides)

    # Each compress call writes a new bundle (the original is never changed) and measures it
    # beside the original on the original's test split.
    recover = 0.5 if args.fast else 1.0  # epochs of fine-tuning with the pruned weights held at 0
    variants = {
        "int8": {"quantize": "int8"},  # Linear weights stored as int8 + one scale per row
        "prune 50%": {"prune": 0.5, "recover_epochs": recover},  # smallest 50% of weights -> 0
        "prune 50% + int8": {"prune": 0.5, "recover_epochs": recover, "quantize": "int8"},
    }
    rows = []
    for name, options in variants.items():
        print(f"compressing: {name} ...")
        out = args.out / ("bundle-" + name.replace(" ", "").replace("%", "").replace("+", "-"))
        compressed = api.compress(result.bundle, out=out, repeats=5 if args.fast else 50, **options)
        original, smaller = compressed.table["rows"]  # measured one after the other, same inputs
        rows += [original] if not rows else []
        rows.append({**smaller, "name": name})

    base = rows[0]
    print(f"\n{'bundle':18} {'weights':>9} {'smaller':>8} {'non-zero':>9} "
          f"{'batch 1':>9} {'batch 32':>9} {'accuracy':>9} {'change':>7}")
    for row in rows:
        ms = row["latency_ms"]  # median (p50) of the timed forward passes
        accuracy = row["metrics"]["accuracy"]
        print(f"{row['name']:18} {row['weights_bytes'] / 1024:>6.0f} KB "
              f"{base['weights_bytes'] / row['weights_bytes']:>7.2f}x "
              f"{row['nonzero_parameters'] / row['parameters']:>9.1%} "
              f"{ms['1']['p50']:>6.2f} ms {ms['32']['p50']:>6.2f} ms {accuracy:>9.3f} "
              f"{100 * (accuracy - base['metrics']['accuracy']):>+7.1f}")
    print(f"\nbatch 1 / batch 32: median time of one forward pass; change: accuracy difference in\n"
          f"percentage points. prune: the 50% smallest Linear weights (embeddings, norms and the\n"
          f"output layer kept) set to 0, then {recover:g} epoch(s) of fine-tuning with them held\n"
          "at 0. The zeros are still stored and multiplied as dense floats, so only int8 shrinks\n"
          "the file. Latencies of a model this small move by +-30% from run to run.")

    best = rows[-1]
    ratio = base["weights_bytes"] / best["weights_bytes"]
    print(f"\nresult: prune 50% + int8 is {ratio:.1f}x smaller, test accuracy "
          f"{best['metrics']['accuracy']:.3f} vs {base['metrics']['accuracy']:.3f}")


if __name__ == "__main__":
    main()
