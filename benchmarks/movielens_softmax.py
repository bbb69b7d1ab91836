"""Probe: sequence-EASE's weights fine-tuned for the protocol's own task, with a softmax loss (issue 4).

Every scorer of the benchmark is a squared-loss fit (EASE, ALS) or a heuristic; the protocol asks
something else: given a random 75% of a user's ratings, rank the other 25% first. Here the weights
W start from sequence-EASE's B (times a logit scale s) and are trained on exactly that cloze task
inside the fit part: at each step every user's fit items are split at random, 75% as input and 25%
as targets; the loss is the multinomial log-likelihood of the targets under a softmax over the
items not in the input, plus ``mu`` x ||W - s B||^2 (the fine-tune stays near sequence-EASE). Adam,
full batch. The test split is never read.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_softmax --help

Environment: ``SOFTMAX_SCALE`` (s), ``SOFTMAX_MU`` (comma-separated), ``SOFTMAX_STEPS``, ``SOFTMAX_LR``.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import SEQ, FoldScoring, run_probe
from benchmarks.movielens_sequence import ease_weights, sequence_gram

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
SCALE = float(os.environ.get("SOFTMAX_SCALE", "20"))
MUS = tuple(float(v) for v in os.environ.get("SOFTMAX_MU", "0.01,0.1,1").split(","))
STEPS = int(os.environ.get("SOFTMAX_STEPS", "300"))
LR = float(os.environ.get("SOFTMAX_LR", "0.01"))
HOLD = 0.25


def cloze_split(x: sp.csr_matrix, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(input, target): each stored entry goes to the target with probability ``HOLD``."""
    held = rng.random(x.nnz) < HOLD
    xin, tgt = x.copy(), x.copy()
    xin.data = np.where(held, 0.0, 1.0).astype(np.float32)
    tgt.data = held.astype(np.float32)
    xin.eliminate_zeros()
    tgt.eliminate_zeros()
    return xin, tgt


def loss_grad(w: np.ndarray, xin: sp.csr_matrix, tgt: sp.csr_matrix) -> tuple[float, np.ndarray]:
    logits = np.asarray(xin @ w)
    logits[xin.nonzero()] = -np.inf  # the input's items are not ranked, as seen items are not
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    t = tgt.toarray()
    n_t = t.sum(axis=1, keepdims=True)
    keep = n_t[:, 0] > 0
    t, p, n_t, logp = t[keep], p[keep], n_t[keep], np.log(np.clip(p[keep], 1e-30, None))
    loss = float(-(t * logp).sum(axis=1).__truediv__(n_t[:, 0]).mean())
    g = np.zeros((xin.shape[0], w.shape[1]))
    g[keep] = (p - t / n_t) / keep.sum()
    return loss, np.asarray(xin.T @ g)


def fine_tune(x: sp.csr_matrix, b: np.ndarray, mu: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w0 = SCALE * b
    w = w0.copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    for step in range(1, STEPS + 1):
        xin, tgt = cloze_split(x, rng)
        _, g = loss_grad(w, xin, tgt)
        g += 2.0 * mu * (w - w0)
        np.fill_diagonal(g, 0.0)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= LR * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return w


def probe(fold: Fold) -> dict[str, list[float]]:
    fs = FoldScoring(fold)
    x = fold.matrix.astype(np.float64)
    b = ease_weights(sequence_gram(fold.matrix, fs.adj, SEQ["beta"]), SEQ["lam"])
    out = {"sease": fs.gains(fs.base, ())}
    for mu in MUS:
        w = fine_tune(x, b, mu, seed=0)
        out[f"softmax mu {mu:g}"] = fs.gains(fs.z(np.asarray(x[fs.rows] @ w)), WEIGHTS)
    return out


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, WEIGHTS))
