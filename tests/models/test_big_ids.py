"""Ids at and beyond the edge of int64 (hashed uint64 ids such as 2**64 - 1) in the model layer.

The contract (models/vocab.py, and serving's 422 for such ids): a model's ids are int64. Fitting on
an id beyond int64 is refused with a ValueError naming it; an id beyond int64 in a lookup (score,
candidates, exclude, a deletion) is an unknown id, never an OverflowError and never wrapped onto
another id (numpy casts uint64 2**64 - 1 to -1, and turns a list such as [2**63 + 5, 7] into
float64, where int64 ids above 2**53 lose their last digits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models import ALSCandidateGenerator, ALSConfig, Bundle, IdVocab, PopularityModel, SlotPolicy
from models.bundle_erasure import erase_users, held_users
from models.vocab import as_int64

TOP = 2**63 - 1  # the largest int64: a valid id
BEYOND = (2**63, 2**63 + 5, 2**64 - 1)  # hashed uint64 ids no model can hold
BEYOND_U64 = np.array(BEYOND, dtype=np.uint64)


def test_as_int64_keeps_every_digit_of_a_list_mixing_big_and_valid_ids() -> None:
    # regression: np.asarray([2**63 + 5, TOP - 1]) is float64; TOP - 1 came back as -2**63
    q, outside = as_int64([2**63 + 5, TOP - 1, -1])
    assert q.dtype == np.int64 and q[1:].tolist() == [TOP - 1, -1]
    assert outside is not None and outside.tolist() == [True, False, False]
    q, outside = as_int64(np.array([np.uint64(2**64 - 1), 3], dtype=object))
    assert q.tolist()[1] == 3 and outside is not None and outside.tolist() == [True, False]


# ----- popularity ------------------------------------------------------------------------------
@pytest.fixture()
def pop() -> PopularityModel:
    # products TOP (3 events), -1 (2), 7 (1); users TOP ("a"), -1 ("b")
    return PopularityModel().fit(
        [TOP, TOP, TOP, -1, -1, 7], None, [TOP, TOP, -1, -1, -1, TOP], {TOP: "a", -1: "b"}
    )


@pytest.mark.parametrize(
    "products", [[1, 2**63 + 5], [1, 2**64 - 1], [1, 2**64], np.array([1, 2**64 - 1], np.uint64)]
)
def test_popularity_refuses_to_fit_on_a_product_beyond_int64(products: list[int] | np.ndarray) -> None:
    # regression: uint64 2**64 - 1 was fitted as product -1, a Python int raised OverflowError
    with pytest.raises(ValueError, match=str(int(products[-1]))):
        PopularityModel().fit(products)


def test_popularity_refuses_a_segment_user_beyond_int64() -> None:
    with pytest.raises(ValueError, match=str(2**64 - 1)):
        PopularityModel().fit([1, 2], None, [1, 2], {1: "a", 2**64 - 1: "b"})
    with pytest.raises(ValueError, match=str(2**63 + 5)):
        PopularityModel().fit(
            [1, 2], None, [1, 2], pd.Series(["a", "b"], index=np.array([1, 2**63 + 5], np.uint64))
        )


def test_a_vocabulary_beyond_int64_is_refused_naming_the_id() -> None:
    # a Python list mixing them was refused as "dtype float64" or "dtype object", naming no id
    for ids in ([1, 2**63 + 5], [2**64, 1], np.array([1, 2**64 - 1], np.uint64)):
        with pytest.raises(ValueError, match=f"int64.*{max(int(i) for i in ids)}"):
            IdVocab(ids)


def test_popularity_scores_ids_beyond_int64_as_never_seen(pop: PopularityModel) -> None:
    assert pop.score([TOP, 2**63 + 5, -1, 7]).tolist() == [3, 0, 2, 1]
    assert pop.score(BEYOND_U64).tolist() == [0, 0, 0]  # 2**64 - 1 is not product -1
    assert pop.score([2**64]).tolist() == [0]


def test_popularity_fallback_drops_candidates_and_exclusions_beyond_int64(pop: PopularityModel) -> None:
    ids, scores, reason = pop.fallback(10, candidates=[2**64 - 1, 7, TOP, 2**63 + 5, 12])
    assert ids.tolist() == [TOP, 7, 12] and scores.tolist() == [3, 1, 0] and reason == "popular"
    assert pop.fallback(10, exclude=BEYOND_U64)[0].tolist() == [TOP, -1, 7]
    assert pop.fallback(10, exclude=[2**63 + 5, TOP])[0].tolist() == [-1, 7]
    assert pop.top(10, "a", candidates=BEYOND_U64)[0].size == 0


def test_popularity_users_beyond_int64_are_unknown(pop: PopularityModel) -> None:
    ids, _ = pop.generate_many([2**64 - 1, TOP, -1], 1)
    assert ids[:, 0].tolist() == [TOP, TOP, -1]  # global, segment "a", segment "b"
    assert pop.generate_many(BEYOND_U64, 1)[0][:, 0].tolist() == [TOP] * 3
    assert pop.segment_of(2**64 - 1) is None and pop.segment_of(TOP) == "a"
    assert pop.drop_users(BEYOND_U64) == 0  # 2**64 - 1 must not erase user -1
    assert pop.drop_users([2**63 + 5, TOP]) == 1
    assert pop.user_ids.tolist() == [-1]


def test_popularity_round_trip_keeps_edge_ids(pop: PopularityModel, tmp_path: Path) -> None:
    pop.save(tmp_path)
    loaded = PopularityModel.load(tmp_path)
    assert loaded.fallback(3, "a")[0].tolist() == pop.fallback(3, "a")[0].tolist() == [TOP, 7]
    assert loaded.score([TOP, 2**64 - 1]).tolist() == [3, 0]
    assert loaded.segment_of(TOP) == "a" and loaded.user_ids.tolist() == [TOP, -1]


# ----- ALS ---------------------------------------------------------------------------------------
USERS = np.array([TOP, TOP - 1, -1, TOP - 3, TOP - 4, TOP - 5], dtype=np.int64)
ITEMS = np.array([TOP, TOP - 1, -1, 7], dtype=np.int64)


@pytest.fixture()
def als() -> ALSCandidateGenerator:
    rows, cols = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], [0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 2, 3]
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(6, 4))
    config = ALSConfig(factors=2, iterations=5, num_threads=1, keep_history=True)
    return ALSCandidateGenerator(config).fit(matrix, IdVocab(USERS), IdVocab(ITEMS))


def test_als_forget_is_exact_next_to_an_id_beyond_int64(als: ALSCandidateGenerator) -> None:
    # regression: [2**63 + 5, TOP - 1] became float64, TOP - 1 became -2**63: nobody was forgotten
    before = als.user_factors.copy()
    assert als.forget([2**63 + 5, TOP - 1]) == 1
    assert not als.user_factors[1].any()
    np.testing.assert_array_equal(np.delete(als.user_factors, 1, 0), np.delete(before, 1, 0))
    assert als.forget(BEYOND_U64) == 0 and als.user_factors[2].any()  # not user -1


def test_als_drop_users_is_exact_next_to_an_id_beyond_int64(als: ALSCandidateGenerator) -> None:
    assert als.drop_users([2**64 - 1, TOP - 3]) == 1
    assert als.users.ids.tolist() == np.delete(USERS, 3).tolist()


def test_als_lookups_mixing_valid_and_beyond_int64_ids(als: ALSCandidateGenerator) -> None:
    exact = als.score_matrix(USERS, ITEMS)
    got = als.score([2**63 + 5, TOP - 1], [TOP - 1, TOP - 1])
    assert np.isnan(got[0]) and got[1] == pytest.approx(exact[1, 1], rel=1e-5)
    got = als.score(TOP - 1, [2**63 + 5, TOP - 1, 7])
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], exact[1, [1, 3]], rtol=1e-5)
    m = als.score_matrix([2**64 - 1, TOP - 1], [2**63, TOP - 1])
    assert (
        np.isnan(m[0]).all() and np.isnan(m[:, 0]).all() and m[1, 1] == pytest.approx(exact[1, 1], rel=1e-5)
    )
    ids, _ = als.generate(TOP - 1, 4, candidates=[2**63 + 5, TOP - 1, 7], exclude=[2**64 - 1, 7])
    assert ids.tolist() == [TOP - 1]
    assert als.generate_many([2**63 + 5, TOP - 1], 1)[0][:, 0].tolist() == [
        -1,
        als.generate(TOP - 1, 1)[0][0],
    ]
    vec = als.user_vector([2**63 + 5, TOP - 1], [1.0, 1.0])
    assert vec is not None
    np.testing.assert_array_equal(vec, als.user_vector([TOP - 1], [1.0]))
    assert np.isnan(als.score_vector(vec, [2**64 - 1, TOP - 1])[0])


def test_als_round_trip_and_bundle_erasure_with_edge_ids(als: ALSCandidateGenerator, tmp_path: Path) -> None:
    pop = PopularityModel().fit(
        ITEMS[[0, 0, 1, 3]], None, USERS[[0, 1, 1, 2]], dict.fromkeys(USERS.tolist(), "x")
    )
    saved = Bundle.create(als, pop, None, "ranker_v1").save(tmp_path / "bundle")
    loaded = Bundle.load(saved)
    np.testing.assert_array_equal(loaded.als.score_matrix(USERS, ITEMS), als.score_matrix(USERS, ITEMS))
    assert loaded.als.users.ids.tolist() == USERS.tolist() and loaded.als.items.ids.tolist() == ITEMS.tolist()
    assert erase_users(saved, BEYOND_U64) == 0  # 2**64 - 1 is not user -1
    assert erase_users(saved, [2**63 + 5, TOP - 4]) == 2  # one ALS row, one segment label
    assert sorted(set(held_users(saved).tolist())) == sorted(set(USERS.tolist()) - {TOP - 4})
    assert Bundle.load(saved).als.users.ids.tolist() == np.delete(USERS, 4).tolist()


# ----- policy ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "column", [np.array([2**64 - 1, 0], np.uint64), pd.Series([2**64, 0]), pd.Series([2**63 + 5, 0])]
)
def test_policy_refuses_a_candidate_id_beyond_int64(column: np.ndarray | pd.Series) -> None:
    # regression: uint64 2**64 - 1 came back as product -1; a Python int raised OverflowError
    frame = pd.DataFrame({"product_id": column, "score": [1.0, 0.5]})
    with pytest.raises(ValueError, match=f"product_id.*{int(column[0])}"):
        SlotPolicy().arrange(frame, rng=np.random.default_rng(0))
    edge = SlotPolicy().arrange(frame.assign(product_id=[TOP, 0]), rng=np.random.default_rng(0))
    assert sorted(edge.product_ids.tolist()) == [0, TOP]
