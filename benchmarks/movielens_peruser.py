"""MovieLens probe: per-user scorer weights, learned from an inner split of the fold's fit part.

    OPENBLAS_NUM_THREADS=1 uv run --frozen python -m benchmarks.movielens_peruser [--folds 8]

The blend gives every user the same weights. Here each user's weights move with how each scorer
ranked *that user's* held-out ratings in a 4-fold split of the fit part (the mean rank percentile
of their inner held-out items): w_s(u) = max(0, kappa * (q_s(u) - q_sease(u))) is added to
sequence-EASE (``adaptive``) or to the benchmark's global blend without its gap term
(``blend+adaptive``, whose ``alone`` column is that global blend). ``select`` ranks each user by
the scorer that did best for them inside the fit part (kappa columns: the margin over
sequence-EASE it needs, 0 / 0.01 / 0.02). Training part only; the test split is never read.
"""

from __future__ import annotations

import numpy as np

from benchmarks.bench_movielens import fit_als
from benchmarks.movielens_data import Fold, kfold_split
from benchmarks.movielens_probe import SEQ, FoldScoring, run_probe
from benchmarks.movielens_scores import standardise
from benchmarks.movielens_sequence import ease_weights, sequence_scores

ALS = {"factors": 16, "regularization": 0.0209, "alpha": 0.877, "iterations": 17}  # the benchmark's
NAMES = ("sease", "ease", "adj", "pop", "als")
GLOBAL = {"adj": 0.25, "ease": 0.1, "als": 0.5}  # the benchmark's blend weights (gap left out)
KAPPAS = (2.0, 5.0, 10.0, 20.0)
MARGINS = (0.0, 0.01, 0.02)


def scores(fold: Fold, sc: FoldScoring | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per scorer: (z-score, rank percentile) over each evaluated user's unseen items."""
    sc = sc or FoldScoring(fold)
    x = fold.matrix
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    raw = dict(
        zip(("adj", "sease"), sequence_scores(x, sc.rows, sc.adj, SEQ["beta"], SEQ["lam"]), strict=True)
    )
    raw["ease"] = np.asarray(x[sc.rows] @ ease_weights((x.T @ x).toarray(), 800.0))
    raw["pop"] = np.tile(np.log1p(counts), (len(sc.rows), 1))
    raw["als"] = fit_als(fold, ALS).score_matrix(fold.eval_users, fold.items.ids).astype(np.float64)
    seen = fold.seen.nonzero()
    z, pct = {}, {}
    for name, s in raw.items():
        s = s.astype(np.float64)
        s[seen] = np.nan
        z[name], pct[name] = standardise(s)
    return z, pct


def inner_quality(fit, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Per user (all users' order) and scorer: mean rank percentile of their inner held-out items."""
    total = {n: np.zeros(len(users)) for n in NAMES}
    count = np.zeros(len(users))
    for a, b in kfold_split(fit, 4, 44):
        inner = Fold(a, b, users, items)
        _, pct = scores(inner)
        row = inner.users.index(b["user"])
        at = np.searchsorted(inner.eval_users, b["user"].to_numpy())
        col = inner.items.index(b["item"])
        for n in NAMES:
            np.add.at(total[n], row, np.nan_to_num(pct[n][at, col]))
        np.add.at(count, row, 1)
    return {n: total[n] / np.maximum(count, 1) for n in NAMES}


def probe(fold: Fold) -> dict[str, list[float]]:
    sc = FoldScoring(fold)
    q = inner_quality(fold.fit, fold.users.ids, fold.items.ids)
    q = {n: v[sc.rows] for n, v in q.items()}
    z, _ = scores(fold, sc)
    glob = z["sease"] + sum(w * z[n] for n, w in GLOBAL.items())

    def adaptive(base: np.ndarray, kappa: float) -> np.ndarray:
        out = base.copy()
        for n in NAMES[1:]:
            out += np.clip(kappa * (q[n] - q["sease"]), 0.0, None)[:, None] * z[n]
        return out

    best = np.stack([q[n] for n in NAMES], 1)
    stacked = np.stack([z[n] for n in NAMES], 0)

    def select(margin: float) -> np.ndarray:
        pick = np.argmax(best, 1)
        pick[best.max(1) - q["sease"] <= margin] = 0
        return stacked[pick, np.arange(len(pick))]

    return {
        "sease": [sc.ndcg(sc.base)],
        "adaptive": [sc.ndcg(z["sease"])] + [sc.ndcg(adaptive(z["sease"], k)) for k in KAPPAS],
        "blend+adaptive": [sc.ndcg(glob)] + [sc.ndcg(adaptive(glob, k)) for k in KAPPAS],
        "select": [sc.ndcg(z["sease"])] + [sc.ndcg(select(m)) for m in MARGINS] + [np.nan],
    }


if __name__ == "__main__":
    raise SystemExit(run_probe(__doc__, probe, KAPPAS))
