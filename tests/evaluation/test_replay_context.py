"""Replay gives a ranker the on-air context the held-out window knows (issue #6: with on_air constant,
the ranker's strongest feature said nothing and replay ranked ALS + ranker far below ALS alone)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.evaluation.policies import ALSPolicy, PopularPolicy, RankerPolicy
from training.evaluation.ranker_features import context_feature_fn, watched_on_air, with_watched_on_air
from training.evaluation.run import _replay_policies

T0 = pd.Timestamp("2025-01-10 20:00", tz="UTC")


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": [T0, T0 + pd.Timedelta(hours=5), T0],
            "user_id": [1, 2, 3],
            "type": ["stream_view", "stream_view", "product_click"],
            "product_id": [np.nan, np.nan, 10.0],
            "stream_id": [7.0, 7.0, 7.0],
            "watch_seconds": [600.0, 60.0, np.nan],
        }
    )


def _stream_products() -> pd.DataFrame:
    seg = pd.Timedelta(minutes=30)
    return pd.DataFrame(
        {
            "stream_id": [7, 7, 7, 8],
            "product_id": [10, 11, 12, 13],
            "on_air_from": [T0 - seg, T0 + pd.Timedelta(minutes=5), T0 + seg, T0],
            "on_air_to": [T0 + pd.Timedelta(minutes=5), T0 + seg, T0 + 2 * seg, T0 + seg],
            "pinned_slot": [np.nan] * 4,
        }
    )


def test_watched_on_air_is_what_was_on_air_while_the_user_watched() -> None:
    pairs = watched_on_air(_events(), _stream_products())
    # user 1 watched stream 7 from 20:00 for 10 minutes: products 10 (until 20:05) and 11 (from 20:05);
    # user 2 came after the stream; 12 came on after user 1 left; 13 was on another stream
    assert sorted(map(tuple, pairs.to_numpy())) == [(1, 10), (1, 11)]


def test_rankers_get_the_context_in_replay_and_others_are_untouched() -> None:
    class Als:
        def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
            return np.zeros(np.broadcast_shapes(np.shape(users), np.shape(items)))

    class OnAirRanker:
        feature_names = ["on_air"]

        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return X["on_air"].to_numpy(np.float64)

    popular = PopularPolicy(np.array([10]), np.array([1.0]))
    ranker = RankerPolicy(ALSPolicy(Als(), popular), OnAirRanker(), context_feature_fn())
    catalog = np.array([[10, 11, 12, 13]])
    # without the context every product is "on air": the ranker cannot tell them apart
    assert len(set(ranker.scores(np.array([1]), catalog)[0])) == 1
    replayed = _replay_policies({"popular": popular, "r": ranker}, _events(), _stream_products())
    assert replayed[0] is popular
    scores = replayed[1].scores(np.array([1]), catalog)[0]
    assert scores[0] == scores[1] > scores[2] == scores[3]
    # stream-less data: nothing is known about on air, so nothing changes
    assert _replay_policies({"r": ranker}, _events(), pd.DataFrame())[0] is ranker


def test_with_watched_on_air_keeps_the_other_features() -> None:
    fn = with_watched_on_air(context_feature_fn(), pd.DataFrame({"user_id": [1], "product_id": [11]}))
    X = fn(np.array([1, 1, 2]), np.array([11, 12, 11]), np.array([0.5, 0.2, 0.1]), np.array([1.0, 2.0, 1.0]))
    assert X["on_air"].tolist() == [True, False, False]
    assert X["als_score"].tolist() == [0.5, 0.2, 0.1]
