"""The ranker reranks only the first stage's shortlist (as training.evaluation's RankerPolicy does);
the other candidates keep the first stage's order below it and reach a slot only by a rule."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.policy import SlotPolicy, SlotPolicyConfig
from serving.pipeline import PipelineConfig, Recommender
from serving.schemas import CarouselRequest
from serving.sources import Models

SHORT = 20


class CountingRanker:
    """Scores the reverse of the first stage (als_rank 1 lowest), so a reranked slate differs from
    the ALS one, and records every row it was asked about."""

    feature_names = ["als_score", "als_rank", "f0"]

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(X[self.feature_names].to_numpy(float))

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(X.copy())
        return 0.2 + 0.7 * X[:, 1] / (X[:, 1].max() + 1.0)


class CountingFeatures:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.asked: list[list[int]] = []

    def ping(self) -> bool:
        return bool(self.inner.ping())

    def online(
        self,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None = None,
    ) -> Any:
        self.asked.append(list(product_ids))
        return self.inner.online(user_id, product_ids, stream_id, service, at)


def _recommender(
    world: dict[str, Any], policy: SlotPolicy, shortlist: int = SHORT, on_air: bool = False
) -> tuple[Any, ...]:
    """The tests below shortlist a stream's candidates too (``on_air=False``, RERANK_ON_AIR=false);
    by default serving reranks every on-air product (tests at the end of this file)."""
    ranker = CountingRanker()
    base = world["models"]["champion"]
    models = Models(**{**base.__dict__, "ranker": ranker, "policy": policy})
    feats = CountingFeatures(world["features"])
    rec = Recommender(
        lambda: (models, None), feats, world["catalog"], None,
        PipelineConfig(quiet_hours=(0, 0), rerank_shortlist=shortlist, rerank_on_air=on_air),
    )  # fmt: skip
    return rec, ranker, feats, models


def _als_top(models: Models, user: int, ids: np.ndarray, n: int) -> set[int]:
    s = np.asarray(models.als.score(np.full(len(ids), user, np.int64), ids), float)
    return set(ids[np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")[:n]].tolist())


@pytest.mark.parametrize("user", [1, 2, 8, 13])
def test_the_ranker_sees_only_the_als_shortlist(world, user: int) -> None:
    rec, ranker, feats, models = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=0.0)))
    out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=8))
    assert out.personalized and not out.degraded
    ids = world["catalog"].on_air[0].product_ids
    assert len(ids) > SHORT  # else there is nothing to leave out
    assert len(ranker.calls) == 1 and ranker.calls[0].shape[0] == SHORT
    assert len(feats.asked) == 1 and set(feats.asked[0]) == _als_top(models, user, ids, SHORT)
    # The shortlist's context as training builds it: ALS ranks 1..n.
    assert sorted(ranker.calls[0][:, 1].tolist()) == list(range(1, SHORT + 1))


def test_all_candidates_reranked_when_the_shortlist_covers_them(world) -> None:
    rec, ranker, feats, _ = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=0.0)), shortlist=500)
    rec.carousel(CarouselRequest(user_id=2, stream_id=0, k=8))
    assert ranker.calls[0].shape[0] == len(world["catalog"].on_air[0].product_ids)


@pytest.mark.parametrize("user", [1, 2, 8, 13, 20, 27])
def test_unshortlisted_products_never_outrank_shortlisted_ones_except_by_a_rule(world, user: int) -> None:
    # No category cap: with more eligible shortlisted products than slots, every slot that no rule
    # (pinned, exploration) placed holds a shortlisted product.
    rec, _, _, models = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=0.0, per_category_cap=None)))
    ids = world["catalog"].on_air[0].product_ids
    top = _als_top(models, user, ids, SHORT)
    out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=8))
    assert len(out.slots) == 8
    for s in out.slots:
        if s.reason in ("pinned", "explore"):
            continue
        assert s.product_id in top and s.reason != "unranked", s
    # Exploration on every request and the cap on: among the slots no rule placed, the shortlist
    # comes first, and a stand-in p_convert is below every reranked one.
    rec, _, _, _ = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=1.0, per_category_cap=2)))
    for _ in range(20):
        out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=12))
        free = [s for s in out.slots if s.reason not in ("pinned", "explore")]
        inside = [s.product_id in top for s in free]
        assert inside == sorted(inside, reverse=True), [(s.product_id, s.reason) for s in free]
        assert all((s.reason == "unranked") == (s.product_id not in top) for s in free)
        p_in = [s.p_convert for s in free if s.product_id in top]
        p_out = [s.p_convert for s in free if s.product_id not in top]
        if p_in and p_out:
            assert max(p_out) < min(p_in)


def test_a_store_outage_keeps_the_shortlist_first(world) -> None:
    class Down:
        def online(self, *_a: Any, **_k: Any) -> Any:
            raise ConnectionError("store down")

    rec, _, _, models = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=0.0, per_category_cap=None)))
    rec.features = Down()
    out = rec.carousel(CarouselRequest(user_id=2, stream_id=0, k=8))
    assert out.degraded
    top = _als_top(models, 2, world["catalog"].on_air[0].product_ids, SHORT)
    assert all(s.product_id in top for s in out.slots if s.reason != "pinned")


def test_the_policy_puts_the_shortlist_before_a_pricier_stand_in() -> None:
    # Product 9 is outside the shortlist with a stand-in p_convert but a price that would make its
    # expected value the best: it still comes after both shortlisted products, unless explored.
    cols = {
        "product_id": np.array([1, 2, 9]), "score": np.array([3.0, 2.0, 1.0]),
        "p_convert": np.array([0.3, 0.2, 0.05]), "price": np.array([10.0, 10.0, 1000.0]),
        "shortlisted": np.array([True, True, False]),
        "reason": np.array(["ranked", "ranked", "unranked"], dtype=object),
    }  # fmt: skip
    slate = SlotPolicy(SlotPolicyConfig(epsilon=0.0)).arrange_columns(cols, 3)
    assert slate.product_ids.tolist() == [1, 2, 9]
    assert slate.columns["reason"].tolist() == ["ranked", "ranked", "unranked"]
    without = {k: v for k, v in cols.items() if k != "shortlisted"}
    assert SlotPolicy(SlotPolicyConfig(epsilon=0.0)).arrange_columns(without, 3).product_ids[0] == 9


@pytest.mark.parametrize("user", [1, 2, 8])
def test_by_default_every_on_air_product_is_reranked_and_a_streamless_list_is_shortlisted(
    world, user: int
) -> None:
    """Training's candidate rows hold every on-air product of the stream; serving reranks them all
    for a personal answer (RERANK_ON_AIR). The shortlist still limits a fallback answer and a
    stream-less request's candidate list."""
    rec, ranker, feats, models = _recommender(world, SlotPolicy(SlotPolicyConfig(epsilon=0.0)), on_air=True)
    assert PipelineConfig().rerank_on_air  # the default
    ids = world["catalog"].on_air[0].product_ids
    assert len(ids) > SHORT
    out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=8))
    assert out.personalized and all(s.reason != "unranked" for s in out.slots)
    assert ranker.calls[-1].shape[0] == len(ids) and set(feats.asked[-1]) == set(ids.tolist())
    assert sorted(ranker.calls[-1][:, 1].tolist()) == list(range(1, len(ids) + 1))  # als_rank 1..n

    # A fallback answer (here an unknown user: cold start) keeps the shortlist.
    cold = rec.carousel(CarouselRequest(user_id=10**9, stream_id=0, k=8))
    assert cold.fallback == "cold_start" and ranker.calls[-1].shape[0] == SHORT

    listed = ids[::-1].tolist()  # the same products as a stream-less shop's candidate list
    rec.carousel(CarouselRequest(user_id=user, candidates=listed, k=8))
    assert ranker.calls[-1].shape[0] == SHORT
    assert set(feats.asked[-1]) == _als_top(models, user, np.asarray(listed), SHORT)
