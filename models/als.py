"""Implicit-feedback ALS as the candidate generator: the one module that bridges ``implicit``.

It owns the user and product vocabularies, so callers speak external int64 ids only. Unknown users
get empty candidates and unknown pairs NaN scores (the caller falls back), never an exception.
Its files are written and checked in ``models/als_persistence.py``; folding users in (their factors
from newer events, the item factors fixed) is ``models/als_fold_in.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.als_fold_in import FoldInUser, fold_in
from models.als_history import UserHistory
from models.als_implicit import ALSConfig, check_blas_threads, fit_implicit
from models.als_persistence import FILES as ALS_FILES
from models.als_persistence import SavedALS, load_als, save_als
from models.errors import ModelFitError
from models.vocab import IdVocab, ids_within_int64

log = logging.getLogger(__name__)

EMPTY_IDS = np.empty(0, dtype=np.int64)
EMPTY_SCORES = np.empty(0, dtype=np.float32)
# Rows scored at a time by ``score`` so that a million pairs never gathers a million factor rows.
_SCORE_CHUNK = 65_536


class ALSCandidateGenerator:
    """Candidate generation from implicit ALS: ``fit`` / ``generate`` / ``score`` / ``save`` / ``load``."""

    name = "als"

    def __init__(self, config: ALSConfig | None = None) -> None:
        self.config = config or ALSConfig()
        self._model: Any = None
        self.users = IdVocab([])
        self.items = IdVocab([])
        self.history: UserHistory | None = None  # the rows fitted on (config.keep_history)
        self.fit_timings: dict[str, float] = {}

    # ----- fitting ---------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return self._model is not None and self._model.user_factors is not None

    def fit(
        self, user_items: sp.csr_matrix, users: IdVocab, items: IdVocab, history_until_us: int | None = None
    ) -> ALSCandidateGenerator:
        """Factorise a users x items confidence matrix (rows follow ``users``, columns ``items``).

        With ``config.keep_history`` the matrix is kept as the users' history (``user_vector``
        adds newer events to it); ``history_until_us``: the time its confidences were computed at
        (epoch microseconds), after which events are new to the model.
        Raises ModelFitError for an empty or non-finite matrix and for NaN factors.
        """
        t0 = time.perf_counter()
        if not sp.issparse(user_items):
            raise ModelFitError(f"user_items must be a scipy sparse matrix, got {type(user_items).__name__}")
        shape = (len(users), len(items))
        if user_items.shape != shape:
            raise ModelFitError(
                f"user_items has shape {user_items.shape} but the vocabularies give {shape} (users, items)"
            )
        matrix = sp.csr_matrix(user_items, dtype=np.float32)  # no copy when it already is one
        if (matrix.data == 0).any():  # explicit zeros: drop them from a copy, never the caller's
            matrix = matrix.copy()
            matrix.eliminate_zeros()
        if matrix.nnz == 0:
            raise ModelFitError(f"cannot fit ALS on an empty matrix (shape {shape}, no interactions)")
        if not np.isfinite(matrix.data).all():
            raise ModelFitError("user_items holds NaN or infinite confidences")
        check_blas_threads()
        t1 = time.perf_counter()
        model = fit_implicit(self.config, matrix)
        t2 = time.perf_counter()
        for name in ("user_factors", "item_factors"):
            factors = getattr(model, name)
            if factors is None or not np.isfinite(factors).all():
                raise ModelFitError(
                    f"ALS produced non-finite {name} (regularization={self.config.regularization}, "
                    f"alpha={self.config.alpha}); lower alpha or raise regularization"
                )
        self._model, self.users, self.items = model, users, items  # IdVocab is immutable
        self.history = UserHistory(matrix, history_until_us) if self.config.keep_history else None
        # seconds spent in implicit's fit and in this wrapper around it (logged, and benchmarked)
        self.fit_timings = {"implicit_fit_s": t2 - t1, "wrapper_s": (t1 - t0) + (time.perf_counter() - t2)}
        log.info(
            "ALS fitted: %d users x %d items, %d interactions, %d factors",
            shape[0],
            shape[1],
            matrix.nnz,
            self.config.factors,
        )
        return self

    # ----- serving ---------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ModelFitError("the ALS model is not fitted or loaded")

    @property
    def user_factors(self) -> np.ndarray:
        self._require_fitted()
        return self._model.user_factors  # type: ignore[no-any-return]

    @property
    def item_factors(self) -> np.ndarray:
        self._require_fitted()
        return self._model.item_factors  # type: ignore[no-any-return]

    def forget(self, user_ids: npt.ArrayLike) -> int:
        """Zero the factors of these users (a deletion): nothing learnt from them stays in memory and
        any score for them is 0. Unknown ids are skipped; returns how many rows were zeroed."""
        u = self.users.index(user_ids).ravel()  # not np.ravel first: [2**63 + 5, 7] is float64
        u = u[u >= 0]
        if u.size:
            self.user_factors[u] = 0.0
            if self.history is not None:
                self.history.zero_rows(u)
        return int(u.size)

    def drop_users(self, user_ids: npt.ArrayLike) -> int:
        """Remove these users from the model, their id and their factor row: no trace of them is
        kept (a saved model cannot tell they were there), and from now on they are unknown users.
        The item factors are untouched. Returns how many of them the model held."""
        u = self.users.index(user_ids).ravel()
        u = np.unique(u[u >= 0])
        if u.size:
            keep = np.ones(len(self.users), dtype=bool)
            keep[u] = False
            self._model.user_factors = np.ascontiguousarray(self.user_factors[keep])
            if hasattr(self._model, "_user_norms"):
                self._model._user_norms = None  # implicit's cache of the old rows' norms
            self.users = IdVocab(self.users.ids[keep])
            if self.history is not None:
                self.history = self.history.keep_rows(keep)
        return int(u.size)

    def generate(
        self,
        user_id: int,
        n: int,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` product ids and scores for one user, best first.

        ``candidates`` restricts the products (e.g. those on air); candidates unknown to the model
        are dropped here (``score`` gives them NaN). ``exclude`` removes products. An unknown user
        gets two empty arrays: the caller falls back to popularity; so does a user whose factors are
        all zero (no events in the training matrix, or ``forget``).
        """
        self._require_fitted()
        u = self.users.index_of(int(user_id))
        # All-zero factors (no events in training, or forgotten) score every product 0: the "top n"
        # would be the first products of the vocabulary, so such a user falls back like an unknown one.
        if u < 0 or n <= 0 or not self.user_factors[u].any():
            return EMPTY_IDS.copy(), EMPTY_SCORES.copy()
        return self.generate_for_vector(self.user_factors[u], n, candidates, exclude)

    def generate_for_vector(
        self,
        vector: np.ndarray,
        n: int,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``generate`` for a user given by their factors (``user_vector``) instead of an id."""
        self._require_fitted()
        if n <= 0:
            return EMPTY_IDS.copy(), EMPTY_SCORES.copy()
        vec = np.asarray(vector, dtype=self.item_factors.dtype)
        ex = None if exclude is None else self.items.index(exclude).ravel()
        if candidates is None:
            # whole catalogue: score every row in place (no gather), then drop the excluded
            scores = self.item_factors @ vec
            idx = np.arange(len(self.items), dtype=np.int64)
            if ex is not None and (ex >= 0).any():
                keep = np.ones(len(self.items), dtype=bool)
                keep[ex[ex >= 0]] = False
                idx, scores = idx[keep], scores[keep]
        else:
            idx = self.items.index(np.unique(ids_within_int64(candidates)))
            idx = idx[idx >= 0]
            if ex is not None and idx.size:
                idx = idx[~np.isin(idx, ex[ex >= 0])]
            scores = self.item_factors[idx] @ vec
        if idx.size == 0:
            return EMPTY_IDS.copy(), EMPTY_SCORES.copy()
        top = _top_n(scores, n)
        return self.items.ids[idx[top]].copy(), scores[top].astype(np.float32)

    def generate_many(
        self,
        user_ids: npt.ArrayLike,
        n: int,
        exclude_user_items: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batched ``generate`` over the whole catalogue, for building training candidates.

        Returns (len(user_ids), n) arrays of product ids (-1 padding) and scores (NaN padding);
        unknown users get a row of padding. ``exclude_user_items`` (one row per user id, columns in
        the item vocabulary) removes e.g. already-seen products.
        """
        self._require_fitted()
        u = self.users.index(user_ids).ravel()
        n = max(int(min(n, len(self.items))), 0)  # n <= 0: empty rows, as popularity gives
        out_ids = np.full((u.size, n), -1, dtype=np.int64)
        out_scores = np.full((u.size, n), np.nan, dtype=np.float32)
        known = np.flatnonzero(u >= 0)
        if known.size == 0 or n == 0:
            return out_ids, out_scores
        if exclude_user_items is not None:
            if exclude_user_items.shape != (u.size, len(self.items)):
                raise ValueError(
                    f"exclude_user_items has shape {exclude_user_items.shape}, "
                    f"expected {(u.size, len(self.items))}"
                )
            filt = sp.csr_matrix(exclude_user_items)[known]
            ids, scores = self._model.recommend(u[known], filt, N=n, filter_already_liked_items=True)
        else:
            ids, scores = self._model.recommend(u[known], None, N=n, filter_already_liked_items=False)
        ids = np.asarray(ids).reshape(known.size, -1)
        scores = np.asarray(scores, dtype=np.float32).reshape(known.size, -1)
        pad = (ids < 0) | (scores <= -np.finfo(np.float32).max / 2)
        mapped = np.where(pad, -1, self.items.ids[np.clip(ids, 0, None)])
        out_ids[known, : ids.shape[1]] = mapped
        out_scores[known, : ids.shape[1]] = np.where(pad, np.nan, scores)
        return out_ids, out_scores

    def score(self, user_ids: npt.ArrayLike, product_ids: npt.ArrayLike) -> np.ndarray:
        """Elementwise ALS scores (broadcast: one user against many products works); NaN where the
        user or the product is unknown."""
        self._require_fitted()
        users = self.users.index(user_ids)  # ids outside int64: unknown, not OverflowError
        items = self.items.index(product_ids)
        one_user = users.ndim <= 1 and items.ndim == 1 and users.size in (1, items.size) and users.size > 0
        if one_user and (users.size == 1 or bool((users == users.flat[0]).all())):
            # One user against many products (a carousel): one matrix-vector product, ~10x
            # cheaper than gathering the user's row once per product.
            u0 = int(users.flat[0])
            out1 = np.full(items.size, np.nan, dtype=np.float32)
            if u0 >= 0:
                ok1 = items >= 0
                out1[ok1] = self.item_factors[items[ok1]] @ self.user_factors[u0]
            return out1
        u, i = np.broadcast_arrays(users, items)
        shape = u.shape
        u, i = u.ravel(), i.ravel()
        out = np.full(u.size, np.nan, dtype=np.float32)
        ok = np.flatnonzero((u >= 0) & (i >= 0))
        uf, itf = self.user_factors, self.item_factors
        for start in range(0, ok.size, _SCORE_CHUNK):
            sel = ok[start : start + _SCORE_CHUNK]
            out[sel] = np.einsum("ij,ij->i", uf[u[sel]], itf[i[sel]])
        return out.reshape(shape)

    def score_matrix(self, user_ids: npt.ArrayLike, product_ids: npt.ArrayLike) -> np.ndarray:
        """(len(user_ids), len(product_ids)) scores by one matrix product, NaN rows/columns for
        unknown users/products. For audiences (many users x a few products): 1M x 20 in well under
        a second, where ``score`` on 20M broadcast pairs gathers 20M factor rows."""
        self._require_fitted()
        u = self.users.index(user_ids).ravel()
        i = self.items.index(product_ids).ravel()
        out = np.full((u.size, i.size), np.nan, dtype=np.float32)
        ku, ki = np.flatnonzero(u >= 0), np.flatnonzero(i >= 0)
        if ku.size and ki.size:
            item_block = self.item_factors[i[ki]].T
            for start in range(0, ku.size, _SCORE_CHUNK * 4):
                rows = ku[start : start + _SCORE_CHUNK * 4]
                out[np.ix_(rows, ki)] = self.user_factors[u[rows]] @ item_block
        return out

    def user_vector(
        self,
        item_ids: npt.ArrayLike,
        confidences: npt.ArrayLike,
        user_id: int | None = None,
        history_weight: float = 1.0,
    ) -> np.ndarray | None:
        """Factors for a user from interactions, the item factors fixed (implicit's
        ``recalculate_user``: exact least squares, the model's alpha and regularization), without
        changing the model, so it is safe while other threads read it; score with
        ``score_vector`` / ``generate_for_vector``.

        For a user the model does not hold (a new user, one who gave consent again), from these
        interactions alone. For a user it holds (``user_id``), from their training row plus these
        (events newer than the model), the training row's confidences times ``history_weight``
        (below 1: what they did lately counts for more than their past): None when the model kept
        no history (their trained factors stand). None too when no interaction names a product the
        model knows."""
        return self.user_vectors([(item_ids, confidences, user_id)], history_weight)[0]

    def user_vectors(
        self, users: Sequence[FoldInUser], history_weight: float = 1.0
    ) -> list[np.ndarray | None]:
        """``user_vector`` for many users, ``(item_ids, confidences, user_id)`` each, in one
        ``recalculate_user`` call (a push audience with thousands of users to fold in)."""
        self._require_fitted()
        return fold_in(self._model, self.users, self.items, self.history, users, history_weight)

    def score_vector(self, vector: np.ndarray, product_ids: npt.ArrayLike) -> np.ndarray:
        """``score`` for a user given by their factors: NaN where a product is unknown."""
        self._require_fitted()
        items = self.items.index(product_ids).ravel()
        out = np.full(items.size, np.nan, dtype=np.float32)
        ok = items >= 0
        out[ok] = self.item_factors[items[ok]] @ np.asarray(vector, dtype=self.item_factors.dtype)
        return out

    # ----- persistence (models/als_persistence.py) --------------------------------------------
    FILES = ALS_FILES  # and history.npz when kept

    def save(self, directory: str | Path) -> None:
        self._require_fitted()
        save_als(directory, SavedALS(self.config, self._model, self.users, self.items, self.history))

    @classmethod
    def load(cls, directory: str | Path) -> ALSCandidateGenerator:
        saved = load_als(directory)
        out = cls(saved.config)
        out._model, out.users, out.items, out.history = saved.model, saved.users, saved.items, saved.history
        return out


def _top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest scores, best first (argpartition, then sort the head)."""
    n = min(n, scores.size)
    head = np.argpartition(-scores, n - 1)[:n] if n < scores.size else np.arange(scores.size)
    return head[np.argsort(-scores[head], kind="stable")]
