"""One contract every candidate generator passes on a checkerboard whose right answer is known:
users of group A are recommended A products, never B. A new generator's test class is three
lines: the contract, a ``build`` and its quality ``floor``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from models import ALSCandidateGenerator, ALSConfig, CandidateGenerator, PopularityModel
from tests.models.conftest import Checkerboard


class CandidateGeneratorContract:
    """Not collected itself (no Test prefix); subclasses set ``build`` and ``floor``."""

    build: ClassVar[Any]  # staticmethod: Checkerboard -> fitted generator
    floor: ClassVar[float]  # minimal share of own-group products in top-n of unseen products
    n: ClassVar[int] = 4

    def _fit(self, board: Checkerboard) -> Any:
        return type(self).build(board)

    def test_recommends_own_group(self, checkerboard: Checkerboard) -> None:
        model = self._fit(checkerboard)
        assert isinstance(model, CandidateGenerator)
        hits = total = 0
        for uid in checkerboard.users.ids:
            ids, _ = model.generate(int(uid), self.n, exclude=checkerboard.seen(int(uid)))
            assert len(ids) == self.n
            hits += sum(checkerboard.item_group[int(i)] == checkerboard.user_group[int(uid)] for i in ids)
            total += len(ids)
        assert hits / total >= self.floor, f"own-group share {hits / total:.3f} below floor {self.floor}"

    def test_scores_descend_and_respect_candidates_and_exclude(self, checkerboard: Checkerboard) -> None:
        model = self._fit(checkerboard)
        uid = int(checkerboard.users.ids[0])
        cands = checkerboard.items.ids[::2]
        exclude = cands[:3]
        ids, scores = model.generate(uid, 50, candidates=cands, exclude=exclude)
        assert set(ids.tolist()) <= set(cands.tolist()) - set(exclude.tolist())
        assert len(ids) == len(cands) - len(exclude)
        assert np.all(np.diff(scores) <= 1e-6)

    def test_generate_many_agrees_with_generate(self, checkerboard: Checkerboard) -> None:
        model = self._fit(checkerboard)
        users = np.concatenate([checkerboard.users.ids[:5], [987654321]])
        ids, scores = model.generate_many(users, 3)
        assert ids.shape == scores.shape == (6, 3)
        for row, uid in enumerate(users):
            one, one_scores = model.generate(int(uid), 3)
            np.testing.assert_array_equal(ids[row, : one.size], one)
            np.testing.assert_allclose(scores[row, : one.size], one_scores, rtol=1e-5)
            assert (ids[row, one.size :] == -1).all()

    def test_unknown_user_is_a_normal_path(self, checkerboard: Checkerboard) -> None:
        model = self._fit(checkerboard)
        ids, scores = model.generate(987654321, 5)  # must not raise
        assert len(ids) == len(scores) <= 5

    def test_save_load_round_trip(self, checkerboard: Checkerboard, tmp_path: Path) -> None:
        model = self._fit(checkerboard)
        model.save(tmp_path / "m")
        loaded = type(model).load(tmp_path / "m")
        for uid in checkerboard.users.ids[:10]:
            a, sa = model.generate(int(uid), 5)
            b, sb = loaded.generate(int(uid), 5)
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(sa, sb)


class TestALSContract(CandidateGeneratorContract):  # rank 2 is the board's true rank
    build = staticmethod(
        lambda b: ALSCandidateGenerator(ALSConfig(factors=2, iterations=15, num_threads=1)).fit(
            b.matrix, b.users, b.items
        )
    )
    floor = 1.0


class TestSegmentPopularityContract(CandidateGeneratorContract):
    build = staticmethod(lambda b: PopularityModel.from_user_items(b.matrix, b.users, b.items, b.user_group))
    floor = 1.0


def test_global_popularity_cannot_pass_the_checkerboard(checkerboard: Checkerboard) -> None:
    """The contract has teeth: a non-personalised model scores about one half, far below 1.0."""
    model = PopularityModel.from_user_items(checkerboard.matrix, checkerboard.users, checkerboard.items)
    hits = total = 0
    for uid in checkerboard.users.ids:
        ids, _ = model.generate(int(uid), 4, exclude=checkerboard.seen(int(uid)))
        hits += sum(checkerboard.item_group[int(i)] == checkerboard.user_group[int(uid)] for i in ids)
        total += len(ids)
    assert 0.3 <= hits / total <= 0.7
