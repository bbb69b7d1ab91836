from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import IdVocab, IncompatibleBundleError


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), unique=True, max_size=200))
def test_index_inverts_ids(ids: list[int]) -> None:
    v = IdVocab(ids)
    np.testing.assert_array_equal(v.index(ids), np.arange(len(ids)))
    assert len(v) == len(ids)


def test_unknown_ids_map_to_minus_one() -> None:
    v = IdVocab([30, 10, 20])
    np.testing.assert_array_equal(v.index([10, 99, 30, -5]), [1, -1, 0, -1])
    assert v.index_of(20) == 2 and v.index_of(21) == -1
    assert 10 in v and 11 not in v
    assert IdVocab([]).index([1, 2]).tolist() == [-1, -1]


def test_duplicates_and_non_integers_are_refused() -> None:
    with pytest.raises(ValueError, match="id 7 appears more than once"):
        IdVocab([7, 1, 7])
    with pytest.raises(ValueError, match="integers"):
        IdVocab(np.array([1.5, 2.0]))


def test_save_load_round_trip(tmp_path: Path) -> None:
    v = IdVocab(np.array([2**40, -3, 17], dtype=np.int64))
    v.save(tmp_path / "v.npz")
    assert IdVocab.load(tmp_path / "v.npz") == v


def test_load_names_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "v.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(IncompatibleBundleError, match="v.npz"):
        IdVocab.load(bad)
    with pytest.raises(IncompatibleBundleError, match="missing"):
        IdVocab.load(tmp_path / "absent.npz")


def test_ids_outside_int64_are_unknown_never_wrapped() -> None:
    # regression: a uint64 2**64 - 1 was cast to -1 (found when -1 is an id) and a Python int
    # >= 2**63 raised OverflowError from a lookup or ``in``
    v = IdVocab([-1, 5, 2**63 - 1, -(2**63)])
    assert v.index(np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)).tolist() == [-1, -1, 1]
    assert v.index([2**63, 2**64, 5]).tolist() == [-1, -1, 1]
    assert v.index_of(2**63) == -1 and 2**63 not in v and 2**63 - 1 in v
    with pytest.raises(ValueError, match="int64"):
        IdVocab(np.array([1, 2**64 - 1], dtype=np.uint64))
