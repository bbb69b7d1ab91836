"""One evaluation, one point-in-time feature lookup: the shared cache gives the scores the per-call
lookup gave, a model under two names is scored once, and the replay shortlist is the stable sort's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.evaluation.policies import ALSPolicy, PopularPolicy, RankerPolicy, _top_stable
from training.evaluation.ranker_features import PointInTimeFeatures, historical_feature_fn
from training.evaluation.run import EvalConfig, evaluate, read_tables


class _Reader:
    """A point-in-time reader whose features depend on the as-of time (a wrong as-of changes them)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def historical(self, entity_df: pd.DataFrame, service: str = "ranker_v1") -> pd.DataFrame:
        self.calls.append(len(entity_df))
        ts = pd.to_datetime(entity_df["event_timestamp"], utc=True)
        day = (ts - pd.Timestamp("2020-01-01", tz="UTC")).dt.days.to_numpy(np.float64)
        out = entity_df.reset_index(drop=True).copy()
        u, p = out["user_id"].to_numpy(np.float64), out["product_id"].to_numpy(np.float64)
        out["f_user"] = (u * 7919 % 101) / 101 + day / 1e4
        out["f_pair"] = np.sin(u * 0.37 + p * 1.31) + day / 1e3
        return out


class _Als:
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = np.broadcast_arrays(np.asarray(users, np.float64), np.asarray(items, np.float64))
        return np.cos(u * 0.11 + i * 0.53)


class _Ranker:
    feature_names = ["f_user", "f_pair", "als_score", "als_rank", "on_air"]

    def __init__(self) -> None:
        self.rows = 0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.rows += len(X)
        z = (
            X["f_pair"]
            + 0.5 * X["f_user"]
            + 0.2 * X["als_score"]
            - 0.01 * X["als_rank"].fillna(0)
            + X["on_air"]
        )
        return 1.0 / (1.0 + np.exp(-z.to_numpy(np.float64)))


AS_OF = pd.Timestamp("2026-01-20", tz="UTC")


def test_cache_returns_the_direct_lookup_rows_in_order() -> None:
    reader = _Reader()
    direct = historical_feature_fn(reader, "ranker_v1", AS_OF)
    cache = PointInTimeFeatures(_Reader(), "ranker_v1", AS_OF)
    rng = np.random.default_rng(0)
    users, products = rng.integers(0, 30, 500), rng.integers(0, 40, 500)  # with repeats
    cache.prefetch(users[:300], products[:300])
    als, ranks = rng.random(500), np.arange(500, dtype=np.float64)
    got = cache(users, products, als, ranks)  # 200 rows partly outside the prefetch: one more call
    want = direct(users, products, als, ranks)
    for col in ("user_id", "product_id", "f_user", "f_pair", "als_score", "als_rank", "on_air"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    assert cache.lookups == 2 and cache.reader.calls[1] < 200  # only the pairs not yet cached
    cache(users, products, als, ranks)
    assert cache.lookups == 2  # everything cached now


def test_top_stable_is_the_stable_argsort_head() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        m, width, n = (int(x) for x in rng.integers(1, 30, 3))
        v = rng.integers(0, 4, (m, width)).astype(np.float64)  # many ties
        v[rng.random((m, width)) < 0.2] = -np.inf
        np.testing.assert_array_equal(_top_stable(v, n), np.argsort(-v, axis=1, kind="stable")[:, :n])


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    from pipelines.simulator.config import SimConfig
    from pipelines.simulator.generate import generate

    d = Path(tmp_path_factory.mktemp("world"))
    generate(SimConfig(users=800, products=120, days=5, seed=4, epsilon=0.3, categories=4), d)
    return read_tables(d)


def _ranker(features: object, ranker: _Ranker) -> RankerPolicy:
    return RankerPolicy(ALSPolicy(_Als(), PopularPolicy(np.array([0]), np.array([1.0]))), ranker, features,
                        n_candidates=20)  # fmt: skip


@pytest.mark.slow
def test_one_lookup_per_evaluation_gives_the_same_report(tables: dict[str, pd.DataFrame]) -> None:
    cfg = EvalConfig(k=5, reward="clicked", n_boot=60, max_users=300, max_requests=2_000)
    cut = tables["events"]["ts"].min() + (tables["events"]["ts"].max() - tables["events"]["ts"].min()) * 0.8
    # before: one reader call per policy call, each name its own policy
    old_reader = _Reader()
    old = {
        name: _ranker(historical_feature_fn(old_reader, "ranker_v1", cut), _Ranker()) for name in ("a", "b")
    }
    before = evaluate(tables, old, cfg, comparisons=[("a", "b")], reward_policies=["a"])
    # now: one cache per evaluation, one policy under both names
    new_reader, ranker = _Reader(), _Ranker()
    shared = _ranker(PointInTimeFeatures(new_reader, "ranker_v1", cut), ranker)
    after = evaluate(tables, {"a": shared, "b": shared}, cfg, comparisons=[("a", "b")], reward_policies=["a"])
    assert len(new_reader.calls) == 1 < len(old_reader.calls)
    assert before["replay"] == after["replay"]
    assert set(after["ope"]) == {"carousel", "push"}
    for kind, block in before["ope"].items():
        assert block["estimates"] == after["ope"][kind]["estimates"]
        assert block["comparisons"] == after["ope"][kind]["comparisons"]
        assert block["estimates"]["a"]["ips"]["value"] > 0  # a real comparison: clicks were logged
    assert any("a and b are the same model" in n for n in after["notes"])
    # the shared policy was ranked once per replay user and log, not once per name
    users = after["replay"][0]["n_users"]
    logged = sum(b["n_requests"] for b in after["ope"].values())
    assert ranker.rows <= 20 * (users + 2 * logged)


def test_catalogue_rows_scored_by_one_matrix_product_rank_as_cell_by_cell() -> None:
    class Als(_Als):
        def __init__(self) -> None:
            self.matrix_calls = 0

        def score_matrix(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
            self.matrix_calls += 1
            return self.score(np.asarray(users)[:, None], np.asarray(items)[None, :])

    als = Als()
    policy = ALSPolicy(als, PopularPolicy(np.array([3, 5]), np.array([2.0, 9.0])))
    users, catalog = np.arange(40), np.arange(60)
    broadcast = np.broadcast_to(catalog, (users.size, catalog.size))  # what replay passes
    got = policy.scores(users, broadcast)
    assert als.matrix_calls == 1
    np.testing.assert_array_equal(got, policy.scores(users, np.tile(catalog, (users.size, 1))))
    assert als.matrix_calls == 1  # a plain matrix (off-policy candidates) is scored cell by cell
