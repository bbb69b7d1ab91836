"""MovieLens-100K data for the benchmark: the hash-checked ratings, the per-user split, a fold.

Data: the recbole 1.2.1 wheel ships the official u.data as ``ml-100k.inter`` (a typed header line
then the 100,000 tab-separated rows). ``sha256(file minus its first line)`` must equal BODY_SHA256.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

BODY_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
CACHE = Path(__file__).resolve().parent / ".cache"
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


def kfold_split(df: pd.DataFrame, k: int, seed: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """``k`` (fit, held) pairs: each user's rows dealt at random into ``k`` parts, each part held once.

    With k = 8 a fold fits on 7/8 of the training part (66% of the data, near the 75% the test
    ranks with) and the held parts together are every training rating once.
    """
    rng = np.random.default_rng(seed)
    shuffled = df.iloc[rng.permutation(len(df))]
    part = shuffled.groupby("user").cumcount().to_numpy() % k
    return [
        (shuffled.loc[part != j].reset_index(drop=True), shuffled.loc[part == j].reset_index(drop=True))
        for j in range(k)
    ]


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
