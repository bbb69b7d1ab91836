"""Probe: do the holes in a user's own timeline add to sequence-EASE? (issue 4, negative result)

A user's fit ratings, in time order, leave holes where the held-out ratings were: on the validation
fold a pause of 75 s or more between two consecutive fit ratings holds 0.72-0.74 held-out
ratings on average, a same-second pair (37% of pairs) none. Scorers, per user, over consecutive fit pairs
(a, b) with gap g seconds and the normalised positional adjacency ``adj_n`` of sequence-EASE:
``bridge``: sum of w(g) * adj_n[a, i] * adj_n[i, b] (items next to both sides of a hole in other
users' sequences), w = 1, [g >= 26 s] (the median gap) or log(1 + g); ``holes``: each own item's
adjacency row weighted by the gaps beside it. Each scorer's z-score is added to sequence-EASE's
(benchmarks/movielens_probe.py). The test split is never read.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_gaps --help
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from benchmarks.movielens_data import Fold
from benchmarks.movielens_probe import FoldScoring, run_probe

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.1, 0.25, 0.5, 1.0)


def gap_scores(fold: Fold, rows: np.ndarray, adj: np.ndarray) -> dict[str, np.ndarray]:
    """Each scorer's scores (users in ``rows`` x every item)."""
    x = fold.matrix
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    an = adj / (np.sqrt(np.outer(counts, counts)) + 1.0)
    fit = fold.fit
    cols = fold.items.index(fit["item"])
    urow = fold.users.index(fit["user"])
    order = np.lexsort((cols, fit["ts"].to_numpy(), urow))
    u, c, t = urow[order], cols[order], fit["ts"].to_numpy()[order]
    pos = {r: k for k, r in enumerate(rows)}
    n = x.shape[1]
    out = {
        k: np.zeros((len(rows), n))
        for k in ("bridge_all", "bridge_gap", "bridge_log", "holes_gap", "holes_log")
    }
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], len(u)]
    for s, e in zip(starts, ends, strict=True):
        r = pos.get(u[s])
        if r is None or e - s < 2:
            continue
        seq, g = c[s:e], np.diff(t[s:e]).astype(np.float64)
        prod = an[seq[:-1]] * an[seq[1:]]
        wg, wl = (g >= 26).astype(np.float64), np.log1p(g)
        out["bridge_all"][r] = prod.sum(axis=0)
        out["bridge_gap"][r] = wg @ prod
        out["bridge_log"][r] = wl @ prod
        side_g = np.r_[wg, 0.0] + np.r_[0.0, wg]
        side_l = np.r_[wl, 0.0] + np.r_[0.0, wl]
        out["holes_gap"][r] = side_g @ an[seq]
        out["holes_log"][r] = side_l @ an[seq]
    return out


def probe(fold: Fold) -> dict[str, list[float]]:
    """nDCG@10 on ``fold``: sequence-EASE, then per scorer [alone, sEASE + w * scorer for WEIGHTS]."""
    sc = FoldScoring(fold)
    out = {"sease": [sc.ndcg(sc.base)]}
    for name, s in gap_scores(fold, sc.rows, sc.adj).items():
        out[name] = sc.gains(sc.z(s), WEIGHTS)
    return out


def holes_by_gap(fit: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """Per decile of the gap between consecutive fit ratings of a user: held-out ratings in it.

    A held-out rating counts in the pair (a, b) when its time is in (t_a, t_b]; pairs rated in the
    same second hold none by construction."""
    fit = fit.sort_values(["user", "ts", "item"])
    held_ts = {u: np.sort(g.to_numpy()) for u, g in held.groupby("user")["ts"]}
    parts = []
    for u, g in fit.groupby("user"):
        ts, ht = g["ts"].to_numpy(), held_ts.get(u, np.empty(0))
        count = np.searchsorted(ht, ts[1:], side="right") - np.searchsorted(ht, ts[:-1], side="right")
        parts.append(pd.DataFrame({"gap_s": np.diff(ts), "held": count}))
    r = pd.concat(parts, ignore_index=True)
    r["decile"] = pd.qcut(r["gap_s"].rank(method="first"), 10, labels=False)
    out = r.groupby("decile").agg(
        gap_from=("gap_s", "min"), gap_to=("gap_s", "max"), held_per_pair=("held", "mean")
    )
    out.attrs["same_second_share"] = float((r["gap_s"] == 0).mean())
    return out


if __name__ == "__main__":
    from benchmarks.movielens_data import fetch_ml100k, stratified_split

    code = run_probe(__doc__, probe, WEIGHTS)  # --help ends here
    train, _ = stratified_split(fetch_ml100k(), 0.75, 42)  # the test part is not read
    holes = holes_by_gap(*stratified_split(train, 0.75, 43))
    print("\nvalidation fold: held-out ratings between consecutive fit ratings, by gap (seconds)")
    print(
        holes.round(3).to_string(),
        f"\npairs rated in the same second: {holes.attrs['same_second_share']:.0%}",
    )
    raise SystemExit(code)
