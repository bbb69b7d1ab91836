"""Folding users into a fitted ALS model: their factors solved from interactions, the item factors
fixed (implicit's ``recalculate_user``: exact least squares with the model's alpha and
regularization), the model left unchanged so other threads may read it meanwhile.

A user the model holds is solved from their training row (``UserHistory``) plus the new events.
``models.als.ALSCandidateGenerator.user_vector`` / ``user_vectors`` call these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.als_history import UserHistory
from models.vocab import IdVocab

FoldInUser = tuple[npt.ArrayLike, npt.ArrayLike, int | None]  # (item_ids, confidences, user_id)


def fold_in(
    model: Any,
    users: IdVocab,
    items: IdVocab,
    history: UserHistory | None,
    rows: Sequence[FoldInUser],
    history_weight: float,
) -> list[np.ndarray | None]:
    """Factors for each ``(item_ids, confidences, user_id)`` in one ``recalculate_user`` call; None
    where there is nothing to solve (see ``ALSCandidateGenerator.user_vector``)."""
    if history_weight < 0 or not np.isfinite(history_weight):
        raise ValueError(f"history_weight must be finite and >= 0, got {history_weight}")
    solved = [_fold_row(users, items, history, it, conf, user, history_weight) for it, conf, user in rows]
    out: list[np.ndarray | None] = [None] * len(solved)
    todo = [(i, r) for i, r in enumerate(solved) if r is not None]
    if not todo:
        return out
    sizes = np.fromiter((r[0].size for _, r in todo), np.int64, len(todo))
    matrix = sp.csr_matrix(
        (
            np.concatenate([r[1] for _, r in todo]),
            (np.repeat(np.arange(len(todo)), sizes), np.concatenate([r[0] for _, r in todo])),
        ),
        shape=(len(todo), len(items)),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    factors = np.asarray(model.recalculate_user(np.arange(len(todo)), matrix))
    for k, (i, _) in enumerate(todo):
        out[i] = factors[k].copy()
    return out


def _fold_row(
    users: IdVocab,
    items: IdVocab,
    history: UserHistory | None,
    item_ids: npt.ArrayLike,
    confidences: npt.ArrayLike,
    user_id: int | None,
    history_weight: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(item rows, confidences) a user's factors are solved from, or None (nothing to solve)."""
    idx = items.index(item_ids).ravel()
    conf = np.asarray(confidences, dtype=np.float32).ravel()
    if idx.shape != conf.shape:
        raise ValueError(f"item_ids ({idx.size}) and confidences ({conf.size}) differ in length")
    if not np.isfinite(conf).all():
        raise ValueError("confidences must be finite")
    keep = idx >= 0
    idx, conf = idx[keep], conf[keep]
    u = -1 if user_id is None else users.index_of(int(user_id))
    if u >= 0:
        if history is None:
            return None
        past, past_conf = history.row(u)
        if history_weight > 0:
            idx = np.concatenate([past, idx])
            conf = np.concatenate([past_conf * np.float32(history_weight), conf])
    return (idx, conf) if idx.size else None
