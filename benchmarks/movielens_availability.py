"""Probe: can a held-out rating be of a movie nobody had rated yet when the user stopped? (issue 4)

A movie enters MovieLens when someone first rates it. An item first rated (in the fit part, by
anyone) more than m days after the user's last fit rating is unlikely to be among that user's
held-out ratings. ``hard m`` pushes such items below every other (a filter); ``late`` is the
log of the days an item appeared after the user's last fit rating, as a z-scored penalty added to
sequence-EASE (benchmarks/movielens_probe.py). The share of held-out ratings a filter would have
removed is printed per fold (it must be near 0 for the filter to be safe). The test split is
never read.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_availability --help
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import FoldScoring, run_probe

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)
DAY_S = 86_400
MARGINS_DAYS = (0, 7, 30)


def first_and_last(fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """(each item's first rating time, each user's last rating time) in the fit part."""
    ts = fold.fit["ts"].to_numpy(np.float64)
    first = np.full(len(fold.items), np.inf)
    np.minimum.at(first, fold.items.index(fold.fit["item"]), ts)
    last = np.full(len(fold.users), -np.inf)
    np.maximum.at(last, fold.users.index(fold.fit["user"]), ts)
    return first, last


def probe(fold: Fold) -> dict[str, list[float]]:
    fs = FoldScoring(fold)
    first, last = first_and_last(fold)
    user_last = last[fs.rows][:, None]
    held_u, held_i = fold.users.index(fold.held["user"]), fold.items.index(fold.held["item"])
    out = {"sease": fs.gains(fs.base, ())}
    for m in MARGINS_DAYS:
        late = first[None, :] > user_last + m * DAY_S
        removed = float(np.mean(first[held_i] > last[held_u] + m * DAY_S))
        print(f"  hard {m} d: removes {removed:.2%} of the held-out ratings", flush=True)
        # the filter scored alone (its sEASE ranking with late items last); no weights apply
        out[f"hard {m} d"] = [fs.ndcg(np.where(late, fs.base - 1e3, fs.base))] * (1 + len(WEIGHTS))
    seen_at = np.where(np.isfinite(first), first, np.max(fold.fit["ts"]))  # never rated: as the newest
    days_late = np.clip(seen_at[None, :] - user_last, 0.0, None) / DAY_S
    out["late"] = fs.gains(fs.z(-np.log1p(days_late)), WEIGHTS)
    return out


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, WEIGHTS))
