"""The gate's per-bundle scoring (training.promote.score_bundle) on a checkerboard whose answer is
known: users of group A convert on A products only. Each bundle must be judged by its OWN ALS
(als_score / als_rank recomputed), whatever the shared candidate frame carries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import ALSCandidateGenerator, ALSConfig, Bundle, LightGBMRanker, PopularityModel, RankerConfig
from tests.models.conftest import Checkerboard, make_checkerboard
from training.promote import score_bundle

K = 10


@pytest.fixture(scope="module")
def board() -> Checkerboard:
    return make_checkerboard(seed=5)


@pytest.fixture(scope="module")
def als(board: Checkerboard) -> ALSCandidateGenerator:
    cfg = ALSConfig(factors=2, iterations=15, num_threads=1)
    return ALSCandidateGenerator(cfg).fit(board.matrix, board.users, board.items)


def frame(board: Checkerboard, als: ALSCandidateGenerator | None) -> pd.DataFrame:
    """One query per user over the whole catalogue; label 1 on the user's own group. With ``als``
    the columns are that model's scores and ranks, without it they are the reverse of the truth."""
    users, items = board.users.ids, board.items.ids
    f = pd.DataFrame(
        {
            "query_id": np.repeat(np.arange(users.size), items.size),
            "user_id": np.repeat(users, items.size),
            "product_id": np.tile(items, users.size),
        }
    )
    own = [
        board.item_group[int(p)] == board.user_group[int(u)]
        for u, p in zip(f["user_id"], f["product_id"], strict=True)
    ]
    f["label"] = np.asarray(own, dtype=np.int64)
    if als is not None:
        f["als_score"] = als.score(f["user_id"].to_numpy(), f["product_id"].to_numpy())
    else:
        f["als_score"] = -f["label"].astype(np.float64)  # the wrong model's opinion
    f["als_rank"] = f.groupby("query_id")["als_score"].rank(ascending=False, method="first")
    return f


def bundle(board: Checkerboard, als: ALSCandidateGenerator, ranker: LightGBMRanker | None) -> Bundle:
    pop = PopularityModel.from_user_items(board.matrix, board.users, board.items)
    return Bundle.create(als, pop, ranker, "ranker_v1")


@pytest.mark.parametrize("features", [["als_score", "als_rank"], ["als_rank"]])
def test_a_bundle_is_scored_with_its_own_als(
    board: Checkerboard, als: ALSCandidateGenerator, features: list[str]
) -> None:
    clean = frame(board, als)
    cfg = RankerConfig(n_estimators=20, min_child_samples=5, early_stopping_rounds=None, num_threads=1)
    ranker = LightGBMRanker(cfg).fit(clean[features], clean["label"])
    b = bundle(board, als, ranker)
    good = score_bundle(b, clean, K)
    assert good.size == len(board.users) and good.mean() >= 0.99  # the board's answer is found
    # the shared frame's ALS columns came from another model: they must not leak into this score
    np.testing.assert_array_equal(score_bundle(b, frame(board, None), K), good)


def test_a_bundle_without_a_ranker_is_scored_by_its_als(
    board: Checkerboard, als: ALSCandidateGenerator
) -> None:
    nd = score_bundle(bundle(board, als, None), frame(board, None), K)
    assert nd.size == len(board.users) and nd.mean() >= 0.99
