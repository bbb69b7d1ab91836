"""Time-split replay on events whose right answer is known, and loading logged tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluation.logs import carousel_log, impressions_from_service, push_log
from training.evaluation.policies import PopularPolicy, RandomPolicy, ScoreFnPolicy, rank
from training.evaluation.replay import replay, time_split

N_USERS, N_ITEMS = 200, 40


def _events(seed: int = 0) -> pd.DataFrame:
    """Even users buy from items 0-9, odd users from 10-19; items 20-39 are noise clicks by anyone."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for day in range(20):
        for u in range(N_USERS):
            if rng.random() < 0.5:
                base = 0 if u % 2 == 0 else 10
                rows.append(
                    (t0 + pd.Timedelta(days=day, minutes=u), u, "purchase", base + rng.integers(0, 10))
                )
            if rng.random() < 0.2:
                rows.append(
                    (t0 + pd.Timedelta(days=day, minutes=u + 1), u, "product_click", 20 + rng.integers(0, 20))
                )
    return pd.DataFrame(rows, columns=["ts", "user_id", "type", "product_id"])


def _oracle(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    liked = np.where((users[:, None] % 2 == 0), items < 10, (items >= 10) & (items < 20))
    return liked.astype(float) + 0.001 * items  # deterministic tie-break


def test_replay_orders_policies_by_what_users_really_liked() -> None:
    train, test = time_split(_events(), 0.25)
    assert train["ts"].max() < test["ts"].min()
    popular = PopularPolicy.from_events(train)
    res = {r.policy: r for r in replay([ScoreFnPolicy("oracle", _oracle), popular, RandomPolicy()], train, test, k=10,
                                       catalog=np.arange(N_ITEMS), relevant_types=("purchase",), n_boot=200)}  # fmt: skip
    oracle, pop, rnd = res["oracle"], res["popular"], res["random"]
    # the oracle's top 10 is exactly the user's 10 liked items: every purchase is a hit
    assert oracle.means["hit_rate"] == pytest.approx(1.0)
    assert oracle.means["recall"] > 0.7
    assert oracle.means["recall"] > pop.means["recall"] > rnd.means["recall"]
    assert oracle.means["ndcg"] > pop.means["ndcg"] > rnd.means["ndcg"]
    assert oracle.means["coverage"] == pytest.approx(20 / 40)
    assert pop.means["coverage"] == pytest.approx(10 / 40)  # the same list for everyone
    lo, hi = oracle.ci["recall"]
    assert lo <= oracle.means["recall"] <= hi and hi - lo < 0.1
    assert set(oracle.per_segment) <= {"new", "light", "heavy"}
    assert sum(s["users"] for s in oracle.per_segment.values()) == oracle.n_users
    # popular recommends the most-bought items, which are less novel than random picks
    assert pop.means["novelty"] < rnd.means["novelty"]


def test_replay_refuses_a_test_window_without_interactions() -> None:
    ev = _events()
    with pytest.raises(ValueError, match="no product_click/add_to_cart/purchase events"):
        replay([RandomPolicy()], ev, ev.iloc[:0], k=5)


def test_rank_skips_padding_and_takes_the_best() -> None:
    cands = np.array([[5, 6, 7, -1], [1, -1, -1, -1]])
    out = rank(ScoreFnPolicy("id", lambda u, p: p.astype(float)), np.array([0, 1]), cands, 3)
    np.testing.assert_array_equal(out, [[7, 6, 5], [1, -1, -1]])


def _ts(minutes: int) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=minutes)


def test_carousel_log_builds_requests_and_on_air_candidates() -> None:
    imp = pd.DataFrame(
        {
            "ts": [_ts(1)] * 2 + [_ts(30)] * 2 + [_ts(31)],
            "request_id": ["a", "a", "b", "b", "c"],
            "user_id": [1, 1, 2, 2, 3],
            "stream_id": [7, 7, 7, 7, 7],
            "product_id": [10, 11, 12, 10, 10],
            "slot": [0, 1, 0, 1, 0],
            "policy": ["log"] * 5,
            "propensity": [0.9, 0.9, 0.05, 0.05, None],
            "clicked": [True, False, False, False, False],
            "purchased": [False, True, False, False, False],
        }
    )
    sp = pd.DataFrame(
        {
            "stream_id": [7, 7, 7],
            "product_id": [10, 11, 12],
            "on_air_from": [_ts(0), _ts(0), _ts(20)],
            "on_air_to": [None, _ts(20), None],
        }
    )
    lr = carousel_log(imp, sp)
    assert lr.dropped == 1 and lr.log.n_requests == 2
    np.testing.assert_array_equal(lr.log.reward, [0, 1, 0, 0])
    # request a at minute 1: 10 and 11 on air; request b at minute 30: 10 and 12
    np.testing.assert_array_equal(lr.candidates, [[10, 11], [10, 12]])
    assert lr.requests["user_id"].tolist() == [1, 2]


