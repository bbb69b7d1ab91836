"""Ranking metrics against hand-computed values and against a plain per-user loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluation.metrics import (
    PAD,
    Popularity,
    Relevance,
    catalog_coverage,
    hit_rate_at_k,
    map_at_k,
    ndcg_at_k,
    novelty,
    per_user_metrics,
    precision_at_k,
    ranking_report,
    recall_at_k,
)

L3, L6 = 1 / math.log2(3), 1 / math.log2(6)
RECS = [[1, 2, 3, 4, 5], [7, 8, 9, 10, 11], [1, 2, 3, 4, 5], [1, 2, 3]]
RELEVANT = [{2, 5, 9}, {7}, set(), {6}]


def test_hand_computed_per_user_values() -> None:
    pu = per_user_metrics(RECS, RELEVANT, k=5)
    ndcg0 = (L3 + L6) / (1 + L3 + 0.5)
    np.testing.assert_allclose(pu["precision"][[0, 1, 3]], [0.4, 0.2, 0.0])
    np.testing.assert_allclose(pu["recall"][[0, 1, 3]], [2 / 3, 1.0, 0.0])
    np.testing.assert_allclose(pu["ndcg"][[0, 1, 3]], [ndcg0, 1.0, 0.0])
    np.testing.assert_allclose(pu["map"][[0, 1, 3]], [(1 / 2 + 2 / 5) / 3, 1.0, 0.0])
    np.testing.assert_allclose(pu["hit_rate"][[0, 1, 3]], [1.0, 1.0, 0.0])
    # a user with nothing relevant is NaN, and left out of the means (as in MS Recommenders)
    assert all(np.isnan(v[2]) for v in pu.values())
    assert precision_at_k(RECS, RELEVANT, 5) == pytest.approx(0.2)
    assert recall_at_k(RECS, RELEVANT, 5) == pytest.approx((2 / 3 + 1) / 3)
    assert ndcg_at_k(RECS, RELEVANT, 5) == pytest.approx((ndcg0 + 1) / 3)
    assert map_at_k(RECS, RELEVANT, 5) == pytest.approx((0.3 + 1) / 3)
    assert hit_rate_at_k(RECS, RELEVANT, 5) == pytest.approx(2 / 3)


def test_cut_at_k_changes_the_normalisers() -> None:
    pu = per_user_metrics(RECS, RELEVANT, k=2)
    assert pu["precision"][0] == pytest.approx(0.5)
    assert pu["recall"][0] == pytest.approx(1 / 3)
    assert pu["ndcg"][0] == pytest.approx(L3 / (1 + L3))
    assert pu["map"][0] == pytest.approx(0.5 / 2)  # divided by min(n_relevant, k) = 2


def test_matrix_and_list_inputs_agree_and_repeats_count_once() -> None:
    mat = np.array([[1, 2, 3, 4, 5], [7, 8, 9, 10, 11], [1, 2, 3, 4, 5], [1, 2, 3, PAD, PAD]])
    a = per_user_metrics(mat, RELEVANT, 5)
    b = per_user_metrics(
        RECS, Relevance.from_pairs(np.array([0, 0, 0, 1, 3]), np.array([2, 5, 9, 7, 6]), 4), 5
    )
    for name in a:
        np.testing.assert_allclose(a[name], b[name])
    assert precision_at_k([[2, 2, 3]], [{2}], 3, per_user=True)[0] == pytest.approx(1 / 3)
    assert map_at_k([[2, 2, 3]], [{2, 3}], 3) == pytest.approx((1 + 2 / 3) / 2)


def _loop_reference(recs: list[list[int]], rel: list[set[int]], k: int) -> dict[str, float]:
    out: dict[str, list[float]] = {m: [] for m in ("precision", "recall", "ndcg", "map", "hit_rate")}
    for r, t in zip(recs, rel, strict=True):
        if not t:
            continue
        top = r[:k]
        hits = [i for i, x in enumerate(top) if x in t]
        dcg = sum(1 / math.log2(i + 2) for i in hits)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(t), k)))
        out["precision"].append(len(hits) / k)
        out["recall"].append(len(hits) / len(t))
        out["ndcg"].append(dcg / idcg)
        out["map"].append(sum((j + 1) / (i + 1) for j, i in enumerate(hits)) / min(len(t), k))
        out["hit_rate"].append(float(bool(hits)))
    return {m: float(np.mean(v)) for m, v in out.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    recs = [list(rng.choice(50, size=10, replace=False)) for _ in range(200)]
    rel = [set(rng.choice(50, size=rng.integers(0, 8), replace=False).tolist()) for _ in range(200)]
    ref = _loop_reference(recs, rel, 7)
    got = {
        m: f(recs, rel, 7)
        for m, f in [
            ("precision", precision_at_k),
            ("recall", recall_at_k),
            ("ndcg", ndcg_at_k),
            ("map", map_at_k),
            ("hit_rate", hit_rate_at_k),
        ]
    }
    for m in ref:
        assert got[m] == pytest.approx(ref[m]), m


def test_coverage_and_novelty() -> None:
    assert catalog_coverage(RECS, np.arange(10), 5) == pytest.approx(8 / 10)
    assert catalog_coverage(RECS, 20, 5) == pytest.approx(10 / 20)
    pop = Popularity.from_interactions(
        np.array([1, 2, 3, 4, 1, 2, 1]), np.array([10, 10, 10, 10, 20, 20, 10])
    )
    np.testing.assert_allclose(pop.lookup(np.array([10, 20, 99])), [1.0, 0.5, 1 / 5])
    assert novelty([[10, 20]], pop, 2) == pytest.approx((0 + 1) / 2)
    pu = novelty([[10, 20], [99, PAD]], pop, 2, per_user=True)
    np.testing.assert_allclose(pu, [0.5, math.log2(5)])
    means, per_user = ranking_report(
        [[10, 20], [99, 10]], [{20}, {10}], 2, catalog=np.array([10, 20, 30]), popularity=pop
    )
    assert means["coverage"] == pytest.approx(2 / 3)
    assert set(per_user) == {"precision", "recall", "ndcg", "map", "hit_rate", "novelty"}


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(RECS, RELEVANT, 0)
    with pytest.raises(ValueError, match="cover 4 users but relevant sets cover 3"):
        precision_at_k(RECS, RELEVANT[:3], 5)


def test_missing_relevant_sets_count_as_empty() -> None:
    # a pandas groupby(...).apply(set).reindex(...) leaves NaN for users with no positives
    pu = per_user_metrics([[1, 2], [3, 4], [5, 6]], [{2}, float("nan"), None], 2)
    assert pu["recall"][0] == 1.0 and np.isnan(pu["recall"][1]) and np.isnan(pu["recall"][2])
