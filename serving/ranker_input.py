"""The ranker's input and output around a carousel: the first stage's order, the request context
columns as training built them, the float matrix in the ranker's feature order, and p_convert for
the candidates below the shortlist. Plain numpy on the hot path (``serving.pipeline.Recommender``)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from models.popularity import RANKER_FEATURE


def first_stage_order(scores: np.ndarray) -> np.ndarray:
    """Positions best first by score (NaN last, ties by position)."""
    return np.argsort(-np.where(np.isnan(scores), -np.inf, scores), kind="stable")


def below_shortlist(p_short: np.ndarray, short: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """p_convert for every candidate: the ranker's for the shortlist; for the rest (``rest``,
    best first) a stand-in falling with the first stage's rank, below half the shortlist's
    lowest, as RankerPolicy puts them below its shortlist. The policy also orders the shortlist
    first (its ``shortlisted`` column), so a high price cannot lift a stand-in above a ranked one."""
    out = np.empty(len(short) + len(rest))
    out[short] = p_short
    floor = float(p_short.min()) if len(p_short) else 0.0
    if floor != floor:  # NaN among the ranker's values: the lowest of the others, if any
        floor = float(np.nanmin(p_short)) if not np.isnan(p_short).all() else 0.0
    out[rest] = max(floor, 0.0) * 0.5 * (1.0 - np.arange(1, len(rest) + 1) / (len(rest) + 1))
    return out


def context(
    scores: np.ndarray,
    fallback: str | None,
    on_air: np.ndarray,
    pinned: np.ndarray,
    order: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """als_score, als_rank (1 = best, unknown last), on_air (0/1) and slot (the pinned slot),
    as training built them; without a personal answer there is no ALS score. ``order``: the
    caller's ``first_stage_order(scores)``; ``rows``: only these positions (the shortlist)."""
    n = len(scores)
    if fallback is None:
        als = np.asarray(scores, float)
        if order is None:
            order = first_stage_order(als)
        rank = np.empty(n)
        rank[order] = np.arange(1, n + 1)
    else:  # every key unknown: a stable sort keeps the given order
        als = np.full(n, np.nan)
        rank = np.arange(1, n + 1, dtype=float)
    columns = {
        "als_score": als,
        "als_rank": rank,
        "on_air": on_air.astype(float),
        "slot": np.asarray(pinned, float),
    }
    return columns if rows is None else {k: v[rows] for k, v in columns.items()}


POPULARITY_FEATURE = RANKER_FEATURE  # training.dataset's context feature, from the bundle's popularity


def popularity_feature(popularity: Any, ids: np.ndarray) -> np.ndarray:
    """The bundle's popularity as training gave it to the ranker (``relative_log_score``); NaN for a
    popularity model without that method (the ranker then reads 0, a product never seen)."""
    score = getattr(popularity, "relative_log_score", None)
    return np.full(len(ids), np.nan) if score is None else np.asarray(score(ids), float)


def predict(ranker: Any, X: np.ndarray, names: list[str]) -> np.ndarray:
    """P(convert) per row of X (columns in ``names`` order). A ranker with ``predict_matrix``
    takes the float matrix as it is; any other gets the DataFrame its protocol promises."""
    fast = getattr(ranker, "predict_matrix", None)
    out = fast(X) if fast is not None else ranker.predict(pd.DataFrame(X, columns=names, copy=False))
    return np.asarray(out, float)


def feature_matrix(
    feats: pd.DataFrame, ids: np.ndarray, context: dict[str, np.ndarray], names: list[str]
) -> pd.DataFrame:
    """``feature_array`` as a DataFrame with the ranker's column names."""
    return pd.DataFrame(feature_array(feats, ids, context, names), columns=names)


