"""The ALS keeps each user's training row (``models/als_history.py``) so that a known user's newer
events can be folded into their factors: checked on the checkerboard, whose right answer is known
(group A users only ever touch group A products)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.als import ALSCandidateGenerator, ALSConfig
from models.bundle import Bundle
from models.bundle_erasure import erase_users
from models.errors import IncompatibleBundleError
from models.popularity import PopularityModel
from tests.models.conftest import Checkerboard

CONFIG = ALSConfig(factors=4, iterations=15, num_threads=1)


def _fit(board: Checkerboard, config: ALSConfig = CONFIG, until: int | None = None) -> ALSCandidateGenerator:
    return ALSCandidateGenerator(config).fit(board.matrix, board.users, board.items, history_until_us=until)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_training_row_alone_gives_back_the_trained_factors(checkerboard: Checkerboard) -> None:
    als = _fit(checkerboard)
    for uid in checkerboard.users.ids:
        folded = als.user_vector([], [], user_id=int(uid))
        assert folded is not None
        assert _cos(folded, als.user_factors[als.users.index_of(int(uid))]) > 0.99


def test_a_known_users_new_events_move_them_to_the_other_group(checkerboard: Checkerboard) -> None:
    als = _fit(checkerboard)
    uid = int(checkerboard.users.ids[0])  # a group A user
    b_items = np.array([i for i, g in checkerboard.item_group.items() if g == "B"], np.int64)
    seen = checkerboard.seen(uid)

    def b_share(vector: np.ndarray) -> float:
        ids, _ = als.generate_for_vector(vector, 6, exclude=seen)
        return float(np.isin(ids, b_items).mean())

    assert b_share(als.user_factors[0]) == 0.0
    assert b_share(als.user_vector([], [], user_id=uid)) == 0.0  # type: ignore[arg-type]
    # Heavy use of group B since training: B leads, yet the history still counts (A stays in).
    clicks = np.repeat(b_items[:8], 3)
    folded = als.user_vector(clicks, np.full(clicks.size, 3.0), user_id=uid)
    assert folded is not None and b_share(folded) >= 0.5
    # The same events for a user the model does not hold: B only, nothing of A's history.
    alone = als.user_vector(clicks, np.full(clicks.size, 3.0))
    assert alone is not None and b_share(alone) == 1.0
    a_items = np.array([i for i, g in checkerboard.item_group.items() if g == "A"], np.int64)
    assert als.score_vector(folded, a_items).mean() > als.score_vector(alone, a_items).mean()


def test_without_history_a_known_user_keeps_the_trained_factors(
    checkerboard: Checkerboard, tmp_path: Path
) -> None:
    als = _fit(checkerboard, CONFIG.model_copy(update={"keep_history": False}))
    uid = int(checkerboard.users.ids[0])
    assert als.history is None
    assert als.user_vector([500], [1.0], user_id=uid) is None
    assert als.user_vector([500], [1.0]) is not None  # an unknown user still folds in
    als.save(tmp_path)
    assert not (tmp_path / "history.npz").exists()
    assert ALSCandidateGenerator.load(tmp_path).history is None


def test_history_round_trips_and_a_bad_one_is_refused(checkerboard: Checkerboard, tmp_path: Path) -> None:
    als = _fit(checkerboard, until=1_700_000_000_000_000)
    als.save(tmp_path / "ok")
    back = ALSCandidateGenerator.load(tmp_path / "ok")
    assert back.history is not None and back.history.until_us == 1_700_000_000_000_000
    assert (back.history.matrix != checkerboard.matrix).nnz == 0
    uid = int(checkerboard.users.ids[3])
    np.testing.assert_allclose(back.user_vector([], [], user_id=uid), als.user_vector([], [], user_id=uid))

    bad = np.load(tmp_path / "ok" / "history.npz")
    arrays = {k: bad[k] for k in bad.files}
    arrays["indices"] = arrays["indices"].copy()
    arrays["indices"][0] = 10_000  # a column the model does not have
    np.savez(tmp_path / "ok" / "history.npz", **arrays)
    with pytest.raises(IncompatibleBundleError, match="history.npz"):
        ALSCandidateGenerator.load(tmp_path / "ok")


def test_forgetting_and_erasing_a_user_takes_their_history(
    checkerboard: Checkerboard, tmp_path: Path
) -> None:
    before = checkerboard.matrix.copy()
    als = _fit(checkerboard)
    gone, kept = int(checkerboard.users.ids[0]), int(checkerboard.users.ids[1])
    als.forget([gone])  # a deletion while serving
    assert als.user_vector([], [], user_id=gone) is None
    assert (checkerboard.matrix != before).nnz == 0  # the caller's matrix is untouched

    als = _fit(checkerboard)
    Bundle.create(als, PopularityModel().fit(checkerboard.items.ids), None, "ranker_v1").save(tmp_path)
    kept_vector = als.user_vector([], [], user_id=kept)
    assert erase_users(tmp_path, [gone]) >= 1
    back = Bundle.load(tmp_path).als  # the checksums of the rewritten files hold
    assert back.history is not None and back.history.shape == (
        len(checkerboard.users) - 1,
        len(checkerboard.items),
    )
    assert back.users.index_of(gone) < 0
    np.testing.assert_allclose(back.user_vector([], [], user_id=kept), kept_vector)


def test_the_history_weight_scales_the_training_row(checkerboard: Checkerboard) -> None:
    als = _fit(checkerboard)
    uid = int(checkerboard.users.ids[0])
    b_items = np.array([i for i, g in checkerboard.item_group.items() if g == "B"], np.int64)
    clicks, conf = b_items[:4], np.full(4, 2.0)
    # 0: the new events alone; the lower the weight, the further towards them.
    np.testing.assert_allclose(
        als.user_vector(clicks, conf, user_id=uid, history_weight=0.0),
        als.user_vector(clicks, conf),
        rtol=1e-5,
    )
    a_items = np.array([i for i, g in checkerboard.item_group.items() if g == "A"], np.int64)

    def lean_to_b(h: float) -> float:  # how much more B scores than A (their own group)
        v = als.user_vector(clicks, conf, user_id=uid, history_weight=h)
        return float(als.score_vector(v, b_items).mean() - als.score_vector(v, a_items).mean())  # type: ignore[arg-type]

    leans = [lean_to_b(h) for h in (1.0, 0.25, 0.05)]
    assert leans[0] < leans[1] < leans[2], leans
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="history_weight"):
            als.user_vector(clicks, conf, user_id=uid, history_weight=bad)


def test_many_users_are_folded_in_at_once_as_one_by_one(checkerboard: Checkerboard) -> None:
    als = _fit(checkerboard)
    ids = checkerboard.users.ids
    batch = [
        ([500, 501, 513], [1.0, 2.0, 3.0], int(ids[0])),  # a known user, new events
        ([], [], int(ids[1])),  # a known user, their training row alone
        ([512, 514], [2.0, 2.0], None),  # a user the model does not hold
        ([99_999], [1.0], None),  # nothing the model knows: None
    ]
    together = als.user_vectors(batch, history_weight=0.25)
    for (items, conf, user), got in zip(batch, together, strict=True):
        alone = als.user_vector(items, conf, user_id=user, history_weight=0.25)
        if alone is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)  # type: ignore[arg-type]
    assert together[3] is None and all(v is not None for v in together[:3])
