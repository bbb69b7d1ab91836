"""Int64 external ids <-> dense 0..n-1 indices, the bridge between the tables and the factor rows."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from models._io import read_npz
from models.errors import IncompatibleBundleError

_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


def _as_array(ids: npt.ArrayLike | Iterable[int]) -> np.ndarray:
    """``np.asarray(ids)``, except that a list mixing ints >= 2**63 with others stays ints (object):
    numpy makes it float64, where -2**63 stands for 2**63 + 5 and int64 ids above 2**53 lose digits."""
    raw = np.asarray(ids)
    if raw.dtype.kind == "f" and isinstance(ids, (list, tuple)):
        obj = np.asarray(ids, dtype=object)
        if all(isinstance(x, (int, np.integer)) for x in obj.flat):
            return obj
    return raw


def as_int64(ids: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``ids`` as int64, and a mask of those outside int64 (set to 0 there; None when every id fits).

    ``np.asarray(ids, dtype=np.int64)`` raises OverflowError for a Python int >= 2**63 and wraps a
    uint64 silently (2**64 - 1 becomes -1); such an id can be no id of a vocabulary: it is unknown.
    Every model lookup goes through here (or ``IdVocab.index``, or ``ids_within_int64``).
    """
    raw = _as_array(ids)
    if raw.dtype.kind == "u" and raw.dtype.itemsize >= 8:
        outside = raw > _INT64_MAX
        return np.where(outside, 0, raw).astype(np.int64), (outside if outside.any() else None)
    if raw.dtype == object:
        flat = raw.ravel()
        outside = np.fromiter(
            (isinstance(x, (int, np.integer)) and not _INT64_MIN <= int(x) <= _INT64_MAX for x in flat),
            bool,
            flat.size,
        ).reshape(raw.shape)
        if outside.any():
            return np.where(outside, 0, raw).astype(np.int64), outside
    return raw.astype(np.int64, copy=False), None


def ids_within_int64(ids: npt.ArrayLike) -> np.ndarray:
    """The ids that fit in int64, flattened, as int64: an id beyond int64 names no user or product a
    model holds, so it drops out of a candidate list, an exclusion or a deletion."""
    q, outside = as_int64(ids)
    return (q if outside is None else q[~outside]).ravel()


def int64_ids(ids: npt.ArrayLike, what: str = "ids") -> np.ndarray:
    """``ids`` as int64 for a model to hold (fit on, or answer with): a ValueError names the first id
    beyond int64 (a hashed uint64 id), where ``as_int64`` would call it unknown."""
    q, outside = as_int64(ids)
    if outside is not None:
        raise ValueError(f"{what} must fit in int64; got {_as_array(ids)[outside].flat[0]}")
    return q


class IdVocab:
    """An ordered set of int64 ids; position ``i`` holds the id of row ``i`` of a factor matrix.

    Lookups are vectorised with a sorted copy and ``searchsorted`` (no Python dict), so mapping a
    million ids costs one sort. Unknown ids map to -1, never raise.
    """

    __slots__ = ("_ids", "_order", "_sorted")

    def __init__(self, ids: Iterable[int] | npt.ArrayLike) -> None:
        arr = _as_array(ids if not isinstance(ids, (set, frozenset)) else sorted(ids))
        if arr.ndim != 1:
            raise ValueError(f"IdVocab ids must be one-dimensional, got shape {arr.shape}")
        ints = arr.dtype.kind in "iu" or (
            arr.dtype == object and all(isinstance(x, (int, np.integer)) for x in arr)
        )
        if arr.size and not ints:
            raise ValueError(f"IdVocab ids must be integers, got dtype {arr.dtype}")
        # a silent cast would wrap 2**64 - 1 to -1, the "unknown" index, and 2**63 to -2**63
        self._ids = int64_ids(arr, "IdVocab ids").copy()
        self._order: np.ndarray | None = None
        self._sorted: np.ndarray | None = None
        self._build_lookup()

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> IdVocab:
        """Vocabulary of the distinct ids in ``values``, in ascending order."""
        return cls(np.unique(int64_ids(values, "IdVocab ids")))

    def _build_lookup(self) -> None:
        order = np.argsort(self._ids, kind="stable")
        sorted_ids = self._ids[order]
        if sorted_ids.size > 1:
            dup = sorted_ids[1:] == sorted_ids[:-1]
            if dup.any():
                first = int(sorted_ids[1:][dup][0])
                raise ValueError(f"IdVocab ids must be unique; id {first} appears more than once")
        self._order, self._sorted = order, sorted_ids

    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (a read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return int(self._ids.size)

    def __contains__(self, external_id: object) -> bool:
        try:
            return bool(self.index([int(external_id)])[0] >= 0)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdVocab) and np.array_equal(self._ids, other._ids)

    def __repr__(self) -> str:
        return f"IdVocab(n={len(self)})"

    def index(self, ids: npt.ArrayLike) -> np.ndarray:
        """Dense indices of ``ids`` (int64 array, same shape), -1 where an id is unknown."""
        q, outside = as_int64(ids)
        assert self._sorted is not None and self._order is not None
        if self._sorted.size == 0:
            return np.full(q.shape, -1, dtype=np.int64)
        pos = np.atleast_1d(np.searchsorted(self._sorted, q))  # a 0-d query comes back 0-d below
        pos[pos == self._sorted.size] = 0  # past the end: not found (checked below); no np.clip wrapper
        out = self._order[pos]
        out[self._sorted[pos] != q.reshape(pos.shape)] = -1
        if outside is not None:
            out[outside.reshape(pos.shape)] = -1
        return out.reshape(q.shape)

    def index_of(self, external_id: int) -> int:
        """Dense index of one id, -1 when unknown."""
        return int(self.index(np.asarray([external_id]))[0])

    def save(self, path: str | Path) -> None:
        np.savez(Path(path), ids=self._ids)

    @classmethod
    def load(cls, path: str | Path) -> IdVocab:
        path = Path(path)
        ids = read_npz(path, required=("ids",))["ids"]
        try:
            return cls(ids)
        except ValueError as exc:
            raise IncompatibleBundleError(f"vocabulary file {path} is invalid: {exc}") from exc
