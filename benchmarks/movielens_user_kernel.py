"""Probe: kernel ridge regression over users, linear and infinite-width (NTK) autoencoder (issue 4).

The infinite-width autoencoder (Sachdeva et al. 2022, "infinite-AE") is kernel ridge regression of
each user's row on every user's row with the neural tangent kernel of a one-hidden-layer ReLU
network: scores = K (K + lambda I)^-1 X over the 943 users, lambda = c x mean(diag K). ``lin`` is
the same with the linear kernel X X^T (a user-user model, the dual of a ridge item-item one). Each
is scored alone and added, as a per-user z-score, to sequence-EASE's (benchmarks/movielens_probe.py).
The test split is never read.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_user_kernel --help
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import FoldScoring, run_probe

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
RIDGE = (3.0, 10.0, 30.0)  # c in lambda = c x mean(diag K)


def ntk(x: np.ndarray) -> np.ndarray:
    """The NTK of a one-hidden-layer ReLU network between the rows of ``x`` (arc-cosine kernels)."""
    g = x @ x.T
    norm = np.sqrt(np.clip(np.diag(g), 1e-12, None))
    cos = np.clip(g / np.outer(norm, norm), -1.0, 1.0)
    theta = np.arccos(cos)
    nngp = np.outer(norm, norm) * (np.sin(theta) + (np.pi - theta) * cos) / np.pi  # order-1 arc-cosine
    return nngp + g * (np.pi - theta) / np.pi  # + the gradient term (order-0 arc-cosine)


def kernel_scores(k: np.ndarray, x: np.ndarray, c: float) -> np.ndarray:
    return k @ np.linalg.solve(k + c * float(np.mean(np.diag(k))) * np.eye(len(k)), x)


def probe(fold: Fold) -> dict[str, list[float]]:
    fs = FoldScoring(fold)
    x = fold.matrix.toarray().astype(np.float64)
    out = {"sease": fs.gains(fs.base, ())}
    for name, k in (("lin", x @ x.T), ("ntk", ntk(x))):
        for c in RIDGE:
            out[f"{name} c {c:g}"] = fs.gains(fs.z(kernel_scores(k, x, c)[fs.rows]), WEIGHTS)
    return out


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, WEIGHTS))
