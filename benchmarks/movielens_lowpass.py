"""Probe: do graph low-pass filters (GF-CF) add anything to sequence-EASE? (issue 4, negative result)

GF-CF (Shen et al. 2021, "How Powerful is Graph Convolution for Recommendation?") scores a user's
items through the normalised item-item matrix R~'R~ (R~ = D_u^-1/2 R D_i^-1/2) plus ``a`` times an
ideal low-pass filter, the projection on R~'s top ``k`` right singular vectors. The ``seq`` variant
puts the sequence-EASE Gram matrix (co-occurrence + beta x positional adjacency), normalised the
same way, in place of R~'R~. Each scorer's per-user z-score is added to sequence-EASE's with a few
weights, on the benchmark's validation fold and as the mean over the 8 folds the blend is tuned on.
The test split is never read.

    uv run --frozen python -m benchmarks.movielens_lowpass --help
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import SEQ, FoldScoring, run_probe

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
VARIANTS = (("plain", 64, 0.0), ("plain", 64, 0.3), ("plain", 64, 1.0), ("plain", 256, 0.3), ("plain", 256, 1.0),
            ("seq", 64, 0.0), ("seq", 64, 0.3), ("seq", 64, 1.0))  # fmt: skip


def lowpass_scorers(
    fold: Fold, rows: np.ndarray, adj: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(linear part, ideal low-pass part) per variant, for the users in ``rows``."""
    x = fold.matrix
    deg_i = np.asarray(x.sum(axis=0)).ravel() + 1e-9
    deg_u = np.asarray(x.sum(axis=1)).ravel() + 1e-9
    rn = sp.diags(deg_u**-0.5) @ x @ sp.diags(deg_i**-0.5)
    gram = (x.T @ x).toarray() + SEQ["beta"] * adj + np.diag(deg_i) * (SEQ["beta"] / 2.0)
    d = np.sqrt(np.diag(gram)) + 1e-9
    linear = {
        "plain": np.asarray(x[rows] @ (rn.T @ rn).toarray()),
        "seq": np.asarray(x[rows] @ (gram / np.outer(d, d))),
    }
    _, _, vt = np.linalg.svd(rn.toarray(), full_matrices=False)
    out = {}
    for kind, k, _ in VARIANTS:
        v = vt[:k].T
        ideal = np.asarray(x[rows] @ (sp.diags(deg_i**-0.5) @ v @ v.T @ sp.diags(deg_i**0.5)))
        out[f"{kind}_k{k}"] = (linear[kind], ideal)
    return out


def probe(fold: Fold) -> dict[str, list[float]]:
    """nDCG@10 on ``fold``: sequence-EASE, then per variant [alone, sEASE + w * variant for WEIGHTS]."""
    sc = FoldScoring(fold)
    out = {"sease": [sc.ndcg(sc.base)]}
    parts = lowpass_scorers(fold, sc.rows, sc.adj)
    for kind, k, a in VARIANTS:
        linear, ideal = parts[f"{kind}_k{k}"]
        out[f"{kind} k={k} a={a}"] = sc.gains(sc.z(sc.z(linear) + a * sc.z(ideal)), WEIGHTS)
    return out


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, WEIGHTS))
