"""The candidate-generator verbs that ALS and popularity share (and that a new generator, say a
two-tower model, must offer to pass tests/models/test_candidate_contract.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class CandidateGenerator(Protocol):
    name: str

    def generate(
        self,
        user_id: int,
        n: int,
        candidates: npt.ArrayLike | None = None,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (product ids, scores), best first; an unknown user is a normal path."""
        ...

    def generate_many(self, user_ids: npt.ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(len(user_ids), n) product ids with -1 padding and scores with NaN padding."""
        ...

    def save(self, directory: str | Path) -> None: ...
