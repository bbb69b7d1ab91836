"""Probe: higher-order EASE, item pairs as inputs on top of sequence-EASE (issue 4).

Steck & Liang 2021 ("Negative interactions for improved collaborative filtering: don't go deeper,
go higher") add pairs of items as input features to EASE: a pair (i, j) the user holds both of
predicts other items beyond what i and j say alone. Here in two stages: sequence-EASE's weights B
as the benchmark fits them, then a ridge regression of the residual X - X B on the pair features
Z (the ``PAIRS_N`` pairs held together by the most users of the fit part), with the constraint
that a pair never predicts its own two items (EASE's zero diagonal, one level up). Scored as
sequence-EASE + Z C (``hoease``) and as Z C's z-score added to sequence-EASE's
(benchmarks/movielens_probe.py; in its table the "alone" column holds sequence-EASE + Z C).
The test split is never read.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_pairs --help

Environment: ``PAIRS_N`` (pairs kept, default 6000) and ``PAIRS_LAM`` (ridge values on the pair
weights, comma-separated, default 100,400,1600).
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
N_PAIRS = int(os.environ.get("PAIRS_N", "6000"))  # the most frequent pairs kept
RIDGE = tuple(float(v) for v in os.environ.get("PAIRS_LAM", "100,400,1600").split(","))


def top_pairs(x: sp.csr_matrix, n: int) -> np.ndarray:
    """The ``n`` item pairs (i < j) held together by the most users, as an (n, 2) array."""
    co = (x.T @ x).toarray()
    iu, ju = np.triu_indices(co.shape[0], k=1)
    counts = co[iu, ju]
    keep = np.argsort(-counts, kind="stable")[:n]
    return np.stack([iu[keep], ju[keep]], axis=1)


def pair_matrix(x: sp.csr_matrix, pairs: np.ndarray) -> np.ndarray:
    dense = x.toarray()
    return dense[:, pairs[:, 0]] * dense[:, pairs[:, 1]]


def constrained_ridge(z: np.ndarray, r: np.ndarray, pairs: np.ndarray, lam: float) -> np.ndarray:
    """C minimising ||R - Z C||^2 + lam ||C||^2 with C[p, i] = C[p, j] = 0 for each pair p = (i, j)."""
    g = z.T @ z
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    c = p @ (z.T @ r)
    members: list[list[int]] = [[] for _ in range(r.shape[1])]
    for k, (i, j) in enumerate(pairs):
        members[i].append(k)
        members[j].append(k)
    for item, s in enumerate(members):
        if s:
            s_arr = np.asarray(s)
            c[:, item] -= p[:, s_arr] @ np.linalg.solve(p[np.ix_(s_arr, s_arr)], c[s_arr, item])
    return c


def probe(fold: Fold) -> dict[str, list[float]]:
    fs = FoldScoring(fold)
    x = fold.matrix
    b = ease_weights(sequence_gram(x, fs.adj, SEQ["beta"]), SEQ["lam"])
    s = np.asarray(x @ b)
    resid = x.toarray() - s
    pairs = top_pairs(x, N_PAIRS)
    z = pair_matrix(x, pairs)
    out = {"sease": fs.gains(fs.base, ())}
    for lam in RIDGE:
        hz = z @ constrained_ridge(z, resid, pairs, lam)
        out[f"hoease lam {lam:g}"] = [fs.ndcg(fs.z((s + hz)[fs.rows]))] + fs.gains(
            fs.z(hz[fs.rows]), WEIGHTS
        )[1:]
    return out


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, WEIGHTS))
