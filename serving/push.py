"""Community push ranking: the push half of the Recommender (audiences and products), kept apart
from the carousel. A mixin: it uses the Recommender's catalogue, config, impression log, model
pair and popularity helpers."""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from serving.catalog import US, Catalog
from serving.errors import NotFoundError
from serving.fold_in import UserVectors
from serving.impressions import ImpressionLog
from serving.push_targets import campaign_products, push_targets
from serving.schemas import (
    PushAudience,
    PushProduct,
    PushRequest,
    PushResponse,
)
from serving.sources import Models


class PushRanking:
    # Provided by serving.pipeline.Recommender.
    catalog: Catalog
    config: Any  # PipelineConfig (defined beside Recommender)
    impressions: ImpressionLog | None
    is_deleted: Callable[[int], bool]
    deleted_mask: Callable[[np.ndarray], np.ndarray]
    models: Callable[[], tuple[Models, Models | None]]
    user_vectors: UserVectors | None
    folded_users: Callable[[np.ndarray], np.ndarray] | None

    if TYPE_CHECKING:

        def _popular_ids(
            self, models: Models, n: int, segment: str | None, exclude: np.ndarray
        ) -> np.ndarray: ...

    def push(self, req: PushRequest, now: datetime | None = None) -> PushResponse:
        """The push as judged at ``req.at`` (else ``now``, else the clock): which products are on
        offer, the frequency cap's window, the quiet hours. Given ``at`` (a replay), nothing sent at
        or after it is read: not the pushes sent, not the events folded into users' factors."""
        now = req.at or now or datetime.now(UTC)
        before_us = int(now.timestamp() * US) if req.at is not None else None
        models, _ = self.models()
        audience = self.catalog.audience(req.segment, req.community_id, before_us)
        if audience is None:
            field = "community_id" if req.community_id is not None else "segment"
            raise NotFoundError(
                f"unknown {field} {req.community_id if req.community_id is not None else req.segment}",
                field=field,
            )
        request_id = uuid.uuid4().hex
        # Out of stock or not launched yet: never pushed (the carousel and the products direction
        # leave them out too). Before, a user whose best campaign product was out of stock was
        # given it, and a product launching next week was pushed today.
        users_direction = req.product_id is not None or req.campaign_products is not None
        products = campaign_products(self.catalog, req, now) if users_direction else None
        # Who the push may reach: the same users in both directions, and the audience's size in the
        # answer counts them only (it counted deleted and opted-out members too).
        since = int((now - timedelta(days=self.config.push_cap_days)).timestamp() * US)
        users, suppressed = push_targets(
            self.catalog, self.deleted_mask, audience, req.segment is not None, since, self.config.push_cap,
            before_us,
        )  # fmt: skip
        if products is None:
            return self._push_products(req, models, users, suppressed, request_id, now, before_us)
        personal = np.asarray(self.catalog.personalization_consent(users), bool)
        best_p, best_pid = self._consented_scores(models, users, personal, products, before_us)
        pf = self.catalog.product_frame(products)
        value = np.nan_to_num(pf["price"], nan=1.0) * np.nan_to_num(pf["margin"], nan=1.0)
        ev = best_p * value[best_pid]
        top = np.argsort(-ev, kind="stable")[: req.max_users]
        out_users = PushAudience(
            user_id=users[top].tolist(), product_id=products[best_pid[top]].tolist(),
            p_convert=best_p[top].tolist(), expected_value=ev[top].tolist(), personalized=personal[top].tolist(),
        )  # fmt: skip
        send_after = self._quiet_until(now)
        if self.impressions is not None:
            self.impressions.write(
                {
                    "kind": "push",
                    "direction": "users",
                    "request_id": request_id,
                    "ts": now.isoformat(),
                    "audience": len(users),
                    "users": out_users.user_id,
                    "items": out_users.product_id,
                    "propensities": [1.0] * len(out_users.user_id),
                    "variant": "champion",
                    "model_version": models.version,
                    "replay": req.at is not None,  # judged as of ``at``: nobody was pushed
                }
            )
        return PushResponse(
            request_id=request_id,
            direction="users",
            users=out_users,
            audience_size=len(users),
            suppressed=suppressed,
            send_after=send_after,
            model_version=models.version,
        )

    def _consented_scores(
        self,
        models: Models,
        users: np.ndarray,
        personal: np.ndarray,
        products: np.ndarray,
        before_us: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``score_audience`` for the users with personalization consent; a user without it is not
        ranked by their own profile (their ALS factors are not read) but as the average consenting
        member of this audience: the product with the best mean p_convert over those users, at that
        mean. With no consenting user at all, the calibration's rate at a zero score."""
        best_p = np.zeros(len(users))
        best_j = np.zeros(len(users), np.int64)
        mean_p = np.zeros(len(products))
        if personal.any():
            best_p[personal], best_j[personal] = self.score_audience(
                models, users[personal], products, mean_p, before_us
            )
        if not personal.all():
            if not personal.any():
                mean_p[:] = np.nan_to_num(models.push_probability(np.zeros((1, len(products))))[0], nan=0.0)
            j = int(np.argmax(mean_p))
            best_p[~personal], best_j[~personal] = mean_p[j], j
        return best_p, best_j

    def score_audience(
        self,
        models: Models,
        users: np.ndarray,
        products: np.ndarray,
        mean_out: np.ndarray | None = None,
        before_us: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """p_convert of each user's best product among ``products``, in vectorised batches.

        The ALS affinity goes through the bundle's push calibration (a logistic map fitted on the
        push log in training): the order of users is the model's, the level is P(purchase | pushed).
        A user the model has no score for (it does not hold them, and nothing they sent since
        training was folded in: ``_score_folded``) gets the rate at which such users bought what
        they were pushed (``Models.push_cold_rate``, measured in training; 0 from a bundle without
        it) and the product the scored users like best on average. Before, they got 0 and the
        first product. ``mean_out`` (one per product), when given, receives the mean p_convert of
        each product over ``users``. ``before_us``: only the events sent strictly before it are
        folded in (a replay)."""
        n = len(users)
        best_p = np.zeros(n)
        best_j = np.zeros(n, np.int64)
        cold_rate = models.push_cold_rate
        cold = np.zeros(n, bool)
        scored_sum = np.zeros(len(products))
        factors = _factors(models.als, products, self.catalog)
        bs = max(1, self.config.push_batch_size // max(1, len(products)))
        if factors is not None:  # one (batch x factors) @ (factors x products) product per batch
            bs = max(bs, 65_536)
        for start in range(0, n, bs):
            u = users[start : start + bs]
            if factors is not None:
                s = _factor_scores(models.als, factors, u)
            else:
                s = np.asarray(
                    models.als.score(np.repeat(u, len(products)), np.tile(products, len(u))), float
                )
                s = s.reshape(len(u), len(products))
            self._score_folded(
                models, u, s, lambda v: _vector_scores(models.als, v, products, factors), before_us
            )
            raw = models.push_probability(s)
            c = np.isnan(raw).all(axis=1)  # no score for any product: a cold user
            p = np.nan_to_num(raw, nan=0.0)
            if cold_rate is not None:
                p[c] = cold_rate
            cold[start : start + bs] = c
            scored_sum += p[~c].sum(axis=0)
            if mean_out is not None and n:
                mean_out += p.sum(axis=0) / n
            j = np.argmax(p, axis=1)
            best_j[start : start + bs] = j
            best_p[start : start + bs] = p[np.arange(len(u)), j]
        if cold.any() and not cold.all():
            best_j[cold] = int(np.argmax(scored_sum))
        return best_p, best_j

    def _push_products(
        self,
        req: PushRequest,
        models: Models,
        targets: np.ndarray,
        suppressed: dict[str, int],
        request_id: str,
        now: datetime,
        before_us: int | None = None,
    ) -> PushResponse:
        # In stock and launched: a product launching later is not offered before (as on air).
        offered = self.catalog.offered(int(now.timestamp() * US))
        cands = self._popular_ids(models, 500, req.segment, np.empty(0, np.int64))
        cands = cands[np.isin(cands, offered)] if len(cands) else offered[:500]
        rng = np.random.default_rng(0)
        # The mean affinity of the members the push may reach (``targets``: never a deleted one,
        # nor one without marketing consent) ranks the products; a member without personalization
        # consent is not profiled, not even into an average. Before, every member not deleted
        # counted, those who will never receive the push included.
        members = targets[np.asarray(self.catalog.personalization_consent(targets), bool)]
        sample = (
            members
            if len(members) <= self.config.audience_sample
            else rng.choice(members, self.config.audience_sample, replace=False)
        )
        if len(sample) and len(cands):
            s = np.asarray(
                models.als.score(np.repeat(sample, len(cands)), np.tile(cands, len(sample))), float
            ).reshape(len(sample), len(cands))
            self._score_folded(models, sample, s, lambda v: _vector_scores(models.als, v, cands), before_us)
            raw = models.push_probability(s)
            cold_share = float(np.isnan(raw).all(axis=1).mean())
            p = np.nanmean(raw, axis=0) if np.any(~np.isnan(raw)) else np.zeros(len(cands))
        else:
            p, cold_share = np.zeros(len(cands)), 0.0
        p = np.nan_to_num(p, nan=0.0)
        pf = self.catalog.product_frame(cands)
        value = np.nan_to_num(pf["price"], nan=1.0) * np.nan_to_num(pf["margin"], nan=1.0)
        # The scored members order the products (with none, popularity does); the level is the
        # whole audience's: members the model has no score for at its cold rate. Before, they were
        # left out of it, so an audience of mostly new members looked as keen as its regulars.
        top = np.argsort(-(p * value), kind="stable")[: req.k]
        if models.push_cold_rate is not None and cold_share:
            p = (1.0 - cold_share) * p + cold_share * models.push_cold_rate
        ev = p * value
        prods = [
            PushProduct(product_id=int(cands[i]), p_convert=float(p[i]), expected_value=float(ev[i]))
            for i in top
        ]
        if self.impressions is not None:
            self.impressions.write(
                {
                    "kind": "push",
                    "direction": "products",
                    "request_id": request_id,
                    "ts": now.isoformat(),
                    "audience": len(targets),
                    "segment": req.segment,
                    "community_id": req.community_id,
                    "items": [p.product_id for p in prods],
                    "propensities": [1.0] * len(prods),
                    "variant": "champion",
                    "model_version": models.version,
                    "replay": req.at is not None,  # judged as of ``at``: nobody was pushed
                }
            )
        return PushResponse(
            request_id=request_id,
            direction="products",
            products=prods,
            audience_size=len(targets),
            suppressed=suppressed,
            model_version=models.version,
        )

    def _score_folded(
        self,
        models: Models,
        users: np.ndarray,
        s: np.ndarray,
        score: Callable[[np.ndarray], np.ndarray],
        before_us: int | None = None,
    ) -> None:
        """Score in place the rows of ``s`` (users x products) of users with events sent since
        training folded into their factors (serving/fold_in.py), by ``score(those factors)``, as
        the carousel scores them: a user the model does not hold (their row all NaN, scored as
        unknown (0) before), and one it holds whose events since are newer than its history.

        Only a user whose profile may be read: with personalization consent and not deleted. The
        callers pass no other, and it is checked again here for the few with events kept: a
        consent withdrawn through another worker leaves their events in this worker's store."""
        if self.user_vectors is None or self.folded_users is None or not len(users):
            return
        rows = np.flatnonzero(np.asarray(self.folded_users(users), bool))
        if len(rows):
            may = np.asarray(self.catalog.personalization_consent(users[rows]), bool)
            rows = rows[may & ~np.asarray(self.deleted_mask(users[rows]), bool)]
        vecs = self.user_vectors(models, users[rows], before_us) if len(rows) else []  # solved together
        got = [(r, v) for r, v in zip(rows, vecs, strict=True) if v is not None]
        if got:
            s[[r for r, _ in got]] = score(np.stack([v for _, v in got]))

    def _quiet_until(self, now: datetime) -> datetime | None:
        """When quiet hours end (UTC), if ``now`` falls in them on the audience's clock
        (``quiet_hours_tz``: a brand in Shanghai means 22:00-08:00 there, not in UTC)."""
        start, end = self.config.quiet_hours
        zone = ZoneInfo(self.config.quiet_hours_tz)
        local = now.astimezone(zone)
        h = local.hour
        quiet = (start <= h or h < end) if start > end else (start <= h < end)
        if not quiet or start == end:
            return None
        day = local.date() if h < end else local.date() + timedelta(days=1)
        return datetime.combine(day, dtime(hour=end), tzinfo=zone).astimezone(UTC)


def _factors(als: Any, products: np.ndarray, catalog: Catalog | None = None) -> np.ndarray | None:
    """The item factors of ``products`` when the model exposes its factor matrices and vocabularies
    (models.als does); None means: use the pairwise ``score``.

    A product the model has no factors for (not in its vocabulary, or all zero: ALS leaves an item
    nobody interacted with at zero) takes the mean factors of the products of its category that it
    has factors for (of all of them when its category has none). Its push audience was ranked by
    a score of 0 for every user, that is by user id: on the demo world's truth, pushing one of its
    873 such products to 100 users of a segment, the users so chosen bought it 0.010 times per
    push, a random 100 0.0105 times, those chosen by the category's mean factors 0.033 times
    (benchmarks/bench_push_cold.py). A product the catalogue does not list either gets NaN (no
    score), as does every cold one without a catalogue."""
    try:
        items, item_f = als.items, als.item_factors
        cols = items.index(products)
    except AttributeError:
        return None
    item_f = np.asarray(item_f, np.float32)
    f = item_f[np.where(cols >= 0, cols, 0)].copy()
    cold = (cols < 0) | ~np.any(f != 0, axis=1)
    listed = catalog.product_rows(products) >= 0 if catalog is not None else np.zeros(len(products), bool)
    f[cold & ~listed] = np.nan  # no factors and no category: no score
    if catalog is not None and (cold & listed).any():
        by_category, overall = _category_means(als, item_f, catalog)
        cats = catalog.product_frame(products[cold & listed])["category"]
        f[cold & listed] = np.stack([by_category.get(c, overall) for c in cats])
    return f


_MEANS: weakref.WeakKeyDictionary[Any, tuple[dict[str, np.ndarray], np.ndarray]] = weakref.WeakKeyDictionary()


def _category_means(
    als: Any, item_f: np.ndarray, catalog: Catalog
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per category, the mean factors of the model's items that have some; and over all of them.
    Once per model (a reload brings a new one)."""
    with contextlib.suppress(TypeError):  # a model that cannot be weakly referenced: not cached
        if (got := _MEANS.get(als)) is not None:
            return got
    warm = np.any(item_f != 0, axis=1)
    cats = np.asarray(catalog.product_frame(np.asarray(als.items.ids, np.int64))["category"], object)
    overall = item_f[warm].mean(axis=0) if warm.any() else np.zeros(item_f.shape[1], np.float32)
    got = ({str(c): item_f[warm & (cats == c)].mean(axis=0) for c in np.unique(cats[warm])}, overall)
    with contextlib.suppress(TypeError):
        _MEANS[als] = got
    return got


def _factor_scores(als: Any, item_f: np.ndarray, users: np.ndarray) -> np.ndarray:
    rows = als.users.index(users)
    uf = np.asarray(als.user_factors, np.float32)[np.where(rows >= 0, rows, 0)]
    s = (uf @ item_f.T).astype(float)
    s[rows < 0] = np.nan
    return s


def _vector_scores(
    als: Any, vectors: np.ndarray, products: np.ndarray, item_f: np.ndarray | None = None
) -> np.ndarray:
    """(len(vectors), len(products)) scores of users given by their factors: by the products'
    factors ``item_f`` (``_factors``: a known user's scores come from them too) when given, else by
    the model's ``score_vector`` (NaN: a product it does not know)."""
    if item_f is not None:
        return (np.asarray(vectors, np.float32) @ item_f.T).astype(float)
    return np.stack([np.asarray(als.score_vector(v, products), float) for v in vectors])
