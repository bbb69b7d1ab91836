"""A shop without prices, served in the ranker's order or in the first stage's, judged by the truth.

The slot policy orders a carousel by expected value, p_convert x price. The importers' logs carry
no prices; such a product had no value to order by, so its carousel came in the first stage's
(ALS) order and the ranker changed nothing. Now an unknown price counts as 1 and the ranker's
p_convert orders it. This answers the same requests both ways, in process with the app ``slotcast
serve`` runs (epsilon 0): ``ranker``, the policy as served, and ``first stage``, the policy ranking
by score, which is the order the old code gave a shop without prices. Each answer is scored with
the simulator's true P(purchase | product at slot) at the request's time; the paired difference
gets a bootstrap 95% interval.

The state: a stream-less simulated shop with its prices and margins taken out, built and trained::

    export SLOTCAST_STATE_DIR=S
    uv run --frozen slotcast data generate --users 20000 --products 2000 --days 14 --seed 7 \
        --no-streams --out S/data
    uv run --frozen python -c "import pyarrow as pa, pyarrow.parquet as pq; p = 'S/data/products.parquet'; \
        t = pq.read_table(p); t = t.set_column(3, 'price', pa.nulls(len(t), pa.float64())); \
        pq.write_table(t.set_column(4, 'margin', pa.nulls(len(t), pa.float64())), p)"
    uv run --frozen slotcast data validate --data S/data   # then features build, train, promote
    uv run --frozen python -m benchmarks.bench_unpriced_shop --state S

A shop with prices is refused: there the two orders differ by the prices too, which is another
question.

The requests: users shown a carousel in the log's last ``--days`` days (the ranker's test split),
at those moments (``at``), each asking for k slots out of the whole catalogue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmarks.bench_shortlist import paired_ci
from benchmarks.served_world import served_world


def requests(data_dir: Path, n: int, days: float, seed: int) -> pd.DataFrame:
    """``n`` (user_id, ts) of the carousels shown in the last ``days`` days of the impression log."""
    from features.data_model import read_table

    imp = read_table(data_dir, "impressions", columns=["user_id", "ts"]).to_pandas().drop_duplicates()
    late = imp[imp["ts"] >= imp["ts"].max() - timedelta(days=days)]
    return late.sample(min(n, len(late)), random_state=seed).reset_index(drop=True)


def answer_values(app: Any, truth: Any, reqs: pd.DataFrame, models: Any, k: int, label: str) -> np.ndarray:
    """Per request, the true expected purchases of the slate ``models`` answer."""
    from serving.schemas import CarouselRequest

    rec = app._rec()
    rec.models = lambda: (models, None)
    users, products, slots, times, owner = [], [], [], [], []
    for row, (user, ts) in enumerate(tqdm(list(zip(reqs["user_id"], reqs["ts"], strict=True)), desc=label)):
        out = app.carousel(CarouselRequest(user_id=int(user), k=k, at=ts.to_pydatetime()))
        for s in out.slots:
            users.append(int(user))
            products.append(s.product_id)
            slots.append(s.slot)
            times.append(int(ts.value // 1000))
            owner.append(row)
    p = truth.purchase_prob(
        np.asarray(users, np.int64), np.asarray(products, np.int64), np.asarray(slots, np.int64),
        ts_us=np.asarray(times, np.int64),
    )  # fmt: skip
    return np.bincount(np.asarray(owner, np.int64), weights=p, minlength=len(reqs))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--state", type=Path, required=True, help="a built state of a simulated shop without prices"
    )
    ap.add_argument("--requests", type=int, default=3000, help="carousel requests")
    ap.add_argument("--days", type=float, default=2.0, help="the requests come from the log's last days")
    ap.add_argument("--k", type=int, default=8, help="slots per carousel")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/unpriced_shop.json"))
    args = ap.parse_args(argv)
    with served_world(args.state) as (app, truth):
        models = app._current()[0]
        if models.ranker is None:
            raise SystemExit("the champion has no ranker: nothing to compare")
        priced = app.catalog.products["price"].notna().sum()
        if priced:
            raise SystemExit(
                f"{priced} products of {args.state} have a price: this compares a shop without any"
            )
        served = models.policy
        first_stage = type(served)(served.config.model_copy(update={"rank_by": "score", "epsilon": 0.0}))
        ranker = type(served)(served.config.model_copy(update={"epsilon": 0.0}))
        reqs = requests(app.settings.data_dir, args.requests, args.days, args.seed)
        value = {
            name: answer_values(app, truth, reqs, dataclasses.replace(models, policy=policy), args.k, name)
            for name, policy in (("first stage", first_stage), ("ranker", ranker))
        }
    diff = value["ranker"] - value["first stage"]
    lo, hi = paired_ci(diff, args.seed)
    result = {
        "requests": len(reqs),
        "k": args.k,
        **{
            f"{name}: true purchases per 1,000 carousels": 1000 * float(v.mean()) for name, v in value.items()
        },
        "ranker minus first stage, per 1,000 (95% CI)": [1000 * float(diff.mean()), 1000 * lo, 1000 * hi],
    }
    for key, v in result.items():
        print(f"{key}: {np.round(v, 2).tolist() if isinstance(v, list) else round(v, 2)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
