"""The small protocols the pipeline is built on, so tests run it with fakes and production wires
in models/ and features/ (the adapters live in ``serving/adapters.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd


class CandidateModel(Protocol):
    """The ALS candidate generator (``models`` ALSCandidateGenerator)."""

    def generate(
        self,
        user_id: int,
        n: int,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def score(
        self, user_ids: Sequence[int] | np.ndarray, product_ids: Sequence[int] | np.ndarray
    ) -> np.ndarray: ...

    # A user given by factors folded in from their newer events (serving/fold_in.py).
    def generate_for_vector(
        self,
        vector: np.ndarray,
        n: int,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def score_vector(self, vector: np.ndarray, product_ids: Sequence[int] | np.ndarray) -> np.ndarray: ...


class Ranker(Protocol):
    feature_names: list[str]

    def predict(self, X: pd.DataFrame) -> np.ndarray: ...


class Popularity(Protocol):
    def top(
        self,
        n: int,
        segment: str | None = None,
        candidates: Sequence[int] | None = None,
        exclude: Sequence[int] | None = None,
    ) -> Any: ...


class Policy(Protocol):
    """Arranges ranked candidates into slots: the business rules and the exploration slot."""

    def arrange(self, candidates: pd.DataFrame, k: int, rng: np.random.Generator) -> Any: ...


@dataclass(frozen=True)
class Models:
    """One loaded model set; swapped as a whole on reload, so a request sees one consistent set."""

    version: str
    feature_service: str
    als: CandidateModel
    ranker: Ranker | None
    popularity: Popularity
    policy: Policy
    # score -> P(purchase | pushed), fitted on the push log in training (models.calibration);
    # None: the plain logistic link, which orders correctly but has no meaningful level.
    push_calibration: Any = None
    # Confidence per event type (training's EventWeights, from the bundle's manifest): how events
    # sent since training are weighed to fold in a user the ALS does not hold. None: not folded.
    event_weights: dict[str, float] | None = None

    def push_probability(self, scores: np.ndarray) -> np.ndarray:
        if self.push_calibration is not None:
            return np.asarray(self.push_calibration.apply(scores), float)
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(scores, float)))

    @property
    def push_cold_rate(self) -> float | None:
        """P(purchase | pushed) of a user the ALS has no score for (the bundle's calibration
        measured it on the pushes to such users); None when the bundle holds no such figure."""
        rate = getattr(self.push_calibration, "cold_rate", None)
        return None if rate is None else float(rate)


class ModelSource(Protocol):
    """Loads the bundle an alias names. A source may also have ``version(alias) -> str``, the
    version label ``load`` would give, without loading (``MlflowModelSource``): a reload to the
    versions already serving then loads nothing."""

    def load(self, alias: str) -> Models: ...


def registry_versions(source: Any, champion: str, challenger: str | None) -> tuple[str, str | None] | None:
    """The (champion, challenger) versions the aliases name now, without loading a bundle; None
    when the source cannot tell (no ``version``, a bundle directory) or does not answer."""
    version = getattr(source, "version", None)
    if not callable(version):
        return None
    try:
        names = version(champion)
    except Exception:  # noqa: BLE001 - the full load that follows says what is wrong
        return None
    other = None
    if challenger is not None:
        with contextlib.suppress(Exception):  # no challenger: the load finds none either
            other = version(challenger)
    return None if names is None else (str(names), other)


class FeatureSource(Protocol):
    def online(
        self,
        user_id: int | None,
        product_ids: Sequence[int],
        stream_id: int | None,
        service: str,
        at: datetime | None = None,
    ) -> pd.DataFrame:
        """One row of the service's features per product. ``at``: the request's time, for the
        request-time features (None: now)."""
        ...

    def ping(self) -> bool: ...
