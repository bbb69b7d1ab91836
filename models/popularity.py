"""Popularity and segment popularity: the cold-start and non-personalised fallback.

Scores are summed event weights per product (the caller chooses weights and any time decay), so
the model is a ranked list per segment plus the global one. Each answer carries a reason string.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from models._io import read_npz
from models.errors import IncompatibleBundleError, ModelFitError
from models.vocab import IdVocab, as_int64, ids_within_int64, int64_ids

REASON_GLOBAL = "popular"
REASON_SEGMENT = "segment_popular"
# The ranker's feature holding ``relative_log_score``: training adds it, serving and evaluation give
# it from the bundle's model, and the ranker is boosted from it (RankerConfig.base_feature).
RANKER_FEATURE = "popularity_score"


class PopularityModel:
    """Global and per-segment product popularity; also a candidate generator (``generate``)."""

    name = "popularity"

    def __init__(self) -> None:
        self.product_ids = np.empty(0, dtype=np.int64)  # sorted by global score, best first
        self.scores = np.empty(0, dtype=np.float64)
        self.segments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._user_vocab = IdVocab([])
        self._user_segment = np.empty(0, dtype=np.int64)  # index into self._segment_names
        self._segment_names: list[str] = []
        # Per segment (None: global) its products sorted by id with their scores, built on first
        # ``score``: a carousel's fallback scores its ~100 candidates by one searchsorted.
        self._by_id: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def is_fitted(self) -> bool:
        return self.product_ids.size > 0

    def fit(
        self,
        product_ids: npt.ArrayLike,
        weights: npt.ArrayLike | None = None,
        user_ids: npt.ArrayLike | None = None,
        user_segments: Mapping[int, str] | pd.Series | None = None,
    ) -> PopularityModel:
        """Fit from one row per event: ``product_ids`` with ``weights`` (default 1).

        With ``user_ids`` (aligned with the events) and ``user_segments`` (user id -> segment label)
        it also ranks products per segment, and ``generate`` serves a known user their segment's list.
        """
        pid = int64_ids(product_ids, "product ids").ravel()  # a product beyond int64: ValueError
        w = np.ones(pid.size) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if pid.size != w.size:
            raise ModelFitError(f"product_ids ({pid.size}) and weights ({w.size}) differ in length")
        if pid.size == 0:
            raise ModelFitError("cannot fit popularity on zero events")
        if not np.isfinite(w).all():
            raise ModelFitError("popularity weights hold NaN or infinite values")
        self.product_ids, self.scores = _ranked(pid, w)
        self.segments = {}
        self._by_id = {}
        # a refit without segments must not keep (nor save) the previous fit's users and labels
        self._user_vocab, self._user_segment, self._segment_names = IdVocab([]), np.empty(0, np.int64), []
        if user_segments is None:
            return self
        seg = pd.Series(user_segments, dtype=object).dropna().astype(str)
        seg.index = pd.Index(int64_ids(seg.index.to_numpy(), "user ids"))
        codes, names = pd.factorize(seg.to_numpy(), sort=True)
        self._segment_names = [str(x) for x in names]
        self._user_vocab = IdVocab(seg.index.to_numpy())
        self._user_segment = codes.astype(np.int64)
        if user_ids is None:
            return self
        uidx = self._user_vocab.index(user_ids).ravel()  # a user beyond int64: in no segment
        if uidx.size != pid.size:
            raise ModelFitError(f"user_ids ({uidx.size}) and product_ids ({pid.size}) differ in length")
        event_seg = np.where(uidx >= 0, self._user_segment[np.clip(uidx, 0, None)], -1)
        for code, name in enumerate(self._segment_names):
            mask = event_seg == code
            if mask.any():
                self.segments[name] = _ranked(pid[mask], w[mask])
        return self

    @classmethod
    def from_user_items(
        cls,
        user_items: sp.csr_matrix,
        users: IdVocab,
        items: IdVocab,
        user_segments: Mapping[int, str] | pd.Series | None = None,
    ) -> PopularityModel:
        """Fit from the same confidence matrix ALS uses (rows ``users``, columns ``items``)."""
        coo = sp.coo_matrix(user_items)
        return cls().fit(items.ids[coo.col], coo.data, users.ids[coo.row], user_segments)

    @property
    def user_ids(self) -> np.ndarray:
        """The users whose segment the model holds (read-only)."""
        return self._user_vocab.ids

    def drop_users(self, user_ids: npt.ArrayLike) -> int:
        """Remove these users' id and segment label (a deletion): the model cannot tell they were
        there. The rankings are sums over everyone's events and stay. Returns how many it held."""
        u = self._user_vocab.index(user_ids).ravel()
        u = np.unique(u[u >= 0])
        if u.size:
            keep = np.ones(len(self._user_vocab), dtype=bool)
            keep[u] = False
            self._user_vocab = IdVocab(self._user_vocab.ids[keep])
            self._user_segment = self._user_segment[keep]
        return int(u.size)

    # ----- answers ---------------------------------------------------------------------------
    def segment_of(self, user_id: int) -> str | None:
        """The segment label the model was fitted with for this user, or None."""
        i = self._user_vocab.index_of(int(user_id))
        return None if i < 0 else self._segment_names[int(self._user_segment[i])]

    def top(
        self,
        n: int,
        segment: str | None = None,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular product ids and their scores (of the segment when it is known)."""
        ids, scores, _ = self.fallback(n, segment, candidates, exclude)
        return ids, scores

    def fallback(
        self,
        n: int,
        segment: str | None = None,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """Like ``top`` plus the reason: ``segment_popular`` or ``popular``.

        Within ``candidates``, products the model never saw come last with score 0 so that a
        carousel of brand-new products still gets an order (stable: the order given).
        """
        if segment is not None and segment in self.segments:
            ids, scores = self.segments[segment]
            reason = REASON_SEGMENT
        else:
            ids, scores = self.product_ids, self.scores
            reason = REASON_GLOBAL
        if candidates is not None:
            cand = pd.unique(ids_within_int64(candidates))  # beyond int64: no product, not even unseen
            keep = np.isin(ids, cand)
            unseen = cand[~np.isin(cand, ids)]
            ids = np.concatenate([ids[keep], unseen])
            scores = np.concatenate([scores[keep], np.zeros(unseen.size)])
        if exclude is not None:
            keep = ~np.isin(ids, ids_within_int64(exclude))
            ids, scores = ids[keep], scores[keep]
        n = max(int(n), 0)
        return ids[:n].copy(), scores[:n].copy(), reason

    def score(self, product_ids: npt.ArrayLike, segment: str | None = None) -> np.ndarray:
        """Each product's score in the segment's list (the global one when the segment is not
        known), 0 for a product the model never saw: ``fallback(len, segment, candidates=ids)``'s
        scores put back in the order of ``product_ids``, without its sort and set operations."""
        key = segment if segment is not None and segment in self.segments else None
        table = self._by_id.get(key)
        if table is None:
            ids, scores = self.segments[key] if key is not None else (self.product_ids, self.scores)
            order = np.argsort(ids, kind="stable")
            table = self._by_id[key] = (ids[order], scores[order].astype(np.float64))
        ids, scores = table
        q, outside = as_int64(product_ids)
        q = q.ravel()
        if not ids.size:
            return np.zeros(q.size)
        pos = np.searchsorted(ids, q)
        pos[pos == ids.size] = 0
        hit = ids[pos] == q
        if outside is not None:  # 0 stands for them in ``q``
            hit &= ~outside.ravel()
        return np.where(hit, scores[pos], 0.0)

    def relative_log_score(self, product_ids: npt.ArrayLike) -> np.ndarray:
        """log(1 + score / mean score of the products seen), 0 for a product never seen.

        Scale-free: a model fitted on twice the days gives about the same values, so a ranker
        that learned on a history-only fit can score with the bundle's longer one."""
        s = self.score(product_ids)
        mean = float(self.scores.mean()) if self.scores.size else 0.0
        if not mean > 0:
            return np.zeros(s.shape)
        return np.log1p(np.clip(s, 0.0, None) / mean)

    def generate(
        self,
        user_id: int,
        n: int,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The candidate-generator verb: the user's segment list, or the global one."""
        return self.top(n, self.segment_of(user_id), candidates, exclude)

    def generate_many(self, user_ids: npt.ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched ``generate``: (len(user_ids), n) product ids (-1 padding) and scores (NaN padding)."""
        uidx = self._user_vocab.index(user_ids).ravel()
        n = max(int(n), 0)
        out_ids = np.full((uidx.size, n), -1, dtype=np.int64)
        out_scores = np.full((uidx.size, n), np.nan, dtype=np.float64)
        codes = np.full(uidx.size, -1, dtype=np.int64)
        known = uidx >= 0  # none when the model holds no segments (its _user_segment is empty)
        codes[known] = self._user_segment[uidx[known]]
        for code in np.unique(codes):
            segment = self._segment_names[code] if code >= 0 else None
            ids, scores = self.top(n, segment)
            rows = codes == code
            out_ids[rows, : ids.size] = ids
            out_scores[rows, : ids.size] = scores
        return out_ids, out_scores

    # ----- persistence -----------------------------------------------------------------------
    FILES = ("popularity.npz",)

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        names = list(self.segments)
        seg_ids = [self.segments[s][0] for s in names]
        seg_scores = [self.segments[s][1] for s in names]
        np.savez(
            d / "popularity.npz",
            product_ids=self.product_ids,
            scores=self.scores,
            segment_names=np.asarray(self._segment_names, dtype=str),
            ranked_segments=np.asarray(names, dtype=str),
            segment_offsets=np.cumsum([0] + [a.size for a in seg_ids]).astype(np.int64),
            segment_product_ids=np.concatenate(seg_ids) if seg_ids else np.empty(0, np.int64),
            segment_scores=np.concatenate(seg_scores) if seg_scores else np.empty(0),
            user_ids=self._user_vocab.ids,
            user_segment=self._user_segment,
        )

    @classmethod
    def load(cls, directory: str | Path) -> PopularityModel:
        path = Path(directory) / "popularity.npz"
        a = read_npz(
            path,
            required=(
                "product_ids", "scores", "segment_names", "ranked_segments", "segment_offsets",
                "segment_product_ids", "segment_scores", "user_ids", "user_segment",
            ),
        )  # fmt: skip
        out = cls()
        try:
            out.product_ids = a["product_ids"].astype(np.int64)
            out.scores = a["scores"].astype(np.float64)
            out._segment_names = [str(s) for s in a["segment_names"]]
            off = a["segment_offsets"]
            for j, name in enumerate(a["ranked_segments"]):
                sl = slice(int(off[j]), int(off[j + 1]))
                out.segments[str(name)] = (a["segment_product_ids"][sl], a["segment_scores"][sl])
            out._user_vocab = IdVocab(a["user_ids"])
            out._user_segment = a["user_segment"].astype(np.int64)
        except (ValueError, IndexError) as exc:
            raise IncompatibleBundleError(f"{path} is inconsistent: {exc}") from exc
        if out.product_ids.size != out.scores.size or len(out._user_vocab) != out._user_segment.size:
            raise IncompatibleBundleError(f"{path} is inconsistent: array lengths disagree")
        if out._user_segment.size and out._user_segment.max() >= len(out._segment_names):
            raise IncompatibleBundleError(f"{path} is inconsistent: a segment code has no name")
        return out


def _ranked(pid: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed weight per product, best first; ties broken by product id for determinism."""
    uniq, inv = np.unique(pid, return_inverse=True)
    total = np.bincount(inv, weights=w, minlength=uniq.size)
    order = np.lexsort((uniq, -total))
    return uniq[order], total[order]
