"""An LSTM text classifier, trained from a recipe.

Trains the `lstm_text` recipe (word embeddings read by a bidirectional LSTM, max-pooled over
the sentence) on Financial PhraseBank sentiment when ../shared/data is there, else on the
topics of the ChatterBot corpus, changing only a few fields of the recipe. Prints the test
accuracy beside the majority-class baseline, some test sentences with their predictions, and
predictions for new sentences from the saved bundle.
"""

import csv
from pathlib import Path

import practicum
from practicum.learn import lesson_parser

ROOT = Path(__file__).resolve().parents[1]
PHRASEBANK = ROOT.parent / "shared" / "data" / "financial_phrasebank" / "train.csv"

NEW_SENTENCES = {
    "phrasebank": ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn a year earlier.",
                   "The company expects its net sales to decrease and will cut 150 jobs.",
                   "The annual general meeting will be held in Helsinki on 15 April."],
    "chatterbot": ["Who painted the Mona Lisa?", "How do I write a for loop in Python?",
                   "Do you like to play football?", "Are you a robot?"],
}


def main() -> None:
    args = lesson_parser(__doc__).parse_args()

    # A recipe is a YAML file of settings; every field can be overridden with a dotted
    # `field=value`, exactly as `practicum train lstm_text --field value` does on the command line.
    if PHRASEBANK.is_file():
        name, overrides = "phrasebank", [f"data.path={PHRASEBANK}"]
    else:
        print(f"{PHRASEBANK} is not there: using the ChatterBot corpus (sentence -> topic) instead")
        name, overrides = "chatterbot", ["data.path=builtin:chatterbot", "data.text.min_freq=1"]
    overrides += [f"out_dir={args.out / 'lstm_text'}", "train.tensorboard=false"]
    if args.fast:  # fewer rows, a narrower LSTM and 2 epochs: seconds instead of a minute
        overrides += ["data.limit=600", "model.embedding_dim=32", "model.hidden_size=32",
                      "train.epochs=2"]

    config = practicum.api.resolve_config("lstm_text", overrides)
    print(f"data: {config.data.path}")
    print(f"model: {config.model.model_dump()}")
    print(f"training {config.train.epochs} epochs ...")
    result = practicum.train(config)

    # The run held out a stratified test split that training never saw.
    test = result.metrics["test"]
    counts = [sum(row) for row in test["confusion_matrix"]]  # true rows per class
    majority = max(counts) / sum(counts)
    print(f"\ntest accuracy {test['accuracy']:.3f}, macro F1 {test['f1_macro']:.3f} "
          f"on {sum(counts)} sentences (always guessing the most common class: {majority:.3f})")

    # predictions.csv holds every test row: the sentence, its label and the model's guess.
    print("\nsome test sentences:")
    with (result.run_dir / "predictions.csv").open(encoding="utf-8") as fh:
        for row in list(csv.DictReader(fh))[:6]:
            mark = "ok " if row["prediction"] == row["target"] else "MISS"
            print(f"  {mark} {row['prediction']:>10} ({float(row['confidence']):.2f})  "
                  f"true {row['target']:>10}  {row['input'][:60]}")

    # The bundle keeps the vocabulary, so new raw text goes straight in.
    bundle = practicum.load(result.bundle)
    print("\nnew sentences:")
    for pred in bundle.predict(NEW_SENTENCES[name]):
        print(f"  {pred['prediction']:>10} ({pred['confidence']:.2f})  {pred['input']}")
    print(f"\nrun folder (report.html, plots, bundle): {result.run_dir}")
    print(f"result: test accuracy {test['accuracy']:.3f} (majority baseline {majority:.3f})")


if __name__ == "__main__":
    main()
