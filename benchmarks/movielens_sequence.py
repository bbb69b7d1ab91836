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
    return adj_score, np.asarray(x[rows] @ ease_weights(sequence_gram(x, adj, beta), lam))


def sequence_gram(x: sp.csr_matrix, adj: np.ndarray, beta: float) -> np.ndarray:
    """Sequence-EASE's Gram matrix: co-occurrence + ``beta`` x adjacency (+ beta / 2 per rating)."""
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    return (x.T @ x).toarray().astype(np.float64) + beta * adj + np.diag(counts) * (beta / 2.0)
