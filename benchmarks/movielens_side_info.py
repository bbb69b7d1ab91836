"""Probe: do MovieLens-100K's side tables add anything to sequence-EASE? (issue 4, negative result)

The recbole wheel the benchmark already fetches also ships ``ml-100k.item`` (title, release year,
genres) and ``ml-100k.user`` (age, gender, occupation, zip). This probe builds four side-information
scorers on the fit part of a fold and adds each one's per-user z-score to sequence-EASE's z-score
with a few weights, on the benchmark's validation fold (a 75/25 split of the training part, split
seed + 1) and as the mean over the 8 folds the blend is tuned on. The test split is never read.

Scorers: genre (the user's genre profile against the item's genres), release era (log share of the
user's items from the item's 5-year bin, smoothed), and the item's log-lift in popularity among users
of the same age decade and gender, or the same occupation.

    uv run --frozen python -m benchmarks.movielens_side_info --help
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.movielens_data import CACHE, MEMBER, Fold, fetch_ml100k
from benchmarks.movielens_probe import FoldScoring, run_probe

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
WEIGHTS = (0.05, 0.1, 0.2, 0.3)


def side_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items: item, year, genres; users: user, age, gender, occupation) from the cached wheel."""
    fetch_ml100k()  # fetches and hash-checks the wheel if it is not cached yet
    wheel = zipfile.ZipFile(sorted(CACHE.glob("recbole-1.2.1-*.whl"))[0])

    def table(ext: str) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(wheel.read(MEMBER.replace(".inter", ext))), sep="\t")

    items = table(".item").set_axis(["item", "title", "year", "genres"], axis=1)
    users = table(".user").set_axis(["user", "age", "gender", "occupation", "zip"], axis=1)
    return items, users


def side_scorers(fold: Fold, items: pd.DataFrame, users: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each side-information scorer's (evaluated users x items) matrix, fitted on the fold's fit part."""
    x = fold.matrix[fold.users.index(fold.eval_users)]
    it = items.set_index("item").reindex(fold.items.ids)
    tags = [str(g).split() for g in it["genres"].fillna("")]
    names = sorted({g for t in tags for g in t})
    genre = np.array([[n in t for n in names] for t in tags], dtype=np.float64)
    profile = np.asarray(x @ genre)
    profile /= np.maximum(profile.sum(axis=1, keepdims=True), 1.0)
    out = {"genre": profile @ (genre / np.maximum(genre.sum(axis=1, keepdims=True), 1.0)).T}
    year = pd.to_numeric(it["year"], errors="coerce").fillna(1990).to_numpy()
    era = np.eye(21)[np.clip((year - 1920) // 5, 0, 20).astype(int)]
    share = np.asarray(x @ era) + 0.5
    out["era"] = np.log(share / share.sum(axis=1, keepdims=True)) @ era.T
    ut = users.set_index("user").reindex(fold.eval_users)
    out["age_gender_lift"] = group_lift(fold, x, (ut["age"] // 10).astype(str) + ut["gender"].astype(str))
    out["occupation_lift"] = group_lift(fold, x, ut["occupation"].astype(str))
    return out


def group_lift(fold: Fold, x: sp.csr_matrix, group: pd.Series) -> np.ndarray:
    """log(item's share of ratings in the user's group) - log(its share overall), add-one smoothed."""
    overall = np.asarray(fold.matrix.sum(axis=0)).ravel() + 1.0
    out = np.zeros(x.shape)
    keys = group.to_numpy()
    for key in np.unique(keys):
        mask = keys == key
        counts = np.asarray(x[mask].sum(axis=0)).ravel() + 1.0
        out[mask] = np.log(counts / counts.sum()) - np.log(overall / overall.sum())
    return out


def main(argv: list[str] | None = None) -> int:
    items, users = side_tables()

    def probe(fold: Fold) -> dict[str, list[float]]:
        sc = FoldScoring(fold)
        out = {"sease": [sc.ndcg(sc.base)]}
        for name, s in side_scorers(fold, items, users).items():
            out[name] = sc.gains(sc.z(s), WEIGHTS)
        return out

    return run_probe(__doc__, probe, WEIGHTS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