def test_push_log_candidates_are_the_campaign_products() -> None:
    pushes = pd.DataFrame(
        {
            "ts": [_ts(0)] * 3 + [_ts(60)],
            "push_id": ["p1", "p2", "p3", "p4"],
            "user_id": [1, 2, 3, 1],
            "product_id": [10, 11, 10, 12],
            "community_id": [5, 5, 5, 6],
            "policy": ["push"] * 4,
            "propensity": [0.9, 0.05, 0.9, 1.0],
            "opened": [True, True, False, True],
            "clicked": [False, True, False, True],
            "purchased": [False, True, False, False],
        }
    )
    lr = push_log(pushes)
    assert lr.log.n_requests == 4 and (lr.log.slot == 0).all()
    assert sorted(lr.candidates[0][lr.candidates[0] >= 0]) == [10, 11]
    assert lr.candidates[3][lr.candidates[3] >= 0].tolist() == [12]


def test_service_impression_records_get_rewards_from_events() -> None:
    records = [
        {"kind": "carousel", "request_id": "r1", "ts": _ts(0).isoformat(), "user_id": 1, "stream_id": 7,
         "items": [10, 11], "slots": [0, 1], "propensities": [0.5, 0.5], "variant": "champion"},
        {"kind": "push", "request_id": "r2", "ts": _ts(0).isoformat(), "users": [1], "items": [10]},
    ]  # fmt: skip
    events = pd.DataFrame(
        {
            "ts": [_ts(5), _ts(60 * 30)],
            "user_id": [1, 1],
            "type": ["purchase", "purchase"],
            "product_id": [11, 10],
        }
    )
    imp = impressions_from_service(records, events, window_hours=24)
    assert imp["purchased"].tolist() == [False, True]  # the buy of 10 came after the 24 h window
    assert carousel_log(imp).log.n_requests == 1


class _FakeALS:
    """ALS that likes low product ids; user 99 is unknown (NaN)."""

    def score(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        s = -np.asarray(products, dtype=float) + 0 * np.asarray(users)
        return np.where(np.asarray(users) == 99, np.nan, s)


class _FakeRanker:
    feature_names = ["f", "als_rank"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X["f"].to_numpy() / 100.0  # p_convert = product_id / 100: the reverse of ALS


def test_ranker_policy_reranks_only_the_als_shortlist() -> None:
    from training.evaluation.policies import ALSPolicy, RankerPolicy

    seen: list[int] = []

    def features(users, products, als_score, als_rank):  # type: ignore[no-untyped-def]
        seen.append(len(users))
        assert np.all(np.diff(als_rank[:3]) == 1)  # ranks 1..n within a row
        return pd.DataFrame({"f": products.astype(float), "als_rank": als_rank})

    als = ALSPolicy(_FakeALS(), PopularPolicy(np.array([1, 2]), np.array([5.0, 9.0])))
    policy = RankerPolicy(als, _FakeRanker(), features, n_candidates=3)
    cands = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    out = rank(policy, np.array([0, 99]), cands, 5)
    # ALS shortlist {1,2,3} re-ranked by p (3 best), then the rest in ALS order
    np.testing.assert_array_equal(out[0], [3, 2, 1, 4, 5])
    assert seen == [6]  # features for 3 shortlisted pairs per row only
    # the unknown user's shortlist comes from popularity (2, 1, then 3 by position), re-ranked by the ranker
    np.testing.assert_array_equal(out[1], [3, 2, 1, 4, 5])


def test_ranker_policy_without_a_shortlist_reranks_every_candidate() -> None:
    """``n_candidates=None`` (what ``slotcast evaluate`` uses): every logged candidate reaches the
    ranker, as serving reranks every on-air product of a stream."""
    from training.evaluation.policies import ALSPolicy, RankerPolicy

    seen: list[int] = []

    def features(users, products, als_score, als_rank):  # type: ignore[no-untyped-def]
        seen.append(len(users))
        return pd.DataFrame({"f": products.astype(float), "als_rank": als_rank})

    als = ALSPolicy(_FakeALS(), PopularPolicy(np.array([1, 2]), np.array([5.0, 9.0])))
    policy = RankerPolicy(als, _FakeRanker(), features, n_candidates=None)
    cands = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    out = rank(policy, np.array([0, 99]), cands, 5)
    np.testing.assert_array_equal(out, [[6, 5, 4, 3, 2], [6, 5, 4, 3, 2]])  # the ranker's order, all six
    assert seen == [12]
