"""Base scorers of the MovieLens benchmark and the ranker's candidate frame built from them.

Every scorer gives a (evaluated users x items) matrix fitted on a fold's fit part only, with the
user's seen items set to NaN. The ranker sees each score only *relative to the user's other unseen
items* (a z-score and a rank percentile): the ranker learns on folds of the training part and ranks
with models fitted on all of it, and raw scores (co-occurrence counts, ALS dot products) grow with
the data while a user's z-score of an item does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.movielens_data import Fold
from benchmarks.movielens_sequence import adjacency, ease_weights, sequence_scores

SCORERS = ("als", "sease", "ease", "adj", "gap", "pop")


def timeline(fit: pd.DataFrame, item_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, item column) of every rating in time order per user (ties by item, row-order-free)."""
    order = np.lexsort((item_index, fit["ts"].to_numpy(), fit["user"].to_numpy()))
    return fit["user"].to_numpy()[order], item_index[order]


def gap_scores(
    fit: pd.DataFrame, item_index: np.ndarray, eval_users: np.ndarray, sim: np.ndarray
) -> np.ndarray:
    """Two-sided score: sum over the user's consecutive training pairs (a, b) of sqrt(sim[a, i] sim[b, i]).

    A held-out rating sits in a gap of the user's time-ordered training history; an item close in
    other users' sequences to *both* ends of a gap is a likelier filler than one close to one end.
    """
    users, cols = timeline(fit, item_index)
    same = users[1:] == users[:-1]
    a, b, u = cols[:-1][same], cols[1:][same], users[:-1][same]
    row = pd.Series(np.arange(len(eval_users)), index=eval_users).reindex(u).to_numpy()
    keep = ~np.isnan(row)
    a, b, row = a[keep], b[keep], row[keep].astype(np.int64)
    root = np.sqrt(np.maximum(sim, 0.0))
    out = np.zeros((len(eval_users), sim.shape[1]))
    for s in range(0, len(a), 4096):  # chunks keep the (pairs x items) temporary small
        v = root[a[s : s + 4096]] * root[b[s : s + 4096]]
        out += (
            sp.csr_matrix(
                (np.ones(len(v)), (row[s : s + 4096], np.arange(len(v)))), shape=(len(eval_users), len(v))
            )
            @ v
        )
    return out


def base_scores(fold: Fold, als: Any, ease_lambda: float, seq: dict[str, float]) -> dict[str, np.ndarray]:
    """Every scorer's (evaluated users x items) matrix on ``fold``; the user's seen items are NaN."""
    x = fold.matrix
    rows = fold.users.index(fold.eval_users)
    item_index = fold.items.index(fold.fit["item"])
    n_items = x.shape[1]
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    adj = adjacency(fold.fit, item_index, n_items, seq["tau"], int(seq["window"]))
    out: dict[str, np.ndarray] = {}
    out["adj"], out["sease"] = sequence_scores(x, rows, adj, seq["beta"], seq["lam"])
    out["ease"] = np.asarray(x[rows] @ ease_weights((x.T @ x).toarray(), ease_lambda))
    out["gap"] = gap_scores(
        fold.fit, item_index, fold.eval_users, adj / (np.sqrt(np.outer(counts, counts)) + 1.0)
    )
    out["als"] = als.score_matrix(fold.eval_users, fold.items.ids).astype(np.float64)
    out["pop"] = np.tile(np.log1p(counts), (len(rows), 1))
    seen = fold.seen.nonzero()
    for s in out.values():
        s[seen] = np.nan
    return out


def standardise(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per user over the unseen items: (z-score, rank percentile in (0, 1], 1 = the user's best)."""
    mu = np.nanmean(scores, axis=1, keepdims=True)
    sd = np.nanstd(scores, axis=1, keepdims=True)
    z = (scores - mu) / np.maximum(sd, 1e-12)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    rank = np.empty_like(filled)
    order = np.argsort(-filled, axis=1, kind="stable")
    np.put_along_axis(rank, order, np.arange(1, filled.shape[1] + 1, dtype=np.float64)[None, :], axis=1)
    n_unseen = np.sum(~np.isnan(scores), axis=1, keepdims=True)
    return z, 1.0 - (rank - 1.0) / np.maximum(n_unseen, 1)


def blend(z: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """A linear combination of per-user z-scores (unseen items only; seen items stay NaN)."""
    return sum(w * z[name] for name, w in weights.items() if w)  # type: ignore[return-value]


def top_items(fold: Fold, scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best unseen item ids per evaluated user (NaN = seen, never recommended)."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    return fold.items.ids[np.argsort(-filled, axis=1, kind="stable")[:, :k]]


def pool(scores: dict[str, np.ndarray], n_als: int, n_other: int, other: str) -> np.ndarray:
    """Candidate columns per user: ALS top ``n_als`` plus ``other``'s top ``n_other`` (a boolean mask)."""
    mask = np.zeros(scores["als"].shape, dtype=bool)
    for name, n in (("als", n_als), (other, n_other)):
        if n == 0:
            continue
        filled = np.where(np.isnan(scores[name]), -np.inf, scores[name])
        top = np.argpartition(-filled, n - 1, axis=1)[:, :n]
        np.put_along_axis(mask, top, True, axis=1)
    return mask & ~np.isnan(scores["als"])


def candidate_frame(
    fold: Fold, scores: dict[str, np.ndarray], weights: dict[str, float], n_als: int, n_other: int
) -> pd.DataFrame:
    """One row per (user, pooled candidate): each scorer's z and rank percentile, the blend, labels.

    User and item context is scale-free too: the user's activity relative to the mean user, the
    item's popularity percentile and mean rating, the user's mean rating.
    """
    z, pct = {}, {}
    for name, s in scores.items():
        z[name], pct[name] = standardise(s)
    z["blend"], pct["blend"] = standardise(blend(z, weights))
    mask = pool({"als": scores["als"], "blend": z["blend"]}, n_als, n_other, "blend")
    r, c = np.nonzero(mask)
    cols: dict[str, np.ndarray] = {"user": fold.eval_users[r], "item": fold.items.ids[c]}
    for name in z:
        cols[f"{name}_z"] = z[name][r, c]
        cols[f"{name}_pct"] = pct[name][r, c]
    activity = np.asarray(fold.seen.sum(axis=1)).ravel()
    cols["user_activity"] = (activity / activity.mean())[r]
    item_mean = fold.fit.groupby("item")["rating"].mean().reindex(fold.items.ids).to_numpy()
    user_mean = fold.fit.groupby("user")["rating"].mean().reindex(fold.eval_users).to_numpy()
    cols["item_mean_rating"] = item_mean[c]
    cols["user_mean_rating"] = user_mean[r]
    frame = pd.DataFrame(cols)
    held = fold.held.assign(label=True).set_index(["user", "item"])["label"]
    frame["label"] = (
        held.reindex(pd.MultiIndex.from_arrays([frame["user"], frame["item"]])).notna().to_numpy()
    )
    return frame


def feature_names(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("user", "item", "label")]