def feature_array(
    feats: pd.DataFrame, ids: np.ndarray, context: dict[str, np.ndarray], names: list[str]
) -> np.ndarray:
    """The ranker's columns, in its order, one row per candidate (NaN where the store has none),
    as one C-contiguous float64 matrix: what LightGBM predicts from without another copy.

    Plain numpy on the hot path: the store usually answers in the order asked, so the common
    case is a straight copy; otherwise rows are matched by product_id (a column, or the index as
    ``FastOnlineReader`` answers: read in place, a ``reset_index`` copy cost ~0.4 ms a request)."""
    n = len(ids)
    rows: np.ndarray | None = None
    columns = feats.columns.tolist()
    indexed = "product_id" not in columns and feats.index.name == "product_id"
    # One conversion of the whole frame when it is numeric (feature services for rankers are):
    # per-column pandas access costs ~20 us a column, and a service has dozens. Tried rather
    # than checked: ``feats.dtypes`` alone builds a Series (~80 us).
    matrix: np.ndarray | None = None
    try:  # plain float columns (None -> NaN too): ~10 us cheaper than asking for na_value
        matrix = feats.to_numpy(dtype=float)
    except (TypeError, ValueError):
        try:  # pandas' NA in a nullable column
            matrix = feats.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):  # a text column: converted one by one below
            matrix = None
    if "product_id" in columns:
        # The store usually answers in the order asked: checked on the float matrix when every
        # id is exact as a float (|id| < 2**53), else on the column itself (~20 us more).
        in_order = (
            matrix is not None
            and len(matrix) == n
            and n > 0
            and int(ids.min()) > -(2**53)
            and int(ids.max()) < 2**53
            and bool((matrix[:, columns.index("product_id")] == ids).all())
        )
        got = None if in_order else feats["product_id"].to_numpy()
    elif indexed:
        got = feats.index.to_numpy()
    elif len(feats) != n:
        raise ValueError(f"the feature store answered {len(feats)} rows for {n} products and no product_id")
    else:
        got = None
    # np.array_equal's own test, without its Python overhead (this runs per request)
    if got is not None and (len(got) != n or not bool((got == ids).all())):
        rows = np.full(n, -1, np.int64)
        if len(got):
            order = np.argsort(got, kind="stable")
            pos = np.clip(np.searchsorted(got[order], ids), 0, len(got) - 1)
            rows = np.where(got[order][pos] == ids, order[pos], -1)
    out = np.full((n, len(names)), np.nan)
    where = {str(c): i for i, c in enumerate(columns)}
    found = rows >= 0 if rows is not None else None
    for j, name in enumerate(names):
        if name in context:  # request context the store cannot know (training.dataset's CONTEXT_FEATURES)
            out[:, j] = context[name]
            continue
        if name not in where:
            continue  # stays NaN
        if matrix is not None:
            v = matrix[:, where[name]]
        else:
            col = feats[name]
            v = (col if col.dtype.kind in "fiub" else pd.to_numeric(col, errors="coerce")).to_numpy(
                float, na_value=np.nan
            )
        if rows is None:
            out[:, j] = v
        elif found is not None and found.any():
            out[found, j] = v[rows[found]]
    return out


@functools.lru_cache(maxsize=64)
def _plan(
    columns: tuple[str, ...], names: tuple[str, ...], context: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[int, str], ...]]:
    """Where each of the ranker's columns comes from: the store's column positions (``src``) for
    the ranker's positions ``dst``, and the request context's names by position."""
    where = {c: i for i, c in enumerate(columns)}
    ctx = tuple((j, name) for j, name in enumerate(names) if name in context)
    store = [(j, where[name]) for j, name in enumerate(names) if name not in context and name in where]
    dst = np.asarray([j for j, _ in store], dtype=np.int64)
    src = np.asarray([i for _, i in store], dtype=np.int64)
    return dst, src, ctx


def matrix_array(
    feats: tuple[np.ndarray, tuple[str, ...]],
    ids: np.ndarray,
    context: dict[str, np.ndarray],
    names: list[str],
) -> np.ndarray:
    """``feature_array`` from the store's (float matrix, its feature names), one row per id in the
    order asked, as ``FeastFeatureSource.online_matrix`` answers: one gather, no DataFrame."""
    values, columns = feats
    n = len(ids)
    if values.shape[0] != n:  # a matrix has no product_id to match rows by
        raise ValueError(f"the feature store answered {values.shape[0]} rows for {n} products")
    dst, src, ctx = _plan(tuple(columns), tuple(names), tuple(context))
    out = np.full((n, len(names)), np.nan)
    if len(dst):
        out[:, dst] = values[:, src]
    for j, name in ctx:
        out[:, j] = context[name]
    return out
