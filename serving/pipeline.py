"""The serving pipeline, free of BentoML: candidates (serving/candidates.py) -> online features ->
rank (serving/ranker_input.py) -> business rules -> slots (serving/slate.py) for carousels, and
audience ranking for pushes (serving/push.py). ``service.py`` only maps HTTP to it.

Every answer is a normal path: unknown users get a cold-start answer, users without consent a
non-personalized one, and a failing online store a degraded one (flagged, never a 5xx)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from serving import ranker_input
from serving.candidates import popular_ids, popularity_scores, request_candidates
from serving.catalog import US, Catalog
from serving.errors import BadRequestError
from serving.fold_in import UserVectors
from serving.impressions import ImpressionLog
from serving.push import PushRanking
from serving.schemas import (
    CarouselRequest,
    CarouselResponse,
)
from serving.slate import arrange, carousel_answer
from serving.sources import FeatureSource, Models

log = logging.getLogger(__name__)
NO_USER = -1  # asked of the feature store when no personal features may be used


@dataclass(frozen=True)
class PipelineConfig:
    challenger_share: float = 0.0
    variant_salt: str = "slotcast-ab-1"
    candidates_per_request: int = 200
    # Only the first-stage (ALS or popularity) top this many candidates of a stream-less request are
    # looked up in the feature store and scored by the ranker (training.evaluation's RankerPolicy:
    # n_candidates).
    rerank_shortlist: int = 50
    # A stream's candidates (its on-air products) are all reranked for a personal answer, as
    # training's candidate rows hold every on-air product; ``rerank_shortlist`` then limits
    # stream-less requests and fallback answers only.
    rerank_on_air: bool = True
    bought_recently_days: float = 90.0
    push_cap: int = 2
    push_cap_days: float = 7.0
    quiet_hours: tuple[int, int] = (22, 8)
    quiet_hours_tz: str = "UTC"  # the clock the quiet hours are read on (IANA name)
    push_batch_size: int = 65_536
    audience_sample: int = 5000


def variant_hash(user_id: int, salt: str) -> float:
    """A stable number in [0, 1) per user: the same user always lands in the same variant."""
    h = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


class Recommender(PushRanking):
    def __init__(
        self,
        models: Callable[[], tuple[Models, Models | None]],
        features: FeatureSource,
        catalog: Catalog,
        impressions: ImpressionLog | None,
        config: PipelineConfig,
        is_deleted: Callable[[int], bool] = lambda _u: False,
        on_fallback: Callable[[str], None] = lambda _r: None,
        deleted_mask: Callable[[np.ndarray], np.ndarray] | None = None,
        folded_users: Callable[[np.ndarray], np.ndarray] | None = None,
        user_vectors: UserVectors | None = None,
    ) -> None:
        """``user_vectors(models, users[, before_us])``: per user, their factors with the events
        they sent since training (before ``before_us``, when given) folded in (serving/fold_in.py),
        solved together, or None (then: a known user's trained factors, an unknown user's cold
        start); the carousel asks it for one user, push for many. ``folded_users(users)``: which of
        many users have such events kept (push audiences ask it first; without it push scores them
        by the trained factors, unknown users as unknown)."""
        self.models = models
        self.user_vectors = user_vectors
        self.folded_users = folded_users
        self.features = features
        self.catalog = catalog
        self.impressions = impressions
        self.config = config
        self.is_deleted = is_deleted
        # Which of many users are deleted, vectorised when the caller can (SlotcastApp.deleted_mask);
        # otherwise ``is_deleted`` per user. Push audiences ask it for every user, however many.
        self.deleted_mask = deleted_mask or (
            lambda users: np.fromiter((is_deleted(int(u)) for u in users), bool, len(users))
        )
        self.on_fallback = on_fallback
        # One generator for the exploration draws, seeded from the OS once: a fresh default_rng()
        # per request gathers entropy each time (~50-130 us). Generator calls hold the bit
        # generator's lock, so request threads may share it.
        self.rng = np.random.default_rng()

    def variant(self, user_id: int, has_challenger: bool) -> str:
        if has_challenger and variant_hash(user_id, self.config.variant_salt) < self.config.challenger_share:
            return "challenger"
        return "champion"

    def _pick(self, user_id: int) -> tuple[Models, str]:
        champion, challenger = self.models()
        v = self.variant(user_id, challenger is not None)
        return (challenger if v == "challenger" and challenger is not None else champion), v

    # --- carousel ---------------------------------------------------------------------------
    def carousel(self, req: CarouselRequest, now: datetime | None = None) -> CarouselResponse:
        now = req.at or now or datetime.now(UTC)
        now_us = int(now.timestamp() * US)
        models, variant = self._pick(req.user_id)
        exclude = np.asarray(req.exclude, np.int64)

        # The stream's products on air, the request's list, or none: ids None (serving/candidates.py).
        ids, pinned, on_air, attributes = request_candidates(self.catalog, req, now_us)

        fallback = None
        folded: np.ndarray | None = None
        # Deletion and consent first: a user the users table does not list may be deleted or have
        # withdrawn consent too (as cold_start, their purchases shaped the answer).
        if self.is_deleted(req.user_id):
            fallback = "deleted"
        elif not self.catalog.consent(req.user_id)[0]:
            fallback = "no_consent"
        elif not self.catalog.knows_user(req.user_id):
            fallback = "cold_start"

        before_us = now_us if req.at is not None else None  # a replay reads nothing from ``at`` on
        if fallback is None:  # the events sent since training, folded into the user's factors
            folded = self._folded(models, req.user_id, before_us)
        if ids is None:  # no stream, no list: the models choose from the whole catalogue
            n = self.config.candidates_per_request
            if fallback is None:
                ex = exclude.tolist() or None
                ids, _ = (
                    models.als.generate(req.user_id, n, exclude=ex)
                    if folded is None
                    else models.als.generate_for_vector(folded, n, exclude=ex)
                )
            if ids is None or len(ids) == 0:
                ids = self._popular_ids(models, n, None, exclude)
        ids = np.asarray(ids, np.int64)
        if len(exclude):  # only then copies: the stream's arrays are shared, read-only, by requests
            keep = ~np.isin(ids, exclude)
            ids = ids[keep]
            pinned = pinned[keep] if pinned is not None else None
            on_air = on_air[keep] if on_air is not None else None
            attributes = {k: v[keep] for k, v in attributes.items()} if attributes is not None else None
        if pinned is None:
            pinned = np.full(len(ids), np.nan)
        if on_air is None:
            on_air = np.ones(len(ids), bool)

        scores = np.full(len(ids), np.nan)
        if fallback is None and len(ids):
            scores = (
                models.als.score(np.full(len(ids), req.user_id, np.int64), ids)
                if folded is None
                else models.als.score_vector(folded, ids)
            ).astype(float)
            unknown = np.isnan(scores)
            if unknown.all():
                fallback = "cold_start"  # known to the catalogue, unknown to the model
            elif unknown.any():  # products the model does not know: its lowest score
                scores = np.where(unknown, scores[~unknown].min(), scores)
        if fallback is not None:
            # Overall popularity, not the user's segment's: a segment is derived from the user's own
            # history, which a user who opted out or was deleted must not have used for them.
            scores = self._popularity_scores(models, ids)
            self.on_fallback(fallback)

        degraded = False
        p_convert = None
        # How many candidates the ranker sees: a stream's on-air products all for a personal answer
        # (rerank_on_air, as in training), else the first stage's top ``rerank_shortlist``. A
        # fallback answer (no personal features) keeps the shortlist: its true value did not move
        # with the shortlist's length (benchmarks/results/serving.md), only its CPU did.
        limit = (
            len(ids)
            if req.stream_id is not None and self.config.rerank_on_air and fallback is None
            else self.config.rerank_shortlist
        )
        # The first stage's order (best first), shared by the shortlist and the ranker's als_rank.
        order = (
            self._first_stage_order(scores)
            if models.ranker is not None and (fallback is None or len(ids) > limit)
            else None
        )
        # The ranker's shortlist: the first stage's top ``limit`` (positions into ids), or None when
        # every candidate is reranked (no ranker, or no more candidates than the limit).
        split = self._shortlist(scores, order, limit) if models.ranker is not None else None
        short = None if split is None else split[0]
        ranked_ids = ids if short is None else ids[short]
        if models.ranker is not None and len(ids):
            feats = None
            # The store's float matrix when the source offers it (FeastFeatureSource): no DataFrame.
            as_matrix = getattr(self.features, "online_matrix", None)
            try:
                feats = (as_matrix or self.features.online)(
                    req.user_id if fallback is None else NO_USER,
                    ranked_ids.tolist(),
                    req.stream_id,
                    models.feature_service,
                    at=now,  # request-time features at the request's time, as training's label time
                )
            except Exception as exc:  # noqa: BLE001 - any store failure degrades, never fails the answer
                degraded = True
                self.on_fallback("online_store")
                # DEBUG: the feature source logs an outage at a bounded rate (serving/outage_log.py);
                # one WARNING per request was hundreds of lines a second with the store down.
                log.debug(
                    "online features failed (%s: %s); serving the model scores", type(exc).__name__, exc
                )
            if feats is not None:  # outside the try: a bug here must show, not pass as an outage
                names = list(models.ranker.feature_names)
                # Context over all candidates, then the shortlist's rows: its als_rank is 1..n as in
                # training (the shortlist is the top of the first stage's order).
                context = self._context(scores, fallback, on_air, pinned, order=order, rows=short)
                if ranker_input.POPULARITY_FEATURE in names:  # the baseline the ranker was boosted from
                    context[ranker_input.POPULARITY_FEATURE] = ranker_input.popularity_feature(
                        models.popularity, ranked_ids
                    )
                build = ranker_input.matrix_array if as_matrix is not None else self._feature_array
                X = build(feats, ranked_ids, context, names)
                p_convert = self._predict(models.ranker, X, names)
        if p_convert is None:
            p_convert = (
                _sigmoid(scores)
                if fallback is None
                else 0.5 * scores / max(float(np.max(scores, initial=0.0)), 1e-9)
            )
        elif split is not None:
            p_convert = self._below_shortlist(p_convert, *split)

        pf = attributes if attributes is not None else self.catalog.product_frame(ids)
        # The bought-recently and repurchase rules read the user's purchases: not for a user who
        # opted out or was deleted, whose answer is the one an anonymous viewer gets.
        private = fallback in ("no_consent", "deleted")
        bought, due, cons = self.catalog.purchase_flags(
            NO_USER if private else req.user_id,
            ids, now_us, self.config.bought_recently_days, pf["repurchase_cycle_days"], before_us,
        )  # fmt: skip
        # models.policy's reason vocabulary: "ranked" for model scores, "fallback" for popularity,
        # "unranked" for a personal answer's candidates below the ranker's shortlist.
        reason = np.full(len(ids), "ranked" if fallback is None else "fallback", dtype=object)
        shortlisted = np.ones(len(ids), bool)
        if short is not None:
            shortlisted[:] = False
            shortlisted[short] = True
            if fallback is None:
                reason[~shortlisted] = "unranked"
        cand = {
            "product_id": ids, "score": scores, "p_convert": p_convert, "price": pf["price"],
            "margin": pf["margin"], "category": pf["category"], "stock": pf["stock"],
            # Not launched yet at the request's time: not offered, as if off air.
            "on_air": on_air & (pf["launch_us"] <= now_us),
            "pinned_slot": pinned, "bought_recently": bought, "consumable_due": due, "is_consumable": cons,
            "reason": reason, "shortlisted": shortlisted,
        }  # fmt: skip
        slate = arrange(models.policy, cand, req.k, self.rng)  # serving/slate.py
        return carousel_answer(slate, req, now, models, variant, fallback, degraded, self.impressions)

    def _folded(self, models: Models, user_id: int, before_us: int | None) -> np.ndarray | None:
        if self.user_vectors is None:
            return None
        return self.user_vectors(models, np.asarray([user_id], np.int64), before_us)[0]

    # The fallbacks' popularity, in serving.candidates (push calls _popular_ids through the class).
    _popular_ids = staticmethod(popular_ids)
    _popularity_scores = staticmethod(popularity_scores)

    def _shortlist(
        self, scores: np.ndarray, order: np.ndarray | None, limit: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Positions of the first stage's top ``limit`` and of the rest, each best first (ties by
        position), or None when the shortlist is every candidate. ``order``: the caller's
        ``_first_stage_order(scores)`` (None: computed here)."""
        if len(scores) <= limit:
            return None
        if order is None:
            order = self._first_stage_order(scores)
        return order[:limit], order[limit:]

    # The ranker's input, in serving.ranker_input (tests call them through the class).
    _first_stage_order = staticmethod(ranker_input.first_stage_order)
    _below_shortlist = staticmethod(ranker_input.below_shortlist)
    _context = staticmethod(ranker_input.context)
    _predict = staticmethod(ranker_input.predict)
    _feature_matrix = staticmethod(ranker_input.feature_matrix)
    _feature_array = staticmethod(ranker_input.feature_array)


__all__ = ["BadRequestError", "PipelineConfig", "Recommender", "variant_hash"]
