"""User deletion from the online store: key-byte matching against decoding every key, side by side.

    uv run --frozen python -m benchmarks.bench_deletion --data DIR [--keys 1000000] [--users 5]

Builds the feature store of a simulated world (``slotcast data generate``) on SQLite and on a
private redis-server, pads the per-(user, product) view with synthetic keys of other users until
the online store holds ``--keys`` user-keyed entity keys, then deletes real users one at a time as
``DELETE /users/{id}`` does, alternating the two methods (``features.online_deletion``: byte
matching, the default; and decoding every stored key through Feast, the code before it and still
the fallback for key shapes the byte match does not cover). Each method deletes its own users; then
each method is run again on the other's users and must find nothing left. Medians of wall time per
deletion; JSON to ``--out``.

``--batch-users N`` then deletes 2N further buyers with the default method, N of them one call
each (what ``DELETE /users/{id}`` does), then N in one call (``POST /users/delete``), and reports
the wall time of each per user; both must leave nothing behind.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

from benchmarks.bench_features import _start_redis


def _pad_sqlite(store: Any, view: Any, keys: int, first_user: int) -> int:
    """Copies of one stored (product, user) row under synthetic users' keys; returns keys added."""
    from features.online_deletion import _shapes, user_value

    header = _shapes(store, [view])[tuple(sorted(view.join_keys))]
    assert header is not None
    table = f'"{store.config.project}_{view.name}"'
    con = sqlite3.connect(store.config.online_store.path)
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] != "entity_key"]
    sample = con.execute(f"SELECT entity_key FROM {table} LIMIT 1").fetchone()[0]
    rows = con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE entity_key = ?", (sample,)).fetchall()
    marks = ", ".join("?" * (len(cols) + 1))
    sql = f"INSERT OR REPLACE INTO {table} (entity_key, {', '.join(cols)}) VALUES ({marks})"
    middle = sample[len(header) : -16]  # the product's value, kept: only the user differs
    batch: list[tuple[Any, ...]] = []
    for i in range(keys):
        key = header + middle + user_value(first_user + i)
        batch.extend((key, *row) for row in rows)
        if len(batch) >= 50_000:
            con.executemany(sql, batch)
            batch.clear()
    con.executemany(sql, batch)
    con.commit()
    con.close()
    return keys


def _pad_redis(store: Any, view: Any, keys: int, first_user: int) -> int:
    from features.online_deletion import _shapes, user_value

    header = _shapes(store, [view])[tuple(sorted(view.join_keys))]
    assert header is not None
    client = store._get_provider().online_store._get_client(store.config.online_store)
    project = store.config.project.encode()
    sample = next(k for k in client.scan_iter(match=b"*" + project, count=10_000) if k.startswith(header))
    fields = client.hgetall(sample)
    middle = sample[len(header) : -16 - len(project)]
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.hset(header + middle + user_value(first_user + i) + project, mapping=fields)
        if i % 10_000 == 9_999:
            pipe.execute()
    pipe.execute()
    return keys


def _decoding(store: Any, views: list[Any], uids: set[int]) -> int:
    """The code before byte matching: every stored key decoded through Feast."""
    from features import online_deletion as od

    cfg = store.config
    if cfg.online_store.type == "redis":
        client = store._get_provider().online_store._get_client(cfg.online_store)
        return od._delete_redis_decoding(
            client, cfg.project.encode(), uids, cfg.entity_key_serialization_version
        )
    con = sqlite3.connect(cfg.online_store.path)
    try:
        removed = 0
        for fv in views:
            try:
                table = f'"{cfg.project}_{fv.name}"'
                removed += od._delete_sqlite_decoding(con, table, uids, cfg.entity_key_serialization_version)
            except sqlite3.OperationalError:
                continue
        con.commit()
        return removed
    finally:
        con.close()


