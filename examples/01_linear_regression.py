"""Linear regression from scratch.

Plant weights, make noisy data from them, and get them back twice: exactly, with the
closed-form least-squares solution, and step by step, with mini-batch gradient descent on
the mean squared error. `--torch` runs the same gradient-descent code on the PyTorch twin.
"""

import numpy as np

from practicum import scratch
from practicum.learn import lesson_parser, scratch_library


def main() -> None:
    args = lesson_parser(__doc__, twins=True).parse_args()
    lib = scratch_library(args)  # practicum.scratch, or practicum.scratch.twins with --torch

    # 1. data: y = X w + b + noise, with w and b that we chose
    rng = np.random.default_rng(0)
    true_w, true_b = np.array([2.0, -3.4, 0.5]), 4.2
    n = 5000  # small enough for --fast too
    X = rng.standard_normal((n, 3))
    y = X @ true_w + true_b + 0.01 * rng.standard_normal(n)
    print(f"planted  w = {true_w}, b = {true_b}  ({n} rows, noise sd 0.01)")

    # 2. closed form: the w that makes the residual orthogonal to every column of X
    w, b = scratch.linear_regression_closed_form(X, y)
    print(f"closed   w = {np.round(w, 4)}, b = {b:.4f}   max error {np.abs(w - true_w).max():.1e}")

    # 3. gradient descent: forward (X w + b), loss (MSE), backward (its gradient), step
    model = lib.LinearRegression(3, seed=0)
    history = lib.fit(model, X, y, loss="mse", optimizer="sgd", lr=0.02,
                      epochs=30, batch_size=64)
    for row in history[:: max(1, len(history) // 5)]:
        print(f"  epoch {row['epoch']:>2}  mse {row['loss']:.6f}")
    state = {k: np.asarray(v, dtype=float) for k, v in model.state_dict().items()}
    w_gd, b_gd = state["linear.weight"][0], float(state["linear.bias"][0])
    error = max(np.abs(w_gd - true_w).max(), abs(b_gd - true_b))
    print(f"descent  w = {np.round(w_gd, 4)}, b = {b_gd:.4f}   max error {error:.1e}")
    print(f"result: gradient descent ({'torch' if args.torch else 'scratch'}) recovers the planted "
          f"weights within {error:.1e}")


if __name__ == "__main__":
    main()
