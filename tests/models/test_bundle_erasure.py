"""Erasing users from a saved bundle: their ALS rows and segment labels go, nothing else changes,
and the rewritten bundle verifies and loads like any other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import ALSCandidateGenerator, ALSConfig, Bundle, IncompatibleBundleError, PopularityModel
from models.bundle_erasure import USER_FILES, erase_users, held_users
from tests.models.conftest import Checkerboard, make_checkerboard


@pytest.fixture(scope="module")
def board() -> Checkerboard:
    return make_checkerboard(seed=5)


@pytest.fixture()
def saved(board: Checkerboard, tmp_path: Path) -> Path:
    als = ALSCandidateGenerator(ALSConfig(factors=2, iterations=10, num_threads=1)).fit(
        board.matrix, board.users, board.items
    )
    pop = PopularityModel.from_user_items(board.matrix, board.users, board.items, board.user_group)
    return Bundle.create(als, pop, None, "ranker_v1").save(tmp_path / "bundle")


def _bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_erased_users_leave_no_trace_and_the_rest_is_unchanged(saved: Path, board: Checkerboard) -> None:
    before = Bundle.load(saved)
    gone = [int(board.users.ids[0]), int(board.users.ids[7])]
    stranger = 999_999  # in no bundle
    assert set(gone) <= set(held_users(saved).tolist())

    assert erase_users(saved, [*gone, stranger]) == 4  # two ALS rows, two segment labels

    after = Bundle.load(saved)  # checksums, user count and versions all verify
    assert after.manifest.n_users == before.manifest.n_users - 2
    assert not set(gone) & set(after.als.users.ids.tolist())
    assert not set(gone) & set(held_users(saved).tolist())
    assert [after.popularity.segment_of(u) for u in gone] == [None, None]
    rest = np.setdiff1d(board.users.ids, gone)
    np.testing.assert_array_equal(
        after.als.user_factors[after.als.users.index(rest)],
        before.als.user_factors[before.als.users.index(rest)],
    )
    np.testing.assert_array_equal(after.als.item_factors, before.als.item_factors)
    assert [after.popularity.segment_of(int(u)) for u in rest] == [board.user_group[int(u)] for u in rest]
    assert after.popularity.top(5)[0].tolist() == before.popularity.top(5)[0].tolist()
    assert (
        after.popularity.top(5, segment="A")[0].tolist() == before.popularity.top(5, segment="A")[0].tolist()
    )
    ids, _ = after.als.generate(gone[0], 3)  # an unknown user now: the caller falls back
    assert ids.size == 0 and before.als.generate(gone[0], 3)[0].size == 3

    files = _bytes(saved)
    assert erase_users(saved, gone) == 0  # nothing left to erase: not a byte rewritten
    assert _bytes(saved) == files


def test_a_corrupted_bundle_is_refused_and_left_as_it_was(saved: Path, board: Checkerboard) -> None:
    users = saved / "als" / "users.npz"
    users.write_bytes(users.read_bytes()[:-8] + b"\0" * 8)
    files = _bytes(saved)
    with pytest.raises(IncompatibleBundleError, match="checksum"):
        erase_users(saved, [int(board.users.ids[0])])
    assert _bytes(saved) == files


def test_held_users_reads_a_partial_download(saved: Path, board: Checkerboard, tmp_path: Path) -> None:
    part = tmp_path / "ids"
    for rel in USER_FILES:
        (part / rel).parent.mkdir(parents=True)
        (part / rel).write_bytes((saved / rel).read_bytes())
    both = held_users(part)  # the ALS's ids, then the segment map's
    np.testing.assert_array_equal(both, np.concatenate([board.users.ids, np.sort(board.users.ids)]))
    (part / USER_FILES[1]).unlink()
    np.testing.assert_array_equal(held_users(part), board.users.ids)
    assert held_users(tmp_path / "nothing").size == 0