def bench_backend(settings: Any, users: list[int], keys: int) -> dict[str, Any]:
    from features.privacy import _user_keyed_views, delete_user_online
    from features.retrieval import FeastFeatureReader

    store = FeastFeatureReader(settings).store
    views = _user_keyed_views(store)
    wide = max((v for v in views if len(v.join_keys) > 1), key=lambda v: "product_id" in v.join_keys)
    t0 = time.perf_counter()
    pad = _pad_redis if store.config.online_store.type == "redis" else _pad_sqlite
    pad(store, wide, keys, first_user=10_000_000)
    out: dict[str, Any] = {
        "padded_keys": keys,
        "pad_s": time.perf_counter() - t0,
        "bytes": [],
        "decoding": [],
    }
    methods = {
        "bytes": lambda u: delete_user_online(store, u),
        "decoding": lambda u: _decoding(store, views, u if isinstance(u, set) else {u}),
    }
    removed: dict[str, list[int]] = {"bytes": [], "decoding": []}
    for i, u in enumerate(users):
        name = ("bytes", "decoding")[i % 2]
        t = time.perf_counter()
        removed[name].append(methods[name](u))
        out[name].append(time.perf_counter() - t)
    for name, other in (("bytes", "decoding"), ("decoding", "bytes")):
        done = set(users[(name == "decoding") :: 2])
        left = methods[other](done) if other == "bytes" else _decoding(store, views, done)
        if left:
            raise SystemExit(f"{store.config.online_store.type}: {left} rows of users deleted by {name} left")
    for name in methods:
        out[f"{name}_median_s"] = statistics.median(out[name])
        out[f"{name}_rows_removed"] = removed[name]
    out["ratio_decoding_over_bytes"] = out["decoding_median_s"] / out["bytes_median_s"]
    return out


def bench_batch(settings: Any, users: list[int]) -> dict[str, Any]:
    """The users' halves deleted one call each and in one call; seconds per user of each."""
    from features.privacy import delete_user_online
    from features.retrieval import FeastFeatureReader

    store = FeastFeatureReader(settings).store
    half = len(users) // 2
    singles, batch = users[:half], users[half : 2 * half]
    out: dict[str, Any] = {"batch_users": half}
    t = time.perf_counter()
    out["one_call_each_rows"] = sum(delete_user_online(store, u) for u in singles)
    out["one_call_each_s_per_user"] = (time.perf_counter() - t) / half
    t = time.perf_counter()
    out["one_call_rows"] = delete_user_online(store, set(batch))
    out["one_call_s_per_user"] = (time.perf_counter() - t) / half
    left = delete_user_online(store, set(singles) | set(batch))
    if left:
        raise SystemExit(f"{store.config.online_store.type}: {left} rows of deleted users left")
    out["ratio_each_over_one_call"] = out["one_call_each_s_per_user"] / out["one_call_s_per_user"]
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="canonical data dir (`slotcast data generate`)")
    ap.add_argument("--keys", type=int, default=1_000_000, help="synthetic (user, product) keys added")
    ap.add_argument("--users", type=int, default=6, help="users deleted per backend (half by each method)")
    ap.add_argument(
        "--batch-users", type=int, default=0, help="then N users one call each and N in one call (0: skip)"
    )
    ap.add_argument(
        "--redis", default="start", help="'start' a private redis-server, a redis:// URL, or 'off'"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/deletion.json"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")

    import pandas as pd

    from features.settings import FeatureSettings
    from features.store import build_feature_store

    buyers = pd.read_parquet(args.data / "events.parquet", columns=["user_id", "type"])
    ranked = [int(u) for u in buyers.loc[buyers["type"] == "purchase", "user_id"].value_counts().index]
    users, more = ranked[: args.users], ranked[args.users : args.users + 2 * args.batch_users]
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "users": len(users)}
    backends = {"sqlite": {}}
    proc, url = _start_redis() if args.redis == "start" else (None, args.redis)
    if args.redis != "off":
        backends["redis"] = {"online_store": "redis", "redis_url": url}
    try:
        for name, kw in backends.items():
            settings = FeatureSettings(state_dir=Path(tempfile.mkdtemp(prefix=f"bench-del-{name}-")), **kw)
            with redirect_stdout(StringIO()):
                build_feature_store(args.data, settings)
            result[name] = r = bench_backend(settings, users, args.keys)
            print(
                f"{name}: {args.keys:,} padded keys; per deletion median bytes {r['bytes_median_s'] * 1e3:.1f} ms, "
                f"decoding {r['decoding_median_s'] * 1e3:.1f} ms (x{r['ratio_decoding_over_bytes']:.0f}); "
                f"rows removed {r['bytes_rows_removed']} / {r['decoding_rows_removed']}",
                flush=True,
            )
            if args.batch_users:
                r["batch"] = b = bench_batch(settings, more)
                print(
                    f"{name}: {b['batch_users']} users one call each {b['one_call_each_s_per_user'] * 1e3:.1f} ms "
                    f"per user, in one call {b['one_call_s_per_user'] * 1e3:.2f} ms per user "
                    f"(x{b['ratio_each_over_one_call']:.0f}); rows {b['one_call_each_rows']} / {b['one_call_rows']}",
                    flush=True,
                )
    finally:
        if proc is not None:
            proc.terminate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
