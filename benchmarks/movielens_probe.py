"""The harness of the MovieLens probes: a scorer's gain over sequence-EASE inside the training part.

A probe scores the benchmark's validation fold (a 75/25 split of the training part, split seed + 1)
and the 8 folds the blend is tuned on; the test split is never read. Each candidate scorer's
per-user z-score (over the user's unseen items) is added to sequence-EASE's with a few weights.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from benchmarks.movielens_data import Fold, K, fetch_ml100k, kfold_split, stratified_split
from benchmarks.movielens_scores import standardise, top_items
from benchmarks.movielens_sequence import adjacency, sequence_scores

SEQ = {"tau": 5.0, "window": 30, "beta": 3.0, "lam": 800.0}  # the benchmark's chosen sequence-EASE
Probe = Callable[[Fold], dict[str, list[float]]]


class FoldScoring:
    """Per fold: the evaluated rows, the adjacency, z-scores over unseen items, nDCG@10, sEASE's z."""

    def __init__(self, fold: Fold) -> None:
        self.fold = fold
        self.rows = fold.users.index(fold.eval_users)
        self.adj = adjacency(
            fold.fit, fold.items.index(fold.fit["item"]), len(fold.items), SEQ["tau"], SEQ["window"]
        )
        self._seen = fold.seen.nonzero()
        self.base = self.z(sequence_scores(fold.matrix, self.rows, self.adj, SEQ["beta"], SEQ["lam"])[1])

    def z(self, scores: np.ndarray) -> np.ndarray:
        s = scores.astype(np.float64, copy=True)
        s[self._seen] = np.nan
        return standardise(s)[0]

    def ndcg(self, scores: np.ndarray) -> float:
        return self.fold.metrics(top_items(self.fold, scores, K))["ndcg@10"]

    def gains(self, zs: np.ndarray, weights: tuple[float, ...]) -> list[float]:
        """[nDCG@10 of ``zs`` alone, then of sEASE + w * zs for each weight]."""
        return [self.ndcg(zs)] + [self.ndcg(self.base + w * zs) for w in weights]


def run_probe(doc: str, probe: Probe, weights: tuple[float, ...], argv: list[str] | None = None) -> int:
    """Parse ``--seed``/``--folds``, run ``probe`` on the folds, print the gains over sEASE."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seed", type=int, default=42, help="the protocol's split seed")
    p.add_argument("--folds", type=int, default=8, help="k of the k-fold split of train (0: skip)")
    args = p.parse_args(argv)
    data = fetch_ml100k()
    ids_u, ids_i = np.unique(data["user"]), np.unique(data["item"])
    train, _test = stratified_split(data, 0.75, args.seed)  # the test part is not read
    fit, valid = stratified_split(train, 0.75, args.seed + 1)
    folds = {"validation fold": [Fold(fit, valid, ids_u, ids_i)]}
    if args.folds:
        folds[f"mean of {args.folds} folds"] = [
            Fold(a, b, ids_u, ids_i) for a, b in kfold_split(train, args.folds, args.seed + 1)
        ]
    head = " ".join(f"+{w:<6g}" for w in weights)
    for label, fs in folds.items():
        results = [probe(f) for f in fs]
        mean = {k: np.mean([r[k] for r in results], axis=0) for k in results[0]}
        base = mean["sease"][0]
        print(f"\n{label}: sequence-EASE nDCG@10 {base:.4f}; gain over it with weight w", flush=True)
        print(f"{'scorer':<18} {'alone':>7} {head}")
        for name, v in mean.items():
            if name != "sease":
                print(f"{name:<18} {v[0]:7.4f} " + " ".join(f"{g - base:+.4f}" for g in v[1:]))
    return 0
