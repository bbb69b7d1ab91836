"""Probe: do weights on the rows of sequence-EASE add anything? (issue 4, negative result)

Three ideas not tried before, each built on the fit part of a fold and added, as a per-user
z-score, to sequence-EASE's (benchmarks/movielens_probe.py); the test split is never read.

``rating_in``: the user's fit items enter sequence-EASE's item-item weights with their rating minus
3 instead of 1 (a 5-star neighbour says more than a 1-star one).
``session_pop``: the held-out ratings come from the same sessions as the fit ones (a new session
after a pause of an hour), and a user's first session is the sign-up page's movies. Popularity in
first sessions and in later ones, mixed by the user's share of fit ratings in their first session.
``user_wt a``: sequence-EASE refitted with each user's rows of the Gram and adjacency weighted by
n_u^-a (mean weight 1), so heavy raters weigh less in the item-item model.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_weighting --help
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import SEQ, FoldScoring, run_probe
from benchmarks.movielens_sequence import ease_weights

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
SESSION_GAP_S = 3600


def weighted_adjacency(fold: Fold, user_weight: np.ndarray) -> np.ndarray:
    """Sequence-EASE's adjacency with each user's pairs times ``user_weight`` (by user row)."""
    fit = fold.fit
    cols, urow = fold.items.index(fit["item"]), fold.users.index(fit["user"])
    order = np.lexsort((cols, fit["ts"].to_numpy(), urow))
    u, c = urow[order], cols[order]
    rows, others, weights = [], [], []
    for d in range(1, int(SEQ["window"]) + 1):
        same = u[d:] == u[:-d]
        rows.append(c[:-d][same])
        others.append(c[d:][same])
        weights.append(np.exp(-d / SEQ["tau"]) * user_weight[u[d:][same]])
    n = len(fold.items)
    a = sp.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(others))), shape=(n, n)
    ).toarray()
    return a + a.T


def sequence_ease(fold: Fold, user_weight: np.ndarray) -> np.ndarray:
    """Sequence-EASE's item-item weights with every user's contribution scaled by ``user_weight``."""
    x = fold.matrix
    xw = sp.diags(user_weight) @ x
    counts = np.asarray(xw.sum(axis=0)).ravel().astype(np.float64)
    gram = (x.T @ xw).toarray().astype(np.float64)
    gram += SEQ["beta"] * weighted_adjacency(fold, user_weight) + np.diag(counts) * (SEQ["beta"] / 2.0)
    return ease_weights(gram, SEQ["lam"])


def session_popularity(fold: Fold, rows: np.ndarray) -> np.ndarray:
    """log(share * P(item | first session) + (1 - share) * P(item | later session)) per user."""
    f = fold.fit.sort_values(["user", "ts", "item"]).reset_index(drop=True)
    new = (f["user"].diff() != 0) | (f["ts"].diff() > SESSION_GAP_S)
    first = (new.groupby(f["user"]).cumsum() == 1).to_numpy()
    items, users = fold.items.index(f["item"]), fold.users.index(f["user"])
    n_items, n_users = len(fold.items), len(fold.users)
    p_first = np.bincount(items[first], minlength=n_items) + 1.0
    p_later = np.bincount(items[~first], minlength=n_items) + 1.0
    p_first, p_later = p_first / p_first.sum(), p_later / p_later.sum()
    n_first = np.bincount(users[first], minlength=n_users)
    share = (n_first / np.maximum(np.bincount(users, minlength=n_users), 1))[rows][:, None]
    return np.log(share * p_first[None, :] + (1.0 - share) * p_later[None, :])


def main(argv: list[str] | None = None) -> int:
    def probe(fold: Fold) -> dict[str, list[float]]:
        sc = FoldScoring(fold)
        out = {"sease": [sc.ndcg(sc.base)]}
        n_u = np.asarray(fold.matrix.sum(axis=1)).ravel()
        b = sequence_ease(fold, np.ones_like(n_u))
        fit = fold.fit
        r = sp.csr_matrix(
            (fit["rating"].to_numpy() - 3.0, (fold.users.index(fit["user"]), fold.items.index(fit["item"]))),
            shape=fold.matrix.shape,
        )
        out["rating_in"] = sc.gains(sc.z(np.asarray(r[sc.rows] @ b)), WEIGHTS)
        out["session_pop"] = sc.gains(sc.z(session_popularity(fold, sc.rows)), WEIGHTS)
        for a in (0.25, 0.5):
            w = np.maximum(n_u, 1.0) ** -a
            w /= w[n_u > 0].mean()
            scores = np.asarray(fold.matrix[sc.rows] @ sequence_ease(fold, w))
            out[f"user_wt {a:g}"] = sc.gains(sc.z(scores), WEIGHTS)
        return out

    return run_probe(__doc__, probe, WEIGHTS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
