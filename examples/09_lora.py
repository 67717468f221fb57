"""LoRA: fine-tune a pretrained model by training about 1% of its weights.

Fine-tunes all-MiniLM-L6-v2 (a 22.7M-parameter sentence encoder shipped in an installed
package) twice on the same split of Financial PhraseBank sentiment when ../shared/data is
there, else of the ChatterBot corpus's topics: full fine-tuning, where every weight trains, and
LoRA, where the pretrained weights stay frozen and only a low-rank update beside each
projection (plus the classifier head) trains. Prints the trainable parameters, the size of
what each run has to save, and the test accuracy of both.
"""

import time
from pathlib import Path

from safetensors import safe_open

import practicum
from practicum.learn import lesson_parser

ROOT = Path(__file__).resolve().parents[1]
PHRASEBANK = ROOT.parent / "shared" / "data" / "financial_phrasebank" / "train.csv"


def main() -> None:
    args = lesson_parser(__doc__).parse_args()
    if PHRASEBANK.is_file():  # 1,200 of its 3,388 rows keep the two runs within a few minutes
        common = [f"data.path={PHRASEBANK}", "data.limit=1200", "train.epochs=3"]
    else:
        print(f"{PHRASEBANK} is not there: using the ChatterBot corpus (sentence -> topic) instead")
        common = ["data.path=builtin:chatterbot", "train.epochs=4"]
    common += ["data.split.test_fraction=0.15", "model.max_length=64", "train.tensorboard=false"]
    if args.fast:
        common += ["data.limit=150", "train.max_steps=4", "train.batch_size=16",
                   "model.max_length=32"]

    # One recipe, two strategies. LoRA replaces each targeted Linear's output W x with
    # W x + (alpha / r) * B (A x): A is (r, in) and B is (out, r), r = 8 here, and B starts at
    # zero, so training starts exactly from the pretrained model. Adapters want a higher lr.
    runs = {"full fine-tuning": ["peft.strategy=full", "train.lr=1e-4"],
            "LoRA (r=8)": ["peft.strategy=lora", "peft.lora_r=8", "train.lr=3e-3"]}
    results, seconds = {}, {}
    for name, strategy in runs.items():
        print(f"training: {name} ...")
        start = time.perf_counter()
        out = f"out_dir={args.out / name.split()[0].lower()}"
        results[name] = practicum.train("phrasebank_minilm", [*common, *strategy, out])
        seconds[name] = time.perf_counter() - start

    print(f"\n{'':18} {'trainable':>11} {'share':>7} {'what must be saved':>26} {'test acc':>8}"
          f" {'time':>5}")
    for name, result in results.items():
        s = result.summary
        # A LoRA bundle also keeps adapter.safetensors: only what trained, to put on the base model.
        saved = result.bundle / ("adapter.safetensors" if "LoRA" in name else "model.safetensors")
        size = f"{saved.name} {saved.stat().st_size / 1e6:.1f} MB"
        print(f"{name:18} {s['trainable_params']:>11,} {s['trainable_params'] / s['params']:>7.2%} "
              f"{size:>26} {result.metrics['test']['accuracy']:>8.3f} {seconds[name]:>4.0f}s")

    lora, full = results["LoRA (r=8)"], results["full fine-tuning"]
    lora_acc, full_acc = lora.metrics["test"]["accuracy"], full.metrics["test"]["accuracy"]
    if lora_acc < full_acc:
        print("(with this little data and training LoRA may trail by a few points; it catches up\n"
              " with more epochs: see the fine-tuning ladder in the README)")
    with safe_open(lora.bundle / "adapter.safetensors", "pt") as fh:
        names = sorted(fh.keys())
        print(f"\n{len(names)} tensors in the adapter file (A and B of 4 projections x 6 blocks,"
              " and the head), e.g.:")
        for key in [k for k in names if ".0." in k][:4]:
            print(f"  {key:45} {tuple(fh.get_slice(key).get_shape())}")

    share = lora.summary["trainable_params"] / lora.summary["params"]
    print(f"\nresult: LoRA trains {share:.1%} of the weights; test accuracy {lora_acc:.3f} "
          f"vs {full_acc:.3f} for full fine-tuning")


if __name__ == "__main__":
    main()
