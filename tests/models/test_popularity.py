from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import IncompatibleBundleError, ModelFitError, PopularityModel


@pytest.fixture()
def model() -> PopularityModel:
    # product 1: 3 events, 2: weight 5 from segment "b", 3: 1, 4: 3 (ties with 1 -> lower id first)
    products = [1, 1, 1, 2, 3, 4, 4, 4]
    weights = [1, 1, 1, 5, 1, 1, 1, 1]
    users = [10, 10, 11, 12, 10, 11, 11, 10]
    return PopularityModel().fit(products, weights, users, {10: "a", 11: "a", 12: "b", 13: "c"})


def test_global_order_is_summed_weight_then_id(model: PopularityModel) -> None:
    ids, scores, reason = model.fallback(10)
    assert ids.tolist() == [2, 1, 4, 3] and scores.tolist() == [5, 3, 3, 1] and reason == "popular"


def test_segment_lists_and_reasons(model: PopularityModel) -> None:
    ids, scores, reason = model.fallback(2, segment="a")
    assert ids.tolist() == [1, 4] and reason == "segment_popular"
    assert model.fallback(1, segment="b")[0].tolist() == [2]
    # a segment with no events and an unknown segment both fall back to the global list
    assert model.fallback(1, segment="c")[2] == "popular"
    assert model.fallback(1, segment="nope")[2] == "popular"
    assert model.segment_of(12) == "b" and model.segment_of(99) is None
    assert model.generate(12, 1)[0].tolist() == [2]  # known user -> their segment
    assert model.generate(99, 1)[0].tolist() == [2]  # unknown user -> global


def test_candidates_and_exclude(model: PopularityModel) -> None:
    ids, scores = model.top(10, candidates=[3, 77, 1, 76], exclude=[1])
    # known candidates by popularity, then never-seen ones in the order given, score 0
    assert ids.tolist() == [3, 77, 76] and scores.tolist() == [1, 0, 0]


def test_score_is_each_products_score_in_the_segment_list(model: PopularityModel) -> None:
    # segment "a": 1 -> 3, 4 -> 3, 3 -> 1; 2 was bought only in "b"; 77 never seen
    assert model.score([2, 77, 4, 1, 3], segment="a").tolist() == [0, 0, 3, 3, 1]
    assert model.score([2, 77, 4], segment="b").tolist() == [5, 0, 0]
    assert model.score([2, 77, 4]).tolist() == [5, 0, 3]
    # no events in "c", unknown segment: the global list, as fallback() answers them
    assert model.score([2, 1], segment="c").tolist() == model.score([2, 1], segment="nope").tolist() == [5, 3]
    assert model.score([]).tolist() == []
    # refitting drops the scores cached by the first call
    model.fit([77, 77], [1, 1])
    assert model.score([2, 77]).tolist() == [0, 2]


def test_score_agrees_with_fallback_on_random_data() -> None:
    rng = np.random.default_rng(3)
    m = PopularityModel().fit(
        rng.integers(0, 300, 5000), rng.random(5000), rng.integers(0, 50, 5000),
        {u: "xyz"[u % 3] for u in range(50)},
    )  # fmt: skip
    for seg in (None, "x", "y", "z", "missing"):
        cand = rng.choice(400, 120, replace=False)
        ids, scores, _ = m.fallback(len(cand), segment=seg, candidates=cand)
        expected = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        assert m.score(cand, segment=seg).tolist() == [expected[c] for c in cand.tolist()]


def test_save_load_round_trip(model: PopularityModel, tmp_path: Path) -> None:
    model.save(tmp_path / "p")
    loaded = PopularityModel.load(tmp_path / "p")
    for seg in (None, "a", "b", "c"):
        a, b = model.fallback(5, segment=seg), loaded.fallback(5, segment=seg)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2]
    assert loaded.segment_of(12) == "b" and loaded.segment_of(13) == "c"


def test_load_refuses_a_truncated_file(model: PopularityModel, tmp_path: Path) -> None:
    model.save(tmp_path / "p")
    f = tmp_path / "p" / "popularity.npz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(IncompatibleBundleError, match="popularity.npz"):
        PopularityModel.load(tmp_path / "p")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ModelFitError, match="zero events"):
        PopularityModel().fit([])
    with pytest.raises(ModelFitError, match="differ in length"):
        PopularityModel().fit([1, 2], [1.0])
    with pytest.raises(ModelFitError, match="NaN"):
        PopularityModel().fit([1, 2], [1.0, np.nan])


def test_generate_many_without_segments_serves_the_global_list() -> None:
    # regression: a model fitted without user segments crashed (IndexError) in generate_many
    model = PopularityModel().fit([3, 1, 2, 1])
    ids, scores = model.generate_many([7, 8], 2)
    assert ids.tolist() == [[1, 2], [1, 2]] and scores.tolist() == [[2, 1], [2, 1]]


def test_refit_without_segments_forgets_the_previous_users() -> None:
    # regression: a refit kept the previous fit's user ids and segment labels (and saved them)
    model = PopularityModel().fit([1, 2], user_ids=[10, 11], user_segments={10: "a", 11: "b"})
    model.fit([1, 2])
    assert model.segment_of(10) is None and model.user_ids.size == 0
    assert model.generate_many([10], 1)[0].tolist() == [[1]]
