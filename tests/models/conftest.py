"""Small worlds whose right answers are known, shared by the model tests."""

from __future__ import annotations

import os
from dataclasses import dataclass

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
import scipy.sparse as sp

from models import IdVocab


@dataclass(frozen=True)
class Checkerboard:
    """Two groups of users who only ever touch their own group's products.

    External ids are deliberately not 0..n-1 (users 1000, 1010, ...; products 500..) so that a
    model that confuses indices with ids fails.
    """

    matrix: sp.csr_matrix
    users: IdVocab
    items: IdVocab
    user_group: dict[int, str]  # user id -> "A" | "B"
    item_group: dict[int, str]  # product id -> "A" | "B"

    def seen(self, user_id: int) -> np.ndarray:
        row = self.users.index_of(user_id)
        return self.items.ids[self.matrix[row].indices]


def make_checkerboard(
    users_per_group: int = 30, items_per_group: int = 12, per_user: int = 6, seed: int = 0
) -> Checkerboard:
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for u in range(2 * users_per_group):
        g = u % 2
        chosen = rng.choice(
            np.arange(g * items_per_group, (g + 1) * items_per_group), per_user, replace=False
        )
        rows += [u] * per_user
        cols += chosen.tolist()
    n_u, n_i = 2 * users_per_group, 2 * items_per_group
    data = rng.integers(1, 4, size=len(rows)).astype(np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n_u, n_i))
    users = IdVocab(1000 + 10 * np.arange(n_u))
    items = IdVocab(500 + np.arange(n_i))
    user_group = {int(users.ids[u]): "AB"[u % 2] for u in range(n_u)}
    item_group = {int(items.ids[i]): "AB"[i // items_per_group] for i in range(n_i)}
    return Checkerboard(matrix, users, items, user_group, item_group)


@pytest.fixture(scope="session")
def checkerboard() -> Checkerboard:
    return make_checkerboard()
