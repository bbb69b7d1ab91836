"""MovieLens-100K under the Microsoft Recommenders protocol: popularity, ALS-only, ALS + ranker.

Protocol: every rating is an interaction; random 75/25 split stratified per user (seed 42); top-10
with the user's training items removed; MAP, nDCG@10, Precision@10, Recall@10 with binary
relevance (training.evaluation.metrics, Recommenders' definitions). Hyperparameters are chosen on a
validation split carved from the training part only (again 75/25 per user); the test split is
touched once, at the end.

Data: the recbole 1.2.1 wheel ships the official u.data as ``ml-100k.inter`` (a typed header line
then the 100,000 tab-separated rows). ``sha256(file minus its first line)`` must equal BODY_SHA256.

    .venv/bin/python -m benchmarks.bench_movielens --help
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

BODY_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
CACHE = Path(__file__).resolve().parent / ".cache"
PUBLISHED = {"BPR": 0.4420, "LightGCN": 0.4198, "BiVAE": 0.4751}
K = 10


def fetch_ml100k(cache: Path = CACHE) -> pd.DataFrame:
    """The 100,000 ratings (user, item, rating, ts), fetched once with pip and hash-checked."""
    cache.mkdir(parents=True, exist_ok=True)
    body_path = cache / "ml-100k.body.tsv"
    if not body_path.exists():
        wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
        if not wheels:
            pip = [sys.executable, "-m", "pip"]
            if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
                pip = ["pip"]
            subprocess.run([*pip, "download", "--no-deps", WHEEL, "-d", str(cache)], check=True)
            wheels = sorted(cache.glob("recbole-1.2.1-*.whl"))
        raw = zipfile.ZipFile(wheels[0]).read(MEMBER)
        body = raw.split(b"\n", 1)[1]
        digest = hashlib.sha256(body).hexdigest()
        if digest != BODY_SHA256:
            raise SystemExit(f"{wheels[0]}:{MEMBER}: body sha256 {digest} != {BODY_SHA256}")
        body_path.write_bytes(body)
    elif hashlib.sha256(body_path.read_bytes()).hexdigest() != BODY_SHA256:
        raise SystemExit(f"{body_path}: cached file does not match the expected sha256; delete it")
    df = pd.read_csv(io.BytesIO(body_path.read_bytes()), sep="\t", names=["user", "item", "rating", "ts"])
    return df.astype({"user": np.int64, "item": np.int64})


def stratified_split(df: pd.DataFrame, ratio: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, a random ``ratio`` of the rows go to the first part (Recommenders' stratified split)."""
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))]
    pos = shuffled.groupby("user").cumcount().to_numpy()
    n = shuffled.groupby("user")["item"].transform("size").to_numpy()
    first = pos < np.round(n * ratio)
    return shuffled.loc[first].reset_index(drop=True), shuffled.loc[~first].reset_index(drop=True)


class Fold:
    """One (fit part, held-out part) pair: the matrix, vocabularies and relevance of the held-out part."""

    def __init__(self, fit: pd.DataFrame, held: pd.DataFrame, users: np.ndarray, items: np.ndarray) -> None:
        from models.vocab import IdVocab

        self.fit, self.held = fit, held
        self.users, self.items = IdVocab(users), IdVocab(items)
        u, i = self.users.index(fit["user"]), self.items.index(fit["item"])
        self.matrix = sp.csr_matrix((np.ones(len(fit), np.float32), (u, i)), shape=(len(users), len(items)))
        self.eval_users = np.unique(held["user"].to_numpy())
        rows = self.users.index(self.eval_users)
        self.seen = self.matrix[rows]
        self.relevant = [set(g) for _, g in held.groupby("user")["item"]]

    def metrics(self, recommended: np.ndarray) -> dict[str, float]:
        from training.evaluation.metrics import mean_metrics, per_user_metrics

        m = mean_metrics(per_user_metrics(recommended, self.relevant, K))
        return {
            "map": m["map"],
            "ndcg@10": m["ndcg"],
            "precision@10": m["precision"],
            "recall@10": m["recall"],
        }


