"""Early stopping after the fact, for a ranker fitted without a validation set.

LightGBM's Dask estimators take no validation set, so the cluster fits all ``n_estimators`` trees
and the tree count is chosen here, in process, on the time-later validation split: the metric
LightGBM's own early stopping watches in ``models.ranker.LightGBMRanker.fit`` (the first one it
records: binary log loss, or nDCG at the first ``eval_at``), the same patience
(``early_stopping_rounds``, strict improvement), the same ``best_iteration``. Each tree's raw
scores are predicted once and summed, so a curve of T trees costs T one-tree passes, not T^2/2.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.errors import ModelFitError
from models.ranker import LightGBMRanker, RankerConfig
from models.ranker_dataset import check_groups, check_labels, select_features

log = logging.getLogger(__name__)

LIGHTGBM_DEFAULT_EVAL_AT = [1, 2, 3, 4, 5]  # what LightGBM uses when eval_at is empty


def stopping_metric(config: RankerConfig) -> tuple[str, bool]:
    """The metric in-process early stopping watches, as LightGBM names it, and whether higher is better."""
    if config.objective == "binary":
        return "binary_logloss", False
    return f"ndcg@{(config.eval_at or LIGHTGBM_DEFAULT_EVAL_AT)[0]}", True


def stopping_point(curve: npt.ArrayLike, higher_is_better: bool, patience: int | None) -> tuple[int, int]:
    """(best iteration, iterations seen) on ``curve`` (value after 1, 2, ... trees), 1-based.

    LightGBM's rule: an iteration is the new best only if strictly better; stop once ``patience``
    iterations pass without one. With no patience every tree is kept, as in process.
    """
    values = np.asarray(curve, dtype=np.float64)
    if values.size == 0:
        raise ModelFitError("no validation curve to stop on: the ranker has no trees")
    if not patience:
        return int(values.size), int(values.size)
    sign = 1.0 if higher_is_better else -1.0
    best, best_value = 0, sign * values[0]
    for i in range(1, values.size):
        if sign * values[i] > best_value:
            best, best_value = i, sign * values[i]
        elif i - best >= patience:
            return best + 1, i + 1
    return best + 1, int(values.size)


def validation_curves(
    ranker: LightGBMRanker, X: pd.DataFrame, y: npt.ArrayLike, group: npt.ArrayLike | None = None
) -> dict[str, list[float]]:
    """Every metric in-process training records on the validation set, after each tree."""
    Xp = select_features(X, ranker.feature_names, ranker.categorical_features)
    yv = check_labels(y, len(Xp), "valid y", ranker.objective)
    gv = check_groups(group, len(Xp), "valid group", ranker.objective)
    booster = ranker.booster
    trees = booster.current_iteration()
    if trees == 0:
        raise ModelFitError("the ranker has no trees to choose from")
    margin = ranker.base_margin(Xp)  # the baseline the trees were boosted from (init score)
    raw = np.zeros(len(Xp), dtype=np.float64) if margin is None else margin.copy()
    if ranker.objective == "binary":
        curves: dict[str, list[float]] = {"binary_logloss": [], "auc": []}
    else:
        ks = ranker.config.eval_at or LIGHTGBM_DEFAULT_EVAL_AT
        curves = {f"ndcg@{k}": [] for k in ks}
        assert gv is not None  # check_groups requires it for lambdarank
        ndcg = _NdcgAtK(yv, gv, ks)
    for i in range(trees):
        raw += booster.predict(Xp, start_iteration=i, num_iteration=1, raw_score=True)
        if ranker.objective == "binary":
            curves["binary_logloss"].append(_logloss(yv, raw))
            curves["auc"].append(_auc(yv, raw))
        else:
            for k, v in ndcg(raw).items():
                curves[f"ndcg@{k}"].append(v)
    return curves


def choose_iteration(
    ranker: LightGBMRanker, X: pd.DataFrame, y: npt.ArrayLike, group: npt.ArrayLike | None = None
) -> LightGBMRanker:
    """Set ``ranker.best_iteration`` and ``evals_result['valid']`` from the validation split and cut
    the booster to that many trees: the ranker then predicts and saves as an in-process fit that
    stopped there (whose booster LightGBM also cuts to its best iteration)."""
    import lightgbm as lgb

    curves = validation_curves(ranker, X, y, group)
    name, higher = stopping_metric(ranker.config)
    best, seen = stopping_point(curves[name], higher, ranker.config.early_stopping_rounds)
    fitted = ranker.booster.current_iteration()
    if best < fitted:
        ranker.booster = lgb.Booster(model_str=ranker.booster.model_to_string(num_iteration=best))
    ranker.booster.best_iteration = best
    ranker.best_iteration = best
    # As in process: the curve up to where early stopping would have stopped fitting.
    ranker.evals_result = {"valid": {m: v[:seen] for m, v in curves.items()}}
    log.info(
        "post-hoc early stopping: best iteration %d of %d fitted (valid %s %.5f, patience %s)",
        best, fitted, name, curves[name][best - 1], ranker.config.early_stopping_rounds,
    )  # fmt: skip
    return ranker


def _logloss(y: np.ndarray, raw: np.ndarray) -> float:
    """LightGBM's binary_logloss: sigmoid of the raw score, each point's loss floored at 1e-15."""
    p = 1.0 / (1.0 + np.exp(-raw))
    q = np.where(y > 0, p, 1.0 - p)
    return float(np.mean(-np.log(np.maximum(q, 1e-15))))


def _auc(y: np.ndarray, raw: np.ndarray) -> float:
    from training.fit import classification_metrics  # the rank statistic the run logs

    # A single-class set has no AUC there; LightGBM records 1.0 for it.
    return classification_metrics((y > 0).astype(np.float64), raw).get("auc", 1.0)


class _NdcgAtK:
    """LightGBM's ndcg@k: gains 2^label - 1, discount 1/log2(rank + 1), ties kept in row order
    (a stable sort), a query with no relevant row counts 1, the mean over queries."""

    def __init__(self, y: np.ndarray, group: np.ndarray, ks: list[int]) -> None:
        self.ks = ks
        self.qid = np.repeat(np.arange(group.size), group)
        self.start = np.concatenate([[0], np.cumsum(group)[:-1]])
        self.gain = np.exp2(y) - 1.0
        self.discount = 1.0 / np.log2(np.arange(int(group.max())) + 2.0)
        ideal = self.gain[np.lexsort((-self.gain, self.qid))]
        self.ideal = {k: self._dcg(ideal, k) for k in ks}

    def _dcg(self, gains_in_rank_order: np.ndarray, k: int) -> np.ndarray:
        rank = np.arange(self.qid.size) - self.start[self.qid]
        keep = rank < k
        return np.bincount(
            self.qid[keep], weights=gains_in_rank_order[keep] * self.discount[rank[keep]],
            minlength=self.start.size,
        )  # fmt: skip

    def __call__(self, raw: np.ndarray) -> dict[int, float]:
        order = np.lexsort((-raw, self.qid))  # by query, then score descending, stable on ties
        ranked = self.gain[order]
        out = {}
        for k in self.ks:
            ideal = self.ideal[k]
            dcg = self._dcg(ranked, k)
            ndcg = np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 1.0)
            out[k] = float(ndcg.mean())
        return out
