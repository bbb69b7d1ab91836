"""Each known user's training row of the ALS confidence matrix, kept with the model.

ALS factors are a least-squares solution over a user's whole row. To fold a known user's events
newer than the model into their factors (implicit's ``recalculate_user``), serving needs that row:
the new events are added to it and the user's factors solved again, the item factors fixed. Without
it, a known user's carousel ignores what they did since training until the next run.

Stored as ``als/history.npz`` (CSR arrays, no pickle) beside the factors, with the time the
confidences were computed at (``until_us``: events after it are new to the model). It names users
only by row, in the order of ``als/users.npz``, so erasing a user's factor row erases their history
row with it (``ALSCandidateGenerator.drop_users``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from models._io import read_npz
from models.errors import IncompatibleBundleError

FILE = "history.npz"


class UserHistory:
    """The users x items confidence rows an ALS model was fitted on (read-only once built)."""

    def __init__(self, matrix: sp.csr_matrix, until_us: int | None = None, owned: bool = False) -> None:
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)  # no copy when it already is one
        self.until_us = until_us
        self._owned = owned  # False: the arrays may be the caller's (the matrix fitted on)

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def row(self, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(item rows, confidences) of user row ``u``; zeroed entries (a forgotten user) left out."""
        m = self.matrix
        lo, hi = m.indptr[u], m.indptr[u + 1]
        items, conf = m.indices[lo:hi], m.data[lo:hi]
        keep = conf != 0
        return items[keep].astype(np.int64), conf[keep]

    def keep_rows(self, keep: np.ndarray) -> UserHistory:
        """The history of the users whose rows ``keep`` (a boolean mask) marks, in order."""
        return UserHistory(self.matrix[np.asarray(keep, bool)], self.until_us, owned=True)

    def zero_rows(self, rows: np.ndarray) -> None:
        """Zero these users' confidences (a deletion while serving: nothing of their history is
        folded in again). In place, but on a copy first when the arrays may be the caller's."""
        if not self._owned:
            self.matrix, self._owned = self.matrix.copy(), True
        m = self.matrix
        for u in np.asarray(rows, np.int64):
            m.data[m.indptr[u] : m.indptr[u + 1]] = 0.0

    def save(self, path: Path) -> None:
        m = self.matrix
        np.savez(
            path, indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
            data=m.data.astype(np.float32), shape=np.asarray(m.shape, np.int64),
            until_us=np.asarray(-1 if self.until_us is None else self.until_us, np.int64),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path, shape: tuple[int, int]) -> UserHistory:
        """Read and check it against the model's (users, items); IncompatibleBundleError otherwise."""
        a = read_npz(path, required=("indptr", "indices", "data", "shape", "until_us"))
        got = tuple(int(x) for x in a["shape"].ravel())
        if got != tuple(shape):
            raise IncompatibleBundleError(f"{path} holds {got} (users, items), the model {tuple(shape)}")
        indptr, indices, data = a["indptr"], a["indices"], a["data"]
        ok = (
            indptr.ndim == indices.ndim == data.ndim == 1 and indptr.size == shape[0] + 1
            and indptr[0] == 0 and indptr[-1] == indices.size == data.size
            and bool(np.all(np.diff(indptr) >= 0))
            and (indices.size == 0 or (int(indices.min()) >= 0 and int(indices.max()) < shape[1]))
            and bool(np.isfinite(data).all())
        )  # fmt: skip
        if not ok:
            raise IncompatibleBundleError(f"{path} is not a valid CSR matrix of finite confidences")
        until = int(a["until_us"])
        matrix = sp.csr_matrix((data.astype(np.float32), indices.astype(np.int32), indptr), shape=shape)
        return cls(matrix, None if until < 0 else until, owned=True)
