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

import argparse
import io
import os
import zipfile
from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.movielens_data import CACHE, MEMBER, Fold, K, fetch_ml100k, kfold_split, stratified_split
from benchmarks.movielens_scores import standardise, top_items
from benchmarks.movielens_sequence import adjacency, sequence_scores

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
SEQ = {"tau": 5.0, "window": 30, "beta": 3.0, "lam": 800.0}  # the benchmark's chosen sequence-EASE
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


def probe(fold: Fold, items: pd.DataFrame, users: pd.DataFrame) -> dict[str, list[float]]:
    """nDCG@10 on ``fold``: sequence-EASE, then per scorer [alone, sEASE + w * scorer for WEIGHTS]."""
    rows = fold.users.index(fold.eval_users)
    adj = adjacency(fold.fit, fold.items.index(fold.fit["item"]), len(fold.items), SEQ["tau"], SEQ["window"])
    seen = fold.seen.nonzero()

    def z(s: np.ndarray) -> np.ndarray:
        s = s.astype(np.float64, copy=True)
        s[seen] = np.nan
        return standardise(s)[0]

    ndcg: Callable[[np.ndarray], float] = lambda s: fold.metrics(top_items(fold, s, K))["ndcg@10"]  # noqa: E731
    base = z(sequence_scores(fold.matrix, rows, adj, SEQ["beta"], SEQ["lam"])[1])
    out = {"sease": [ndcg(base)]}
    for name, s in side_scorers(fold, items, users).items():
        zs = z(s)
        out[name] = [ndcg(zs)] + [ndcg(base + w * zs) for w in WEIGHTS]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed", type=int, default=42, help="the protocol's split seed")
    p.add_argument("--folds", type=int, default=8, help="k of the k-fold split of train (0: skip)")
    args = p.parse_args(argv)
    data = fetch_ml100k()
    items, users = side_tables()
    ids_u, ids_i = np.unique(data["user"]), np.unique(data["item"])
    train, _test = stratified_split(data, 0.75, args.seed)  # the test part is not read
    fit, valid = stratified_split(train, 0.75, args.seed + 1)
    folds = {"validation fold": [Fold(fit, valid, ids_u, ids_i)]}
    if args.folds:
        folds[f"mean of {args.folds} folds"] = [
            Fold(a, b, ids_u, ids_i) for a, b in kfold_split(train, args.folds, args.seed + 1)
        ]
    head = " ".join(f"+{w:<6g}" for w in WEIGHTS)
    for label, fs in folds.items():
        results = [probe(f, items, users) for f in fs]
        mean = {k: np.mean([r[k] for r in results], axis=0) for k in results[0]}
        base = mean["sease"][0]
        print(f"\n{label}: sequence-EASE nDCG@10 {base:.4f}; gain over it with weight w")
        print(f"{'scorer':<18} {'alone':>7} {head}")
        for name, v in mean.items():
            if name != "sease":
                print(f"{name:<18} {v[0]:7.4f} " + " ".join(f"{g - base:+.4f}" for g in v[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
