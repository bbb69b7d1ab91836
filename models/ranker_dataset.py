"""The ranker's data checks: the feature list pinned at fit (names and order, categorical
columns), the frame selected and ordered by it for every fit and predict, and the labels and
query groups checked against the objective. Every problem raises ModelFitError (fitting) or
FeatureMismatchError (a frame that does not fit the pinned list) naming what is wrong."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.errors import FeatureMismatchError, ModelFitError
from models.ranker_config import Objective


def pinned_names(X: pd.DataFrame) -> list[str]:
    """``X``'s column names in order, the feature list a fit pins; refuses an empty frame and
    duplicate names."""
    if not isinstance(X, pd.DataFrame):
        raise ModelFitError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ModelFitError(f"cannot fit the ranker on an empty frame (shape {X.shape})")
    names = [str(c) for c in X.columns]
    if len(set(names)) != len(names):
        raise ModelFitError(f"duplicate feature names: {sorted({n for n in names if names.count(n) > 1})}")
    return names


def pinned_categoricals(X: pd.DataFrame, names: list[str], declared: list[str]) -> list[str]:
    """The categorical features in ``names`` order: those ``declared`` in the config and the
    columns of pandas category dtype."""
    cats = set(declared) | {c for c in names if isinstance(X[c].dtype, pd.CategoricalDtype)}
    unknown = sorted(cats - set(names))
    if unknown:
        raise ModelFitError(f"categorical_features {unknown} are not columns of X")
    return [c for c in names if c in cats]


def select_features(
    X: pd.DataFrame, feature_names: list[str], categorical_features: list[str]
) -> pd.DataFrame:
    """Select and order the pinned features; categorical columns as pandas categories."""
    if not isinstance(X, pd.DataFrame):
        raise FeatureMismatchError(f"features must be a pandas DataFrame, got {type(X).__name__}")
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise FeatureMismatchError(
            f"the feature frame lacks {len(missing)} feature(s) the ranker was trained on: {missing}"
        )
    twice = sorted({str(c) for c in X.columns[X.columns.duplicated()]} & set(feature_names))
    if twice:
        raise FeatureMismatchError(f"the feature frame holds feature(s) {twice} more than once")
    out = X.loc[:, feature_names].copy()
    for c in categorical_features:
        if not isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype("category")
    bad = [c for c in feature_names if c not in categorical_features and out[c].dtype == object]
    if bad:
        raise FeatureMismatchError(f"features {bad} are text; declare them in categorical_features")
    return out


def check_labels(y: npt.ArrayLike, n: int, what: str, objective: Objective) -> np.ndarray:
    """``y`` as float64 labels for ``n`` rows: 0/1 (both present in the training ``y``) for the
    binary objective, non-negative integer relevance for lambdarank."""
    arr = np.asarray(y, dtype=np.float64).ravel()
    if arr.size != n:
        raise ModelFitError(f"{what} has {arr.size} labels for {n} rows")
    if not np.isfinite(arr).all():
        raise ModelFitError(f"{what} holds NaN or infinite labels")
    if objective == "binary":
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ModelFitError(f"{what} must be 0/1 for the binary objective")
        if what == "y" and np.unique(arr).size < 2:
            raise ModelFitError(f"{what} has a single class ({arr[0]:g}); there is nothing to learn")
    elif (arr < 0).any() or (arr != np.round(arr)).any():
        raise ModelFitError(f"{what} must be non-negative integer relevance for lambdarank")
    return arr


def check_groups(group: npt.ArrayLike | None, n: int, what: str, objective: Objective) -> np.ndarray | None:
    """Query sizes in row order, summing to ``n``; required for lambdarank."""
    if group is None:
        if objective == "lambdarank":
            raise ModelFitError(f"{what} (query sizes) is required for the lambdarank objective")
        return None
    g = np.asarray(group, dtype=np.int64).ravel()
    if (g <= 0).any() or int(g.sum()) != n:
        raise ModelFitError(f"{what} sizes must be positive and sum to {n} rows, got sum {int(g.sum())}")
    return g
