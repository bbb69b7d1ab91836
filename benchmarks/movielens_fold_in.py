"""Folding a known user's newer events into their factors, on real logs: MovieLens-100K in time order.

The simulator's tastes do not change, so there a known user's new events can only sharpen what their
history already says (``bench_fold_in_known``). Real users move on. Here the ratings are split at a
moment (``--split``, the time quantile): ALS (``models.als``, the benchmark's tuned parameters) is
fitted on the ratings before it, and every later rating of a user it holds is predicted from what
came before it: the next item among all items not yet rated (leave-next-out, HR@10 and nDCG@10),
by (a) the trained factors, (b) the factors folded in from the training row plus the user's
ratings since the split (``ALSCandidateGenerator.user_vector`` with ``user_id``: what serving now
does), (c) those ratings alone, without the history (what serving does for a user the model does
not hold), and training popularity. Differences (b) - (a) with a bootstrap 95% interval over users
(a user's predictions are not independent), overall and by how many new ratings came before.
Needs the recbole 1.2.1 wheel's ml-100k (fetched once, like ``bench_movielens``).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.movielens_fold_in [--split 0.8]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmarks.bench_shortlist import paired_ci
from benchmarks.movielens_data import fetch_ml100k

TUNED = {"factors": 16, "regularization": 0.0209, "alpha": 0.877, "iterations": 17}  # bench_movielens's
K = 10
BUCKETS = ((1, 5), (5, 20), (20, 10**9))


def _rank_metrics(scores: np.ndarray, target: int, exclude: np.ndarray) -> tuple[float, float]:
    s = scores.astype(np.float64).copy()
    s[exclude] = -np.inf
    rank = int((s > s[target]).sum())
    return float(rank < K), (1.0 / np.log2(rank + 2.0) if rank < K else 0.0)


def main(argv: list[str] | None = None) -> int:
    parts = (__doc__ or "").split("\n\n")
    p = argparse.ArgumentParser(
        description=parts[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(parts[1:]),
    )
    p.add_argument("--split", type=float, default=0.8, help="time quantile the model is fitted before")
    p.add_argument("--als-params", type=json.loads, default=TUNED, help="ALSConfig fields, JSON")
    p.add_argument("--seed", type=int, default=1, help="bootstrap seed")
    p.add_argument(
        "--history-weights",
        default="0.25,1,0.05",
        help="comma list: the history row's weight in the fold-in (1: as trained; 0.25: serving's default)",
    )
    args = p.parse_args(argv)

    from models.als import ALSCandidateGenerator, ALSConfig

    weights = [float(x) for x in args.history_weights.split(",")]
    arms = (
        "popularity",
        "trained factors",
        *(f"history x {h:g} + new ratings" for h in weights),
        "new ratings alone",
    )
    from models.vocab import IdVocab

    df = fetch_ml100k().sort_values(["ts", "item"], kind="stable").reset_index(drop=True)
    cut = df["ts"].quantile(args.split)
    train, later = df.loc[df["ts"] < cut], df.loc[df["ts"] >= cut]
    users, items = IdVocab.from_values(train["user"]), IdVocab.from_values(train["item"])
    m = sp.csr_matrix(
        (np.ones(len(train), np.float32), (users.index(train["user"]), items.index(train["item"]))),
        shape=(len(users), len(items)),
    )
    als = ALSCandidateGenerator(ALSConfig(**args.als_params, random_state=42, num_threads=1)).fit(
        m, users, items
    )
    pop = np.asarray(m.sum(axis=0)).ravel()
    later = later.loc[later["user"].isin(users.ids) & later["item"].isin(items.ids)]
    print(f"fit on {len(train):,} ratings before {pd.Timestamp(cut, unit='s')}; {len(later):,} later "
          f"ratings of {later['user'].nunique()} users it holds", file=sys.stderr)  # fmt: skip

    rows = []  # (user, new ratings before, hit and ndcg per arm)
    for user, g in later.groupby("user", sort=True):
        u = users.index_of(int(user))
        seq = items.index(g["item"].to_numpy())
        past = m.indices[m.indptr[u] : m.indptr[u + 1]]
        for j in range(1, len(seq)):
            new = items.ids[seq[:j]]
            exclude = np.concatenate([past, seq[:j]])
            vectors = {
                "trained factors": als.user_factors[u],
                "new ratings alone": als.user_vector(new, np.ones(j)),
                **{
                    f"history x {h:g} + new ratings": als.user_vector(
                        new, np.ones(j), user_id=int(user), history_weight=h
                    )
                    for h in weights
                },
            }
            got = [_rank_metrics(pop, seq[j], exclude)]
            got += [_rank_metrics(als.item_factors @ vectors[a], seq[j], exclude) for a in arms[1:]]
            rows.append((int(user), j, *[x for pair in got for x in pair]))
    cols = ["user", "before"] + [f"{a}|{m_}" for a in arms for m_ in ("hr", "ndcg")]
    res = pd.DataFrame(rows, columns=cols)

    print(f"# MovieLens-100K in time order: fit before the {args.split:.0%} time quantile, ALS {args.als_params}; "
          f"{len(res):,} next-item predictions of {res['user'].nunique()} users (a user's first rating after "
          "the split is not predicted: nothing new before it)")  # fmt: skip
    print("| new ratings before | predictions | users | " + " | ".join(f"{a} HR@10 / nDCG@10" for a in arms)
          + f" | history x {weights[0]:g} + new minus trained, nDCG@10 (95% CI over users) |")  # fmt: skip
    print("| --- " * (4 + len(arms)) + "|")
    for lo, hi in ((1, 10**9), *BUCKETS):
        part = res.loc[(res["before"] >= lo) & (res["before"] < hi)]
        per_user = part.groupby("user").mean(numeric_only=True)
        diff = (
            per_user[f"history x {weights[0]:g} + new ratings|ndcg"] - per_user["trained factors|ndcg"]
        ).to_numpy()
        ci_lo, ci_hi = paired_ci(diff, args.seed)
        label = "all" if hi == 10**9 and lo == 1 else (f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+")
        cells = " | ".join(
            f"{per_user[f'{a}|hr'].mean():.4f} / {per_user[f'{a}|ndcg'].mean():.4f}" for a in arms
        )
        print(
            f"| {label} | {len(part):,} | {len(per_user)} | {cells} | {diff.mean():+.4f} ({ci_lo:+.4f} .. {ci_hi:+.4f}) |"
        )
    print("\n(metrics: mean over users of each user's mean over their predictions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
