"""Sequence-aware item-item features for the MovieLens benchmark's ranker.

MovieLens users rate in sessions (the median user's ratings span under an hour), and the random
per-user split holds out ratings from inside those sessions. Items rated close together in other
users' time-ordered histories therefore predict the held-out items better than plain
co-occurrence: on the validation fold this adjacency alone beats ALS, and an EASE model whose Gram
matrix adds it beats plain EASE. Everything here reads the fit part of a fold only (timestamps of
the training ratings), never the held-out part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


def adjacency(fit: pd.DataFrame, item_index: np.ndarray, n_items: int, tau: float, window: int) -> np.ndarray:
    """Symmetric item x item weights: sum over users of exp(-d / tau) for items d <= window apart.

    ``d`` is the distance in the user's time-ordered fit history (ties broken by item, so the
    result does not depend on row order); ``item_index`` holds the column of each ``fit`` row.
    """
    order = np.lexsort((item_index, fit["ts"].to_numpy(), fit["user"].to_numpy()))
    users, cols = fit["user"].to_numpy()[order], item_index[order]
    rows, others, weights = [], [], []
    for d in range(1, window + 1):
        same = users[d:] == users[:-d]
        rows.append(cols[:-d][same])
        others.append(cols[d:][same])
        weights.append(np.full(int(same.sum()), np.exp(-d / tau)))
    a = sp.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(others))), shape=(n_items, n_items)
    ).toarray()
    return a + a.T


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE (Steck 2019): the closed-form item-item regression with a zero diagonal."""
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def sequence_scores(
    x: sp.csr_matrix, rows: np.ndarray, adj: np.ndarray, beta: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """(adjacency score, sequence-EASE score) for the users in ``rows`` over every item.

    The adjacency score sums the user's items' adjacency to each item, normalised by
    sqrt(count_i * count_j) so popular items do not win by volume. Sequence-EASE fits EASE on the
    co-occurrence Gram matrix plus ``beta`` times the adjacency (and half of that on the diagonal,
    an item being adjacent to itself once per rating).
    """
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    adj_score = np.asarray(x[rows] @ (adj / (np.sqrt(np.outer(counts, counts)) + 1.0)))
    gram = (x.T @ x).toarray().astype(np.float64) + beta * adj + np.diag(counts) * (beta / 2.0)
    return adj_score, np.asarray(x[rows] @ ease_weights(gram, lam))


def add_sequence_features(
    frame: pd.DataFrame,
    fit: pd.DataFrame,
    fold_items: np.ndarray,
    x: sp.csr_matrix,
    eval_users: np.ndarray,
    rows: np.ndarray,
    seen: sp.csr_matrix,
    params: dict[str, float],
) -> pd.DataFrame:
    """``frame`` (user, item candidates) plus scale-free adjacency and sequence-EASE columns.

    ``_rel`` is the score over the user's best unseen item's score, ``_rank`` the rank among the
    user's candidates: raw scores grow with the data, and the ranker learns on a smaller fold than
    the one it ranks.
    """
    index = pd.Index(fold_items)
    adj = adjacency(
        fit, index.get_indexer(fit["item"].to_numpy()), len(fold_items), params["tau"], int(params["window"])
    )
    user_row = (
        pd.Series(np.arange(len(eval_users)), index=eval_users).reindex(frame["user"].to_numpy()).to_numpy()
    )
    col = index.get_indexer(frame["item"].to_numpy())
    out: dict[str, np.ndarray] = {}
    for name, scores in zip(
        ("adj", "sease"), sequence_scores(x, rows, adj, params["beta"], params["lam"]), strict=True
    ):
        scores[seen.nonzero()] = -np.inf
        value = scores[user_row, col]
        out[f"{name}_rel"] = value / np.maximum(scores.max(axis=1)[user_row], 1e-9)
        ranked = frame[["user"]].assign(v=value).groupby("user")["v"].rank(ascending=False, method="first")
        out[f"{name}_rank"] = ranked.to_numpy()
    return frame.assign(**out)
