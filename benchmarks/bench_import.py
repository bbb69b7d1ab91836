"""Throughput of validation and of the Taobao importer on synthetic data of known shape.

    .venv/bin/python -m benchmarks.bench_import --events 10000000 --lines 5000000 --repeats 3

``validate``: ``validate_table("events", ...)`` on a typed events table with 1% bad rows (negative
amounts, unknown types, duplicate ids, timestamps out of range, unknown products), with the user
and product reference checks on. ``import``: ``slotcast data import --format taobao`` on a
UserBehavior.csv with 0.1% garbled lines. Prints medians, rows/s and peak RSS; figures go to
benchmarks/results/import.md by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from features.data_model import TS


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_events(n: int, seed: int = 0, bad_share: float = 0.01) -> tuple[pa.Table, dict[str, pa.Array]]:
    rng = np.random.default_rng(seed)
    n_users, n_products = max(n // 10, 10), max(n // 200, 10)
    t0 = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1e6)
    ts = t0 + rng.integers(0, 30 * 86_400_000_000, n)
    types = np.array(["product_click", "add_to_cart", "purchase", "stream_view", "like"])[
        rng.integers(0, 5, n)
    ]
    product = rng.integers(0, n_products, n).astype(np.int64)
    amount = np.where(types == "purchase", rng.gamma(2.0, 20.0, n), np.nan)
    event_id = np.arange(1, n + 1, dtype=np.int64)
    bad = np.flatnonzero(rng.random(n) < bad_share)
    kind = rng.integers(0, 5, len(bad))
    amount[bad[kind == 0]] = -1.0
    types[bad[kind == 1]] = "teleport"
    event_id[bad[kind == 2]] = 1
    ts[bad[kind == 3]] = t0 - 40 * 365 * 86_400_000_000
    product[bad[kind == 4]] = n_products + 1
    table = pa.table(
        {
            "event_id": event_id,
            "ts": pa.array(ts, pa.int64()).cast(TS),
            "user_id": rng.integers(0, n_users, n).astype(np.int64),
            "type": pa.array(types),
            "product_id": pa.array(product, mask=types == "stream_view"),
            "stream_id": pa.nulls(n, pa.int64()),
            "community_id": pa.nulls(n, pa.int64()),
            "watch_seconds": pa.nulls(n, pa.float64()),
            "amount": pa.array(amount, from_pandas=True),
        }
    )
    refs = {
        "user_id": pa.array(np.arange(n_users, dtype=np.int64)),
        "product_id": pa.array(np.arange(n_products, dtype=np.int64)),
    }
    return table, refs


def write_taobao(path: Path, n: int, seed: int = 0, bad_share: float = 0.001, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(seed)
    behaviours = np.array(["pv", "pv", "pv", "pv", "fav", "cart", "buy"])
    with path.open("w") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            users = rng.integers(1, 1_000_000, m)
            items = rng.integers(1, 5_000_000, m)
            cats = items % 9439
            beh = behaviours[rng.integers(0, len(behaviours), m)]
            ts = 1511539200 + rng.integers(0, 9 * 86400, m)
            lines = [
                f"{u},{i},{c},{b},{t}" for u, i, c, b, t in zip(users, items, cats, beh, ts, strict=True)
            ]
            for j in np.flatnonzero(rng.random(m) < bad_share):
                lines[j] = "garbled,line"
            f.write("\n".join(lines) + "\n")


def bench_validate(n: int, repeats: int) -> None:
    from features.validation import ValidationRules, validate_table

    table, refs = make_events(n)
    rules = ValidationRules(now=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        res = validate_table("events", table, refs, rules=rules)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    med = statistics.median(times)
    print(
        f"validate: {n:,} events, {res.quarantined.num_rows:,} quarantined; median wall {med:.2f} s "
        f"({n / med / 1e6:.2f} M rows/s), median CPU {statistics.median(cpu):.2f} s, over {repeats}; "
        f"wall runs {', '.join(f'{x:.2f}' for x in times)}; peak RSS {_peak_rss_mb():,.0f} MB"
    )


def bench_import(n: int, repeats: int) -> None:
    from pipelines.importers import import_logs

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "UserBehavior.csv"
        write_taobao(src, n)
        size_mb = src.stat().st_size / 2**20
        times, cpu = [], []
        for i in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            report = import_logs("taobao", src, Path(d) / f"out{i}")
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)  # this process only; duckdb's threads count here too
        med = statistics.median(times)
        print(
            f"import taobao: {n:,} lines ({size_mb:,.0f} MiB), {report.quarantined:,} quarantined, {report.users:,} users, "
            f"{report.products:,} products; median wall {med:.2f} s ({n / med / 1e6:.2f} M lines/s), "
            f"median CPU {statistics.median(cpu):.2f} s, over {repeats}; "
            f"wall runs {', '.join(f'{x:.2f}' for x in times)}; peak RSS {_peak_rss_mb():,.0f} MB"
        )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--events", type=int, default=10_000_000, help="events to validate (0 skips)")
    p.add_argument("--lines", type=int, default=5_000_000, help="Taobao lines to import (0 skips)")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    if a.events:
        bench_validate(a.events, a.repeats)
    if a.lines:
        bench_import(a.lines, a.repeats)


if __name__ == "__main__":
    main()
