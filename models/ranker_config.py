"""The LightGBM ranker's hyperparameters (``RankerConfig``); ``models.ranker.LightGBMRanker`` fits
and serves with them, and ``models/ranker_persistence.py`` saves them beside the trees."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Objective = Literal["binary", "lambdarank"]


class RankerConfig(BaseModel):
    """LightGBM hyperparameters; ``model_dump()`` goes into MLflow params."""

    model_config = ConfigDict(extra="forbid")

    objective: Objective = "binary"
    num_leaves: int = Field(default=31, ge=2)
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    n_estimators: int = Field(default=500, ge=1)
    early_stopping_rounds: int | None = Field(default=50, ge=1)
    min_child_samples: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    bagging_fraction: float = Field(default=1.0, gt=0.0, le=1.0)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0.0)
    max_depth: int = -1
    eval_at: list[int] = Field(default_factory=lambda: [5, 10])
    categorical_features: list[str] = Field(default_factory=list)
    random_state: int = 42
    num_threads: int = Field(default=0, ge=0)
    # Boost from a baseline: a logistic fit of the label on this one feature is every row's starting
    # score (LightGBM's init score), so the trees learn only what improves on it on the valid split
    # and early stopping starts from it (for example the bundle's popularity, ``popularity_score``).
    base_feature: str | None = None

    def lgb_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {
            "objective": self.objective,
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_depth": self.max_depth,
            "seed": self.random_state,
            "deterministic": True,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }
        if self.objective == "binary":
            p["metric"] = ["binary_logloss", "auc"]
        else:
            p["metric"] = ["ndcg"]
            p["eval_at"] = list(self.eval_at)
        return p
