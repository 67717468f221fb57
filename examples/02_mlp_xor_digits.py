"""An MLP learning XOR, then digits, from scratch.

XOR is the function no straight line can separate: a linear model stays at 50%, one hidden
layer solves it. Then the same code, wider, learns scikit-learn's 8x8 handwritten digits.
Every gradient is computed by the backward passes in practicum.scratch.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from practicum.learn import lesson_parser, scratch_library


def xor(lib) -> None:
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    linear = lib.SoftmaxRegression(2, 2, seed=0)
    # a straight line through the plane can put at most 3 of the 4 points on the right side
    lib.fit(linear, X, y, optimizer="sgd", lr=0.5, epochs=500, batch_size=4)
    mlp = lib.MLP([2, 8, 2], activation="tanh", seed=0)
    lib.fit(mlp, X, y, optimizer="sgd", lr=0.5, momentum=0.9, epochs=500, batch_size=4)
    print("XOR      x1 x2 | target | linear | MLP")
    for row, target, a, b in zip(X, y, lib.predict(linear, X).argmax(1), lib.predict(mlp, X).argmax(1),
                                 strict=True):
        print(f"          {row[0]:.0f}  {row[1]:.0f} |   {target}    |   {a}    |  {b}")
    print(f"XOR accuracy: linear {lib.accuracy(linear, X, y):.2f}, MLP {lib.accuracy(mlp, X, y):.2f}")


def digits(lib, fast: bool) -> float:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.2, stratify=y,
                                                        random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.1,
                                                      stratify=y_train, random_state=0)
    model = lib.MLP([64, 128, 10], dropout=0.1, seed=0)
    epochs = 5 if fast else 30

    def show(row: dict) -> None:
        if row["epoch"] % max(1, epochs // 6) == 0 or row["epoch"] == epochs:
            print(f"  epoch {row['epoch']:>2}  loss {row['loss']:.4f}  "
                  f"val accuracy {row['val_accuracy']:.3f}  ({row['seconds'] * 1000:.0f} ms)")

    lib.fit(model, X_train, y_train, optimizer="adam", lr=2e-3, epochs=epochs, batch_size=32,
            weight_decay=1e-4, val=(X_val, y_val), on_epoch=show)
    return lib.accuracy(model, X_test, y_test)


def main() -> None:
    args = lesson_parser(__doc__, twins=True).parse_args()
    lib = scratch_library(args)  # practicum.scratch, or practicum.scratch.twins with --torch
    xor(lib)
    print("digits: 64 pixels -> 128 ReLU units (dropout 0.1) -> 10 classes, Adam, L2 1e-4")
    acc = digits(lib, args.fast)
    print(f"result: test accuracy {acc:.3f} on 360 held-out digits "
          f"({'torch twin' if args.torch else 'NumPy scratch'})")


if __name__ == "__main__":
    main()
