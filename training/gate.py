"""The promotion gate: a paired bootstrap over test queries of (challenger - champion) metric.

Both models are scored on the SAME queries, so the per-query difference removes the query-to-query
variance that would swamp an unpaired comparison. The challenger wins only if the whole 95%
interval of the mean difference lies above 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GateResult:
    """The figures behind a promotion decision (all logged to MLflow)."""

    metric: str
    n_queries: int
    champion_mean: float
    challenger_mean: float
    mean_diff: float
    ci_low: float
    ci_high: float
    promote: bool
    reason: str

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return asdict(self)


def paired_bootstrap(
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Mean of ``challenger - champion`` and its percentile bootstrap (1-alpha) interval.

    Queries where either value is NaN (nothing relevant) are dropped pairwise.
    """
    a = np.asarray(champion, dtype=np.float64)
    b = np.asarray(challenger, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need equal shapes, got {a.shape} and {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = b[ok] - a[ok]
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    # Resample in blocks so memory stays bounded for large test splits.
    means = np.empty(n_boot)
    block = max(1, 2_000_000 // d.size)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(lo), float(hi)


def decide(
    champion: np.ndarray | None,
    challenger: np.ndarray,
    *,
    metric: str = "ndcg@10",
    force: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> GateResult:
    """Promote when there is no champion, when forced, or when the 95% CI of the gain is above 0."""
    b = np.asarray(challenger, dtype=np.float64)
    chall_mean = float(np.nanmean(b)) if np.isfinite(b).any() else float("nan")
    if champion is None:
        return GateResult(
            metric,
            int(np.isfinite(b).sum()),
            float("nan"),
            chall_mean,
            float("nan"),
            float("nan"),
            float("nan"),
            True,
            "no champion yet: first challenger promoted",
        )
    a = np.asarray(champion, dtype=np.float64)
    diff, lo, hi = paired_bootstrap(a, b, n_boot=n_boot, seed=seed)
    n = int((np.isfinite(a) & np.isfinite(b)).sum())
    champ_mean = float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")
    if force:
        promote, reason = True, "forced"
    elif n == 0:
        promote, reason = False, "no test query with a relevant item: cannot compare"
    elif lo > 0:
        promote, reason = True, f"challenger better: 95% CI of the gain [{lo:+.4f}, {hi:+.4f}] is above 0"
    else:
        promote, reason = (
            False,
            f"not better: 95% CI of the gain [{lo:+.4f}, {hi:+.4f}] includes or is below 0",
        )
    return GateResult(metric, n, champ_mean, chall_mean, diff, lo, hi, promote, reason)
