"""The truth tells the probabilities the logs were drawn from: checked against the logs themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features.data_model import table_path
from pipelines.simulator import TrueWorld


def _cols(data_dir: Path, name: str, cols: list[str]) -> dict[str, np.ndarray]:
    t = pq.read_table(table_path(data_dir, name), columns=cols)
    return {c: t.column(c).to_numpy() for c in cols}


def _z(observed: np.ndarray, prob: np.ndarray) -> float:
    """Standard score of the observed count against the sum of independent Bernoulli probabilities."""
    return float((observed.sum() - prob.sum()) / np.sqrt((prob * (1 - prob)).sum()))


def test_purchase_prob_agrees_with_logged_purchases(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    imp = _cols(
        small_world, "impressions", ["user_id", "product_id", "slot", "stream_id", "clicked", "purchased"]
    )
    click = truth.click_prob(imp["user_id"], imp["product_id"], imp["slot"])
    buy = truth.purchase_prob(imp["user_id"], imp["product_id"], imp["slot"], imp["stream_id"])
    assert abs(_z(imp["clicked"], click)) < 4
    assert abs(_z(imp["purchased"], buy)) < 4
    # per slot too: position bias is real and the truth knows it
    for s in range(truth.slots):
        at = imp["slot"] == s
        assert abs(_z(imp["clicked"][at], click[at])) < 4, s
    # and where the truth expects most, most purchases happen: top vs bottom half of predicted
    high = buy > np.median(buy)
    assert imp["purchased"][high].mean() > 3 * imp["purchased"][~high].mean()


def test_purchase_prob_without_stream_is_the_average_host(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    imp = _cols(small_world, "impressions", ["user_id", "product_id", "slot", "stream_id", "purchased"])
    with_host = truth.purchase_prob(imp["user_id"], imp["product_id"], imp["slot"], imp["stream_id"])
    avg_host = truth.purchase_prob(imp["user_id"], imp["product_id"], imp["slot"])
    assert not np.allclose(with_host, avg_host)
    no_stream = truth.purchase_prob(
        imp["user_id"], imp["product_id"], imp["slot"], np.full(len(avg_host), -1)
    )
    np.testing.assert_allclose(no_stream, avg_host, rtol=1e-5, atol=1e-12)
    assert abs(avg_host.sum() / with_host.sum() - 1) < 0.2


def test_push_purchase_prob_agrees_with_logged_pushes(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    pushes = _cols(small_world, "pushes", ["ts", "user_id", "product_id", "purchased"])
    # churned users open nothing; the truth's push probability is for users still around
    day = (pushes["ts"].astype("datetime64[us]").astype(np.int64) - truth.start_us) // 86_400_000_000
    around = truth.churn_day(pushes["user_id"]) > day
    prob = truth.push_purchase_prob(pushes["user_id"][around], pushes["product_id"][around])
    assert pushes["purchased"][around].sum() > 20
    assert abs(_z(pushes["purchased"][around], prob)) < 4
    assert pushes["purchased"][~around].sum() == 0


def test_slate_value_is_the_sum_of_slot_purchase_probs(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    users = np.array([1, 2, 3])
    slates = np.array([[5, 6, 7], [7, 6, 5], [5, -1, 7]])
    value = truth.slate_value(users, slates)
    expected = [
        sum(truth.purchase_prob([u], [p], [s])[0] for s, p in enumerate(row) if p >= 0)
        for u, row in zip(users, slates, strict=True)
    ]
    np.testing.assert_allclose(value, expected)
    # moving the best product to the first slot never lowers the value (examination falls with slot)
    best = np.argmax(truth.purchase_prob(np.full(3, 1), [5, 6, 7], [0, 0, 0]))
    order = [5 + best] + [p for p in (5, 6, 7) if p != 5 + best]
    assert truth.slate_value([1], [order])[0] >= truth.slate_value([1], [order[::-1]])[0]


def test_examination_falls_with_slot_and_types_are_named(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    ex = truth.examination(np.arange(6))
    assert ex[0] == 1.0 and np.all(np.diff(ex) < 0)
    types = truth.user_type([1, 2, 3, 4, 5])
    assert set(types) <= set(truth.type_names)
    assert truth.affinity([1, 1], [1, 2]).shape == (2,)


def test_unknown_ids_and_missing_truth_are_clear_errors(small_world: Path, tmp_path: Path) -> None:
    truth = TrueWorld.load(small_world)
    with pytest.raises(KeyError, match="unknown product_id"):
        truth.purchase_prob([1], [10**9], [0])
    with pytest.raises(KeyError, match="unknown user_id"):
        truth.affinity([0], [1])
    with pytest.raises(ValueError, match="slots must be >= 0"):
        truth.examination([-1])
    with pytest.raises(FileNotFoundError, match="no simulator truth"):
        TrueWorld.load(tmp_path)
