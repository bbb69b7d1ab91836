"""The MovieLens benchmark's second stage: a blend of the base scorers and a LightGBM ranker on it.

The blend is a linear combination of per-user z-scores (benchmarks/movielens_scores.py) with weights
chosen by coordinate ascent on the validation fold. The ranker is LightGBM lambdarank *boosted from
the blend* (the blend's z-score is the init score): in nested checks (the design replayed inside
the training part) a ranker that learned from scratch stayed 0.003-0.006 nDCG@10 below the blend,
so early stopping now starts at the blend and a tree is kept only if it helps held-out users.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.movielens_data import Fold, K
from benchmarks.movielens_scores import blend, feature_names, top_items

WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)


def tune_blend(
    folds: list[Fold], zs: list[dict[str, np.ndarray]], anchor: str = "sease"
) -> tuple[dict[str, float], float]:
    """Blend weights (``anchor`` fixed at 1) by two rounds of coordinate ascent on nDCG@10.

    The objective is the mean over ``folds`` (each with its scorers' z-scores in ``zs``): one fold's
    held-out part is too small, and weights tuned on one fold did not carry to a denser fit.
    """

    def score(weights: dict[str, float]) -> float:
        return float(
            np.mean(
                [
                    f.metrics(top_items(f, blend(z, weights), K))["ndcg@10"]
                    for f, z in zip(folds, zs, strict=True)
                ]
            )
        )

    weights = {name: 0.0 for name in zs[0]}
    weights[anchor] = 1.0
    best = score(weights)
    for _ in range(2):
        for name in zs[0]:
            if name == anchor:
                continue
            for w in WEIGHT_GRID:
                trial = {**weights, name: w}
                v = score(trial)
                if v > best + 1e-5:
                    best, weights = v, trial
    return {k: v for k, v in weights.items() if v}, best


def rerank(frame: pd.DataFrame, scores: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Top-K items per user (in ``users`` order) by ``scores`` within the candidate frame."""
    f = frame.assign(_s=scores).sort_values(["user", "_s"], ascending=[True, False], kind="stable")
    f["_pos"] = f.groupby("user").cumcount()
    top = f[f["_pos"] < K].pivot(index="user", columns="_pos", values="item")
    return top.reindex(users).fillna(-1).to_numpy(dtype=np.int64)


class BlendBoostedRanker:
    """LightGBM lambdarank whose starting score is the blend (``blend_z``), early-stopped on held-out users."""

    def __init__(self, params: dict[str, Any], rounds: int = 2000, patience: int = 100) -> None:
        self.params, self.rounds, self.patience = params, rounds, patience
        self.booster: Any = None
        self.features: list[str] = []

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> BlendBoostedRanker:
        import lightgbm as lgb

        self.features = feature_names(train)

        def dataset(f: pd.DataFrame, ref: Any = None) -> Any:
            group = f.groupby("user", sort=False).size().to_numpy()
            return lgb.Dataset(f[self.features], f["label"].astype(int), group=group,
                               init_score=f["blend_z"].to_numpy(), reference=ref)  # fmt: skip

        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [K],
            "seed": 42,
            "deterministic": True,
            "num_threads": 1,
            "verbosity": -1,
            **self.params,
        }
        dtr = dataset(train)
        self.booster = lgb.train(
            params,
            dtr,
            self.rounds,
            valid_sets=[dataset(valid, dtr)],
            callbacks=[lgb.early_stopping(self.patience, verbose=False)],
        )
        return self

    @property
    def best_iteration(self) -> int:
        return int(self.booster.best_iteration)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.booster.predict(frame[self.features], num_iteration=self.booster.best_iteration)
        return np.asarray(raw) + frame["blend_z"].to_numpy()


def split_users(frames: list[pd.DataFrame], folds: list[Fold], seed: int):  # type: ignore[no-untyped-def]
    """The ranker's fit / early-stop frames: the same 20% of users held out of every validation fold.

    Each fold's rows are the same users under another random split: offset ids keep queries apart.
    Returns (fit frame, held-out frame, relevant sets of the held-out queries).
    """
    rng = np.random.default_rng(seed)
    users = np.unique(frames[0]["user"])
    hold = set(rng.choice(users, size=len(users) // 5, replace=False).tolist())
    tr_parts, va_parts, va_rel = [], [], []
    for j, (f, fold) in enumerate(zip(frames, folds, strict=True)):
        is_hold = f["user"].isin(hold)
        tr_parts.append(f.loc[~is_hold].assign(user=f["user"] + j * 10**6))
        va_parts.append(f.loc[is_hold].assign(user=f["user"] + j * 10**6))
        va_rel += [set(g) for _, g in fold.held[fold.held["user"].isin(hold)].groupby("user")["item"]]
    return pd.concat(tr_parts, ignore_index=True), pd.concat(va_parts, ignore_index=True), va_rel


def tune_ranker(tr: pd.DataFrame, va: pd.DataFrame, va_rel: list[set[int]], trials: int, seed: int):  # type: ignore[no-untyped-def]
    """Optuna search of the ranker on the held-out validation users (nDCG@10 over all their items)."""
    import optuna

    from training.evaluation.metrics import ndcg_at_k

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    va_users = np.unique(va["user"])
    base = float(ndcg_at_k(rerank(va, va["blend_z"].to_numpy(), va_users), va_rel, K))

    def objective(trial: optuna.Trial) -> float:
        params = {
            "num_leaves": trial.suggest_int("num_leaves", 3, 31, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 400, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", 0.1, 100.0, log=True),
        }
        r = BlendBoostedRanker(params).fit(tr, va)
        return float(ndcg_at_k(rerank(va, r.predict(va), va_users), va_rel, K))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, show_progress_bar=sys.stderr.isatty())
    return dict(study.best_params), float(study.best_value), base
