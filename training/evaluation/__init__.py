"""Offline A/B evaluation: ranking metrics, time-split replay, off-policy estimators, the report.

Importable by training (promotion gate) and pipelines (``slotcast evaluate``); imports only models
and features from the project.
"""

from training.evaluation.metrics import (
    PAD,
    Popularity,
    Relevance,
    catalog_coverage,
    hit_rate_at_k,
    map_at_k,
    mean_metrics,
    ndcg_at_k,
    novelty,
    per_user_metrics,
    precision_at_k,
    ranking_report,
    recall_at_k,
)

__all__ = [
    "PAD",
    "Popularity",
    "Relevance",
    "catalog_coverage",
    "hit_rate_at_k",
    "map_at_k",
    "mean_metrics",
    "ndcg_at_k",
    "novelty",
    "per_user_metrics",
    "precision_at_k",
    "ranking_report",
    "recall_at_k",
]
