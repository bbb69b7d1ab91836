from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from models import (
    ALSCandidateGenerator,
    ALSConfig,
    IdVocab,
    IncompatibleBundleError,
    ModelFitError,
    check_blas_threads,
)
from tests.models.conftest import Checkerboard


def fitted(board: Checkerboard, **cfg: object) -> ALSCandidateGenerator:
    config = ALSConfig(**{"factors": 2, "iterations": 15, "num_threads": 1, **cfg})  # type: ignore[arg-type]
    return ALSCandidateGenerator(config).fit(board.matrix, board.users, board.items)


def test_empty_matrix_raises() -> None:
    m = sp.csr_matrix((3, 4), dtype=np.float32)
    with pytest.raises(ModelFitError, match="empty matrix"):
        ALSCandidateGenerator().fit(m, IdVocab(range(3)), IdVocab(range(4)))


def test_nan_confidences_raise() -> None:
    m = sp.csr_matrix(np.array([[1.0, np.nan], [0.0, 2.0]]))
    with pytest.raises(ModelFitError, match="NaN or infinite"):
        ALSCandidateGenerator().fit(m, IdVocab(range(2)), IdVocab(range(2)))


def test_nan_factors_raise() -> None:
    """Confidences near float32's limit overflow inside the solver; the fit must fail loudly."""
    m = sp.random(30, 20, density=0.3, format="csr", random_state=0) * 1e30
    with pytest.raises(ModelFitError, match="NaN|non-finite"):
        ALSCandidateGenerator(ALSConfig(factors=4, num_threads=1)).fit(
            m, IdVocab(range(30)), IdVocab(range(20))
        )


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_non_finite_factors_are_refused_by_the_wrapper(
    checkerboard: Checkerboard, poison: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wrapper's own check, not implicit's: implicit only looks for NaN (never inf), and not on
    every path (GPU, other versions). Real factors are poisoned after a real fit; the fit must raise
    and leave the generator unfitted, so nothing reaches registration."""
    import models.als

    real = models.als.fit_implicit

    def poisoned(config: ALSConfig, matrix: sp.csr_matrix) -> object:
        model = real(config, matrix)
        model.item_factors[3, 0] = poison
        return model

    monkeypatch.setattr(models.als, "fit_implicit", poisoned)
    gen = ALSCandidateGenerator(ALSConfig(factors=2, iterations=5, num_threads=1))
    with pytest.raises(ModelFitError, match="non-finite item_factors"):
        gen.fit(checkerboard.matrix, checkerboard.users, checkerboard.items)
    assert not gen.is_fitted and len(gen.users) == 0


def test_shape_must_match_vocabularies(checkerboard: Checkerboard) -> None:
    with pytest.raises(ModelFitError, match="shape"):
        ALSCandidateGenerator().fit(checkerboard.matrix, checkerboard.users, IdVocab(range(3)))


def test_score_matches_generate_and_is_nan_for_unknowns(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    uid = int(checkerboard.users.ids[3])
    ids, scores = model.generate(uid, 5)
    np.testing.assert_allclose(model.score(uid, ids), scores, rtol=1e-5)
    out = model.score([uid, 42, uid], [ids[0], ids[0], 42])
    assert np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])


def test_one_user_against_many_products_gives_the_pairwise_scores(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    products = np.concatenate([checkerboard.items.ids[::2], [9999]])
    other = int(checkerboard.users.ids[1])
    for uid in (int(checkerboard.users.ids[4]), 42):
        fast = [model.score(np.full(products.size, uid), products), model.score(uid, products)]
        # the same pairs scored among another user's: the elementwise path
        mixed = model.score(np.r_[np.full(products.size, uid), other], np.r_[products, products[0]])
        for got in fast:
            assert got.shape == products.shape
            np.testing.assert_allclose(got, mixed[:-1], rtol=1e-5, atol=1e-6)
        assert np.isnan(fast[0][-1])  # an unknown product
        assert np.isnan(fast[0]).all() == (uid == 42)  # an unknown user


def test_generate_drops_candidates_unknown_to_the_model(checkerboard: Checkerboard) -> None:
    """On-air products the model never saw (new launches) are dropped, never mapped onto another
    product's factors; unknown ids in ``exclude`` are ignored."""
    model = fitted(checkerboard)
    uid = int(checkerboard.users.ids[2])
    known = checkerboard.items.ids[[1, 5, 14, 20]]
    ids, scores = model.generate(uid, 10, candidates=np.r_[9999, known, 123456], exclude=[777])
    assert sorted(ids.tolist()) == sorted(known.tolist())
    np.testing.assert_allclose(scores, model.score(uid, ids), rtol=1e-5)
    assert model.generate(uid, 10, candidates=[9999, 123456])[0].size == 0
    # the whole catalogue: an unknown id in exclude removes nothing, a known one removes itself
    first = int(checkerboard.items.ids[0])
    for exclude, gone in (([9999], set()), ([9999, first], {first})):
        rest = model.generate(uid, 100, exclude=exclude)[0]
        assert sorted(rest.tolist()) == sorted(set(checkerboard.items.ids.tolist()) - gone)


def test_generate_many_agrees_with_generate(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    users = [int(checkerboard.users.ids[0]), 42, int(checkerboard.users.ids[1])]
    ids, scores = model.generate_many(users, 4)
    assert ids.shape == (3, 4)
    assert (ids[1] == -1).all() and np.isnan(scores[1]).all()
    for row, uid in ((0, users[0]), (2, users[2])):
        expect, _ = model.generate(uid, 4)
        np.testing.assert_array_equal(ids[row], expect)


def test_generate_many_excludes_seen(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    users = checkerboard.users.ids[:6]
    rows = checkerboard.matrix[checkerboard.users.index(users)]
    ids, _ = model.generate_many(users, 5, exclude_user_items=rows)
    for r, uid in enumerate(users):
        assert not set(ids[r].tolist()) & set(checkerboard.seen(int(uid)).tolist())
        assert all(checkerboard.item_group[int(i)] == checkerboard.user_group[int(uid)] for i in ids[r][:4])


def test_user_vector_scores_a_user_the_model_does_not_hold_without_changing_it(
    checkerboard: Checkerboard,
) -> None:
    model = fitted(checkerboard)
    factors = model.user_factors.copy()
    b_items = [i for i, g in checkerboard.item_group.items() if g == "B"][:3]
    vec = model.user_vector([*b_items, 123456], [2.0, 1.0, 1.0, 5.0])  # an unknown product is ignored
    assert vec is not None and vec.shape == (model.item_factors.shape[1],)
    ids, scores = model.generate_for_vector(vec, 4, exclude=b_items)
    assert [checkerboard.item_group[int(i)] for i in ids] == ["B"] * 4
    np.testing.assert_allclose(model.score_vector(vec, ids), scores, rtol=1e-5)
    assert np.isnan(model.score_vector(vec, [123456])).all()
    # The exact least-squares step of implicit ALS for one user, the item factors Y fixed: with
    # confidences c = alpha * weight, (Y'Y + reg I + sum_i (c_i - 1) y_i y_i') x = sum_i c_i y_i.
    Y = model.item_factors.astype(np.float64)
    c = model.config.alpha * np.array([2.0, 1.0, 1.0])
    rows = Y[model.items.index(b_items)]
    lhs = Y.T @ Y + model.config.regularization * np.eye(Y.shape[1]) + (rows.T * (c - 1)) @ rows
    np.testing.assert_allclose(vec, np.linalg.solve(lhs, rows.T @ c), rtol=1e-4, atol=1e-6)
    assert len(model.users) == len(checkerboard.users)  # the model itself is unchanged
    np.testing.assert_array_equal(model.user_factors, factors)
    assert model.user_vector([123456], [1.0]) is None


def test_user_vector_follows_a_known_user_who_switched_taste(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    uid = int(next(u for u, g in checkerboard.user_group.items() if g == "A"))
    b_items = [i for i, g in checkerboard.item_group.items() if g == "B"]
    assert all(checkerboard.item_group[int(i)] == "A" for i in model.generate(uid, 3)[0])
    vec = model.user_vector(b_items[:6], np.full(6, 5.0))  # their newer events: group B only
    ids, _ = model.generate_for_vector(vec, 3, exclude=b_items[:6])
    assert all(checkerboard.item_group[int(i)] == "B" for i in ids)


def test_save_load_round_trip_uses_cpu_class(checkerboard: Checkerboard, tmp_path: Path) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    model = fitted(checkerboard)
    model.save(tmp_path / "als")
    loaded = ALSCandidateGenerator.load(tmp_path / "als")
    assert isinstance(loaded._model, AlternatingLeastSquares)
    assert loaded.config == model.config
    u = np.repeat(checkerboard.users.ids, 3)
    p = np.tile(checkerboard.items.ids[:3], len(checkerboard.users))
    np.testing.assert_array_equal(loaded.score(u, p), model.score(u, p))


def test_load_refuses_mismatched_vocabulary(checkerboard: Checkerboard, tmp_path: Path) -> None:
    fitted(checkerboard).save(tmp_path / "als")
    IdVocab(checkerboard.users.ids[:-1]).save(tmp_path / "als" / "users.npz")
    with pytest.raises(IncompatibleBundleError, match="vocabularies hold"):
        ALSCandidateGenerator.load(tmp_path / "als")


def test_load_refuses_a_missing_factor_file(checkerboard: Checkerboard, tmp_path: Path) -> None:
    fitted(checkerboard).save(tmp_path / "als")
    (tmp_path / "als" / "als.npz").unlink()
    with pytest.raises(IncompatibleBundleError, match=r"als\.npz is missing"):
        ALSCandidateGenerator.load(tmp_path / "als")


def test_threaded_blas_is_warned_about() -> None:
    import threadpoolctl

    blas = [a for a in threadpoolctl.threadpool_info() if a.get("user_api") == "blas"]
    if not blas:
        pytest.skip("no BLAS visible to threadpoolctl")
    with threadpoolctl.threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_blas_threads() is True
    with threadpoolctl.threadpool_limits(2, "blas"), pytest.warns(RuntimeWarning, match="NUM_THREADS=1"):
        assert check_blas_threads() is False


def test_fit_leaves_the_callers_matrix_alone(checkerboard: Checkerboard) -> None:
    m = checkerboard.matrix.copy()
    m.data[:5] = 0.0  # explicit zeros, as a decayed weight can produce
    before = (m.data.copy(), m.indices.copy(), m.indptr.copy())
    fitted(
        Checkerboard(
            m, checkerboard.users, checkerboard.items, checkerboard.user_group, checkerboard.item_group
        )
    )
    for a, b in zip(before, (m.data, m.indices, m.indptr), strict=True):
        np.testing.assert_array_equal(a, b)


def test_score_matrix_agrees_with_pairwise_scores(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    users = np.concatenate([checkerboard.users.ids[:7], [42]])
    products = np.concatenate([checkerboard.items.ids[::3], [9999]])
    mat = model.score_matrix(users, products)
    assert mat.shape == (8, products.size)
    pairwise = model.score(np.repeat(users, products.size), np.tile(products, users.size)).reshape(mat.shape)
    np.testing.assert_allclose(mat, pairwise, rtol=1e-5, atol=1e-5)
    assert np.isnan(mat[-1]).all() and np.isnan(mat[:, -1]).all() and np.isfinite(mat[:-1, :-1]).all()


def test_forget_zeroes_only_the_deleted_users(checkerboard: Checkerboard) -> None:
    model = fitted(checkerboard)
    gone, kept = int(checkerboard.users.ids[3]), int(checkerboard.users.ids[4])
    items = checkerboard.items.ids
    before = model.score(np.full(items.size, kept), items)
    assert np.abs(model.score(np.full(items.size, gone), items)).max() > 0
    assert model.forget([gone, 42]) == 1  # an unknown id is skipped
    assert np.all(model.score(np.full(items.size, gone), items) == 0)
    np.testing.assert_array_equal(model.score(np.full(items.size, kept), items), before)


def test_drop_users_leaves_no_trace_of_them(checkerboard: Checkerboard, tmp_path: Path) -> None:
    """Users without personalization consent: not a zeroed row but no row and no id at all, in
    memory and once saved; everyone else scores as before."""
    model = fitted(checkerboard)
    ids, items = checkerboard.users.ids, checkerboard.items.ids
    gone, kept = [int(ids[3]), int(ids[7])], ids[[0, 4, 8]]
    before = model.score(np.repeat(kept, items.size), np.tile(items, kept.size))
    assert model.drop_users([*gone, gone[0], 424242]) == 2  # repeats and unknown ids are skipped
    assert len(model.users) == len(ids) - 2 and model.user_factors.shape[0] == len(ids) - 2
    for u in gone:
        assert (model.users.index(np.array([u])) == -1).all()
        assert np.isnan(model.score(np.full(items.size, u), items)).all()
        assert model.generate(u, 3)[0].size == 0  # an unknown user: the caller's fallback
    np.testing.assert_array_equal(model.score(np.repeat(kept, items.size), np.tile(items, kept.size)), before)
    model.save(tmp_path / "als")
    loaded = ALSCandidateGenerator.load(tmp_path / "als")
    assert not set(gone) & set(loaded.users.ids.tolist()) and len(loaded.users) == len(ids) - 2
    np.testing.assert_array_equal(
        loaded.score(np.repeat(kept, items.size), np.tile(items, kept.size)), before
    )


def test_ids_outside_int64_are_unknown_not_an_exception(checkerboard: Checkerboard) -> None:
    # regression: a Python id >= 2**63 raised OverflowError from score, score_matrix and
    # generate_many instead of the unknown-user NaN / padding fallback
    model = fitted(checkerboard)
    uid, pid = int(checkerboard.users.ids[0]), int(checkerboard.items.ids[0])
    assert np.isnan(model.score([2**63], [pid])).all() and np.isnan(model.score(uid, [2**64])).all()
    assert np.isnan(model.score_matrix([2**63, uid], [pid])[0]).all()
    assert (model.generate_many([2**63], 3)[0] == -1).all()
    assert model.generate(2**63, 3)[0].size == 0
    assert model.generate(uid, 3, candidates=[pid, 2**63])[0].tolist() == [pid]


def test_generate_many_with_no_room_gives_empty_rows(checkerboard: Checkerboard) -> None:
    # regression: n <= 0 raised "negative dimensions are not allowed"
    model = fitted(checkerboard)
    ids, scores = model.generate_many([int(checkerboard.users.ids[0])], -1)
    assert ids.shape == scores.shape == (1, 0)


def test_a_user_with_no_events_or_forgotten_gets_no_candidates(checkerboard: Checkerboard) -> None:
    # regression: all-zero factors scored every product 0 and generate returned the vocabulary's
    # first products as if they were this user's top candidates, instead of the empty fallback
    matrix = checkerboard.matrix.tolil()
    matrix[2, :] = 0
    board = sp.csr_matrix(matrix)
    board.eliminate_zeros()
    model = ALSCandidateGenerator(ALSConfig(factors=4, iterations=5)).fit(
        board, checkerboard.users, checkerboard.items
    )
    idle, gone = int(checkerboard.users.ids[2]), int(checkerboard.users.ids[3])
    assert model.generate(idle, 3)[0].size == 0
    assert model.generate(gone, 3)[0].size == 3
    model.forget([gone])
    assert model.generate(gone, 3)[0].size == 0