def popularity_top(fold: Fold) -> np.ndarray:
    counts = np.asarray(fold.matrix.sum(axis=0)).ravel()
    scores = np.tile(counts.astype(np.float64), (len(fold.eval_users), 1))
    scores[fold.seen.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return fold.items.ids[top]


def fit_als(fold: Fold, params: dict[str, float]):  # type: ignore[no-untyped-def]
    from models.als import ALSCandidateGenerator, ALSConfig

    cfg = ALSConfig(**params, random_state=42, num_threads=1)
    return ALSCandidateGenerator(cfg).fit(fold.matrix, fold.users, fold.items)


def als_top(als, fold: Fold, n: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    return als.generate_many(fold.eval_users, n, exclude_user_items=fold.seen)


def tune_als(fold: Fold, trials: int, seed: int) -> tuple[dict[str, float], float]:
    """Optuna search of the ALS hyperparameters on the validation fold (nDCG@10)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "factors": trial.suggest_categorical("factors", [16, 32, 64, 128]),
            "regularization": trial.suggest_float("regularization", 1e-3, 1.0, log=True),
            "alpha": trial.suggest_float("alpha", 0.5, 50.0, log=True),
            "iterations": trial.suggest_int("iterations", 5, 30),
        }
        ids, _ = als_top(fit_als(fold, params), fold, K)
        return fold.metrics(ids)["ndcg@10"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, show_progress_bar=sys.stderr.isatty())
    return dict(study.best_params), float(study.best_value)


# Scale-free features only: the ranker is fitted on the validation fold (56% of the data) and
# applied to the test fold (75%), so raw counts and raw ALS scores would shift between the two.
FEATURES = [
    "als_rank",
    "als_score_rel",
    "als_score_gap",
    "item_pop",
    "item_pop_rank",
    "pop_vs_user",
    "user_activity",
    "item_mean_rating",
    "user_mean_rating",
    "knn_score_rel",
    "knn_rank",
    "ease_score_rel",
    "ease_rank",
]


def ease_scores(x: sp.csr_matrix, rows: np.ndarray, lam: float) -> np.ndarray:
    """EASE (Steck 2019) item-item scores for ``rows``: a closed-form co-occurrence model."""
    g = (x.T @ x).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return np.asarray(x[rows] @ b)


def tune_ease(fold: Fold) -> float:
    """The EASE regularisation with the best validation nDCG@10 (a feature of the ranker)."""
    rows = fold.users.index(fold.eval_users)
    best, best_lam = -1.0, 100.0
    for lam in (100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0):
        sc = ease_scores(fold.matrix, rows, lam)
        sc[fold.seen.nonzero()] = -np.inf
        v = fold.metrics(fold.items.ids[np.argsort(-sc, axis=1)[:, :K]])["ndcg@10"]
        if v > best:
            best, best_lam = v, lam
    return best_lam


def candidate_frame(fold: Fold, als, n: int, ease_lambda: float = 200.0) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """ALS top-n per evaluated user with ranker features (all from the fit part only) and labels."""
    ids, scores = als_top(als, fold, n)
    n_u, n_c = ids.shape
    x = fold.matrix
    rows = fold.users.index(fold.eval_users)
    col = fold.items.index(ids.ravel())
    counts = np.asarray(x.sum(axis=0)).ravel()
    pop = counts / max(1.0, counts.sum()) * len(counts)  # 1.0 = an average item
    pop_rank = np.empty_like(counts)
    pop_rank[np.argsort(-counts, kind="stable")] = np.arange(1, len(counts) + 1)
    # Item-item cosine co-occurrence: knn(u, i) = mean over the user's items j of cos(i, j).
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()) + 1e-9
    xn = x.multiply(1.0 / norms).tocsr()
    sim = (xn.T @ xn).toarray()
    np.fill_diagonal(sim, 0.0)
    activity = np.asarray(x[rows].sum(axis=1)).ravel()
    user_pop = np.asarray(x[rows] @ pop).ravel() / np.maximum(activity, 1)  # mainstreamness
    knn = (x[rows] @ sim) / np.maximum(activity, 1)[:, None]
    knn_c = np.take_along_axis(knn, col.reshape(n_u, n_c), axis=1)
    knn_rank = np.argsort(np.argsort(-knn_c, axis=1), axis=1) + 1
    ease_c = np.take_along_axis(ease_scores(x, rows, ease_lambda), col.reshape(n_u, n_c), axis=1)
    ease_rank = np.argsort(np.argsort(-ease_c, axis=1), axis=1) + 1
    fit = fold.fit
    item_mean = fit.groupby("item")["rating"].mean()
    user_mean = fit.groupby("user")["rating"].mean()
    users = np.repeat(fold.eval_users, n_c)
    df = pd.DataFrame(
        {
            "user": users,
            "item": ids.ravel(),
            "als_score": scores.ravel(),
            "als_rank": np.tile(np.arange(1, n_c + 1), n_u),
            "als_score_rel": (scores / np.maximum(scores[:, :1], 1e-9)).ravel(),
            "als_score_gap": (scores[:, :1] - scores).ravel()
            / np.repeat(np.maximum(scores[:, 0] - scores[:, -1], 1e-9), n_c),
            "item_pop": pop[col],
            "item_pop_rank": pop_rank[col] / len(counts),
            "pop_vs_user": pop[col] / np.repeat(np.maximum(user_pop, 1e-9), n_c),
            "user_activity": np.repeat(activity / max(1.0, activity.mean()), n_c),
            "item_mean_rating": item_mean.reindex(ids.ravel()).to_numpy(),
            "user_mean_rating": user_mean.reindex(users).to_numpy(),
            "knn_score": knn_c.ravel(),
            "knn_rank": knn_rank.ravel(),
            "knn_score_rel": (knn_c / np.maximum(knn_c.max(axis=1, keepdims=True), 1e-9)).ravel(),
            "ease_score_rel": (ease_c / np.maximum(ease_c.max(axis=1, keepdims=True), 1e-9)).ravel(),
            "ease_rank": ease_rank.ravel(),
        }
    )
    held = set(zip(fold.held["user"].to_numpy(), fold.held["item"].to_numpy(), strict=True))
    df["label"] = [(u, i) in held for u, i in zip(df["user"], df["item"], strict=True)]
    return df[df["item"] >= 0].reset_index(drop=True)


def rerank(frame: pd.DataFrame, scores: np.ndarray, users: np.ndarray) -> np.ndarray:
    """Top-K items per user (in ``users`` order) by ``scores`` within the candidate frame."""
    f = frame.assign(_s=scores).sort_values(["user", "_s"], ascending=[True, False], kind="stable")
    f["_pos"] = f.groupby("user").cumcount()
    top = f[f["_pos"] < K].pivot(index="user", columns="_pos", values="item")
    return top.reindex(users).fillna(-1).to_numpy(dtype=np.int64)


def fit_ranker(train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, float]):  # type: ignore[no-untyped-def]
    from models.ranker import LightGBMRanker, RankerConfig

    cfg = RankerConfig(objective="lambdarank", random_state=42, num_threads=1, **params)
    ranker = LightGBMRanker(cfg)
    group = train.groupby("user", sort=False).size().to_numpy()
    vgroup = valid.groupby("user", sort=False).size().to_numpy()
    ranker.fit(
        train[FEATURES],
        train["label"].astype(int).to_numpy(),
        group=group,
        valid=(valid[FEATURES], valid["label"].astype(int).to_numpy(), vgroup),
    )
    return ranker


def tune_ranker(frames: list[pd.DataFrame], fold: Fold, trials: int, seed: int):  # type: ignore[no-untyped-def]
    """Ranker hyperparameters on validation folds: users split 80/20 into fit / early-stop-and-score.

    ``frames`` come from several random validation folds of the training part (more queries for
    the ranker); the held-out 20% of users are scored on the first fold only and never fitted on.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    frame = frames[0]
    rng = np.random.default_rng(seed)
    users = np.unique(frame["user"])
    hold = set(rng.choice(users, size=len(users) // 5, replace=False).tolist())
    is_hold = frame["user"].isin(hold).to_numpy()
    # Other folds' rows: same users under another random split; offset ids keep queries apart.
    extra = [
        f.loc[~f["user"].isin(hold)].assign(user=f["user"] + (j + 1) * 10**6)
        for j, f in enumerate(frames[1:])
    ]
    tr, va = pd.concat([frame.loc[~is_hold], *extra], ignore_index=True), frame.loc[is_hold]
    va_users = np.unique(va["user"])
    va_rel = [set(g) for _, g in fold.held[fold.held["user"].isin(hold)].groupby("user")["item"]]

    def score(params: dict[str, float]) -> float:
        from training.evaluation.metrics import ndcg_at_k

        r = fit_ranker(tr, va, params)
        return float(ndcg_at_k(rerank(va, r.predict(va[FEATURES]), va_users), va_rel, K))

    def objective(trial: optuna.Trial) -> float:
        return score(
            {
                "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
                "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
                "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
            }
        )

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials, show_progress_bar=sys.stderr.isatty())
    return dict(study.best_params), float(study.best_value), tr, va


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--als-trials", type=int, default=30, help="optuna trials for ALS on the validation split")
    p.add_argument("--ranker-trials", type=int, default=10, help="optuna trials for the ranker")
    p.add_argument("--candidates", type=int, default=100, help="ALS candidates per user for the ranker")
    p.add_argument(
        "--ranker-folds", type=int, default=3, help="random validation folds the ranker learns from"
    )
    p.add_argument("--seed", type=int, default=42, help="the split seed (42 in the protocol)")
    p.add_argument(
        "--als-params",
        type=json.loads,
        default=None,
        help='skip the ALS search and use these, e.g. \'{"factors": 16, "regularization": 0.02, "alpha": 0.9, "iterations": 17}\'',
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    data = fetch_ml100k()
    users, items = np.unique(data["user"]), np.unique(data["item"])
    train, test = stratified_split(data, 0.75, args.seed)
    inner_fit, inner_valid = stratified_split(train, 0.75, args.seed + 1)
    vfold, tfold = Fold(inner_fit, inner_valid, users, items), Fold(train, test, users, items)
    print(
        f"ml-100k: {len(data)} ratings, {len(users)} users, {len(items)} items; "
        f"train {len(train)} / test {len(test)}; validation carved from train: {len(inner_valid)}"
    )

    rows: dict[str, dict[str, float]] = {"popularity": tfold.metrics(popularity_top(tfold))}
    if args.als_params:
        best_als = args.als_params
        print(f"ALS given: {best_als}")
    else:
        best_als, v_ndcg = tune_als(vfold, args.als_trials, args.seed)
        print(f"ALS best on validation: nDCG@10 {v_ndcg:.4f} with {best_als}")
    lam = tune_ease(vfold)
    print(f"EASE feature: lambda {lam:g} (best on validation)")
    ease = ease_scores(tfold.matrix, tfold.users.index(tfold.eval_users), lam)
    ease[tfold.seen.nonzero()] = -np.inf
    rows["ease (feature)"] = tfold.metrics(tfold.items.ids[np.argsort(-ease, axis=1)[:, :K]])
    als = fit_als(tfold, best_als)
    rows["als"] = tfold.metrics(als_top(als, tfold, K)[0])

    vframes = [candidate_frame(vfold, fit_als(vfold, best_als), args.candidates, lam)]
    for j in range(1, args.ranker_folds):
        f = Fold(*stratified_split(train, 0.75, args.seed + 1 + j), users, items)
        vframes.append(candidate_frame(f, fit_als(f, best_als), args.candidates, lam))
    best_rk, rk_ndcg, tr, va = tune_ranker(vframes, vfold, args.ranker_trials, args.seed)
    print(f"ranker best on validation users: nDCG@10 {rk_ndcg:.4f} with {best_rk}")
    ranker = fit_ranker(tr, va, best_rk)
    tframe = candidate_frame(tfold, als, args.candidates, lam)
    rec = rerank(tframe, ranker.predict(tframe[FEATURES]), tfold.eval_users)
    rows["als+ranker"] = tfold.metrics(rec)
    elapsed = time.perf_counter() - t0

    print(f"\n{'model':<16} {'MAP':>8} {'nDCG@10':>8} {'P@10':>8} {'R@10':>8}")
    for name, m in rows.items():
        print(
            f"{name:<16} {m['map']:8.4f} {m['ndcg@10']:8.4f} {m['precision@10']:8.4f} {m['recall@10']:8.4f}"
        )
    for name, v in PUBLISHED.items():
        print(f"{name + ' (published)':<16} {'':>8} {v:8.4f}")
    target = rows["als+ranker"]["ndcg@10"] >= 0.50
    print(f"\ntarget ALS+ranker nDCG@10 >= 0.50: {'met' if target else 'MISSED'}; wall {elapsed:.0f} s")
    if args.json:
        out = {"rows": rows, "als": best_als, "ease_lambda": lam, "ranker": best_rk, "wall_s": elapsed}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
