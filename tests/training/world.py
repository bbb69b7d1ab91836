"""A tiny livestream world with a planted answer, written as canonical tables.

Users like one category (user_id % 3). Every day each category has one stream with 8 of its
products and ``off_category`` of the others on air. A viewer clicks the on-air products of their
own category often and buys some of them within the hour; everything else is rare noise. So: ALS
must learn the category, and within a stream's carousel (what the ranking metrics rank, as serving
does) the viewer's own category is the answer; a ranker given als_score and on_air must separate
buyers' products from the rest (AUC well above 0.5). ``shuffle_purchases`` breaks the link between
purchases and taste for the promotion-gate test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.data_model import write_table

T0 = pd.Timestamp("2026-01-01", tz="UTC")
N_CAT = 3


def make_world(
    out: Path,
    *,
    n_users: int = 240,
    n_products: int = 60,
    days: int = 16,
    seed: int = 0,
    streams: bool = True,
    buy_rate: float = 0.35,
    shuffle_purchases: bool = False,
    off_category: int = 4,
) -> Path:
    rng = np.random.default_rng(seed)
    users = np.arange(1, n_users + 1, dtype=np.int64)
    products = np.arange(1001, 1001 + n_products, dtype=np.int64)
    cat_of = {int(p): int(i % N_CAT) for i, p in enumerate(products)}
    by_cat = {c: products[np.arange(n_products) % N_CAT == c] for c in range(N_CAT)}
    ev: list[tuple] = []
    sp_rows: list[tuple] = []
    stream_rows: list[tuple] = []
    sid = 0
    for day in range(days):
        for c in range(N_CAT):
            sid += 1
            start = T0 + pd.Timedelta(days=day, hours=18 + c)
            end = start + pd.Timedelta(hours=1)
            stream_rows.append((sid, 500 + c, f"cat{c}", start, end))
            others = np.concatenate([by_cat[o] for o in range(N_CAT) if o != c])
            on_air = np.concatenate(
                [
                    rng.choice(by_cat[c], size=8, replace=False),
                    rng.choice(others, size=off_category, replace=False),
                ]
            )
            for slot, p in enumerate(on_air):
                sp_rows.append((sid, int(p), start, end, slot if slot < 2 else None))
            p_view = np.where(users % N_CAT == c, 0.5, 0.08)
            viewers = users[rng.random(n_users) < p_view]
            for u in viewers:
                t = start + pd.Timedelta(minutes=float(rng.uniform(0, 20)))
                ev.append((t, int(u), "stream_view", None, sid, float(rng.uniform(60, 1800))))
                likes = [p for p in on_air if cat_of[int(p)] == u % N_CAT]
                for p in likes:
                    if rng.random() < 0.3:
                        tc = t + pd.Timedelta(minutes=float(rng.uniform(1, 10)))
                        ev.append((tc, int(u), "product_click", int(p), sid, None))
                        if rng.random() < buy_rate:
                            ev.append((tc + pd.Timedelta(minutes=5), int(u), "purchase", int(p), sid, None))
        # background noise: random clicks on any product
        for u in users[rng.random(n_users) < 0.3]:
            p = int(rng.choice(products))
            ev.append(
                (
                    T0 + pd.Timedelta(days=day, hours=float(rng.uniform(0, 17))),
                    int(u),
                    "product_click",
                    p,
                    None,
                    None,
                )
            )
    df = pd.DataFrame(ev, columns=["ts", "user_id", "type", "product_id", "stream_id", "watch_seconds"])
    if shuffle_purchases:
        buy = df["type"] == "purchase"
        df.loc[buy, "product_id"] = rng.choice(products, size=int(buy.sum()))
    df["ts"] = df["ts"].dt.floor("us")
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    df["event_id"] = np.arange(1, len(df) + 1, dtype=np.int64)
    df["product_id"] = df["product_id"].astype("Int64")
    df["stream_id"] = df["stream_id"].astype("Int64")
    write_table(out, "events", pa.Table.from_pandas(df, preserve_index=False))
    write_table(
        out,
        "users",
        pa.table(
            {
                "user_id": users,
                "consent_personalization": np.ones(n_users, bool),
                "consent_marketing": np.ones(n_users, bool),
            }
        ),
    )
    write_table(
        out,
        "products",
        pa.table(
            {
                "product_id": products,
                "category": [f"cat{cat_of[int(p)]}" for p in products],
                "price": rng.uniform(5, 50, n_products),
                "stock": np.full(n_products, 100, dtype=np.int64),
            }
        ),
    )
    if streams:
        s = pd.DataFrame(stream_rows, columns=["stream_id", "host_id", "category", "start_ts", "end_ts"])
        write_table(out, "streams", pa.Table.from_pandas(s, preserve_index=False))
        spdf = pd.DataFrame(
            sp_rows, columns=["stream_id", "product_id", "on_air_from", "on_air_to", "pinned_slot"]
        )
        spdf["pinned_slot"] = spdf["pinned_slot"].astype("Int32")
        write_table(out, "stream_products", pa.Table.from_pandas(spdf, preserve_index=False))
    return out
