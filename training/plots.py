"""Training plots as PNG files (matplotlib, Agg backend): logged as MLflow artifacts under plots/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _fig():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def feature_importance(importance: pd.Series, path: Path) -> Path:
    plt = _fig()
    imp = importance.sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(imp) + 1.5))
    ax.barh(imp.index.astype(str), imp.to_numpy(), color="#4477aa")
    ax.set_xlabel("total gain")
    ax.set_title("ranker feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration(y: np.ndarray, p: np.ndarray, path: Path, bins: int = 10) -> Path:
    """Observed rate against mean predicted probability in equal-count bins (test split)."""
    plt = _fig()
    order = np.argsort(p)
    chunks = [c for c in np.array_split(order, bins) if c.size]
    mp = [float(p[c].mean()) for c in chunks]
    obs = [float(y[c].mean()) for c in chunks]
    fig, ax = plt.subplots(figsize=(5, 5))
    hi = max(max(mp, default=0), max(obs, default=0), 1e-3) * 1.05
    ax.plot([0, hi], [0, hi], "--", color="grey", label="perfect")
    ax.plot(mp, obs, "o-", color="#cc6677", label="ranker")
    ax.set_xlabel("mean predicted P(convert)")
    ax.set_ylabel("observed conversion rate")
    ax.set_title("calibration on the test split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_at_k(curves: dict[str, list[float]], ks: list[int], path: Path, metric: str = "nDCG") -> Path:
    plt = _fig()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, values in curves.items():
        ax.plot(ks, values, marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel(f"{metric}@k (test split)")
    ax.set_title(f"{metric}@k per policy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curve(
    evals_result: dict[str, dict[str, list[float]]], path: Path, best_iteration: int | None = None
) -> Path:
    """Each recorded LightGBM metric per boosting round, train and valid side by side, and the
    iteration early stopping kept."""
    plt = _fig()
    metrics = sorted({m for d in evals_result.values() for m in d})
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5 * max(1, len(metrics)), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=False):
        for split, d in evals_result.items():
            if m in d:
                ax.plot(np.arange(1, len(d[m]) + 1), d[m], label=split)
        if best_iteration:
            ax.axvline(best_iteration, color="grey", linestyle="--", label=f"kept: {best_iteration} trees")
        ax.set_xlabel("boosting round")
        ax.set_title(m)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
