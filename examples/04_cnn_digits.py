"""A CNN on digits, from scratch.

Convolutions share one small filter across the whole image, and max-pooling keeps the
strongest response in each patch. Two conv + pool stages and a linear classifier, every
backward pass written in NumPy, learn scikit-learn's 8x8 digits; `--torch` runs the same
network on the PyTorch twins, and the lesson ends with the filters it learned.
"""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from practicum import scratch
from practicum.learn import lesson_parser, scratch_library


def cnn(lib, seed: int = 0):
    """(B, 1, 8, 8) -> conv 3x3 -> (B, 8, 8, 8) -> pool -> (B, 8, 4, 4) -> conv -> pool -> (B, 16, 2, 2) -> 10."""
    rng = np.random.default_rng(seed) if lib is scratch else None
    kw = {"seed": rng} if rng is not None else {"seed": seed}
    return lib.Sequential(
        lib.Conv2d(1, 8, 3, padding=1, **kw), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(8, 16, 3, padding=1, **kw), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(), lib.Linear(16 * 2 * 2, 10, **kw),
    )


def show_filters(weights: np.ndarray) -> None:
    """The first layer's 3x3 filters as characters: # strongly positive, . strongly negative."""
    chars = np.array([".", "-", " ", "+", "#"])
    rows = ["", "", ""]
    for f in weights[:, 0]:
        scaled = np.clip(np.round(f / (np.abs(f).max() + 1e-12) * 2) + 2, 0, 4).astype(int)
        for r in range(3):
            rows[r] += "".join(chars[scaled[r]]) + "   "
    print("first-layer filters:\n  " + "\n  ".join(rows))


def main() -> None:
    args = lesson_parser(__doc__, twins=True).parse_args()
    lib = scratch_library(args)  # practicum.scratch, or practicum.scratch.twins with --torch

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8)  # (N, channels, height, width)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    model = cnn(lib)
    n_params = sum(np.asarray(v).size for v in model.state_dict().values())
    print(f"CNN with {n_params:,} parameters on {len(X_train)} training digits "
          f"({'PyTorch twins' if args.torch else 'NumPy scratch'})")
    start = time.perf_counter()
    lib.fit(model, X_train, y_train, optimizer="adam", lr=3e-3, epochs=5 if args.fast else 15,
            batch_size=32, on_epoch=lambda row: print(f"  epoch {row['epoch']:>2}  loss {row['loss']:.4f}"))
    seconds = time.perf_counter() - start
    acc = lib.accuracy(model, X_test, y_test)
    show_filters(np.asarray(model.state_dict()["0.weight"], dtype=float))
    print(f"result: test accuracy {acc:.3f} on {len(X_test)} held-out digits after {seconds:.1f}s of training "
          f"({'torch twins' if args.torch else 'NumPy scratch'})")


if __name__ == "__main__":
    main()
