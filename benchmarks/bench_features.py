"""Feature store benchmark: build time and peak memory, online lookup latency (SQLite, Redis).

    .venv/bin/python -m benchmarks.bench_features --data DIR [--state-dir DIR] [--redis start|URL|off]

Build: `features build` phases (offline DuckDB tables, feast apply, online load) with wall time and
the process's peak RSS. Lookups: one user + 100 products (a random user, random products, a
random stream) through Feast's ``get_online_features`` (``FeastFeatureReader``) and through the
fast path (``FastOnlineReader``), p50/p99 of wall time and of this thread's CPU time (on a shared,
loaded machine the CPU time is the steadier figure). On both backends the fast path is timed twice,
side by side on the same requests: ``fast`` (every view of a lookup in one call: one Redis round
trip, one SQLite statement) and ``fast_per_view`` (one ``online_read`` per view: the fast path before
features.online_reads.RedisBatch and features.online_sqlite.SqliteBatch). Push -> visible: how long
after a live event is pushed the online lookup shows it (issue 3: within the same second).
Results go to stdout and a JSON file.

Re-running on a loaded Redis: ``--skip-build --redis redis://HOST:PORT/0 --skip-redis-load``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "n": len(xs)}


def bench_lookups(
    readers: dict[str, Any], users: np.ndarray, products: np.ndarray, streams: np.ndarray, n: int, seed: int
) -> dict[str, dict]:
    """p50/p99 wall and thread-CPU ms of ``n`` lookups per reader. The readers take turns on the
    same random requests (rotating who goes first), so on a loaded machine they share its noise."""
    rng = np.random.default_rng(seed)
    wall: dict[str, list[float]] = {k: [] for k in readers}
    cpu: dict[str, list[float]] = {k: [] for k in readers}
    for reader in readers.values():  # warm: registry, caches, connections
        reader.online(int(users[0]), products[:100].tolist(), stream_id=int(streams[0]))
    names = list(readers)
    for i in range(n):
        u = int(rng.choice(users))
        p = rng.choice(products, size=min(100, len(products)), replace=False).tolist()
        s = int(rng.choice(streams)) if len(streams) else None
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0, c0 = time.perf_counter(), time.thread_time()
            readers[name].online(u, p, stream_id=s)
            cpu[name].append((time.thread_time() - c0) * 1000)
            wall[name].append((time.perf_counter() - t0) * 1000)
    return {k: {"wall_ms": _percentiles(wall[k]), "cpu_ms": _percentiles(cpu[k])} for k in readers}


def bench_push_visible(
    reader: Any, users: np.ndarray, products: np.ndarray, streams: np.ndarray, n: int
) -> dict:
    """Issue 3's "a pushed event is visible to the online lookup within the same second": ms from
    the start of ``ingest_live_events`` (one product click) to the first lookup that shows the new
    ``live_clicks`` total, polling; ``n`` random (user, stream) pairs. The push is synchronous, so
    the first lookup after it should already see it; ``max_ms`` is the figure for the target."""
    from features.live import ingest_live_events

    rng = np.random.default_rng(5)
    took: list[float] = []
    for _ in range(n):
        u, s, p = int(rng.choice(users)), int(rng.choice(streams)), int(rng.choice(products))
        before = reader.online(u, [p], stream_id=s).iloc[0]["live_clicks"]
        want = (0.0 if np.isnan(before) else float(before)) + 1.0
        t0 = time.perf_counter()
        ingest_live_events(reader, [{"user_id": u, "stream_id": s, "product_id": p, "type": "product_click"}])
        while reader.online(u, [p], stream_id=s).iloc[0]["live_clicks"] != want:
            if time.perf_counter() - t0 > 10.0:
                raise RuntimeError(f"a pushed click for user {u} in stream {s} was not visible after 10 s")
        took.append((time.perf_counter() - t0) * 1000)
    return {**_percentiles(took), "max_ms": float(max(took)), "target_ms": 1000.0}


def _start_redis() -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server not installed (apt-get install redis-server), or pass --redis off")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tempfile.mkdtemp(prefix="bench-redis-"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def _table(lookups: dict[str, Any]) -> str:
    """The lookup figures as a markdown table (for benchmarks/results/features.md)."""
    lines = [
        "| backend | reader | wall p50 | wall p99 | CPU p50 | CPU p99 | n |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for backend in ("sqlite", "redis"):
        for reader, r in lookups.get(backend, {}).items():
            w, c = r["wall_ms"], r["cpu_ms"]
            lines.append(
                f"| {backend} | {reader} | {w['p50']:.2f} ms | {w['p99']:.2f} ms | {c['p50']:.2f} ms | {c['p99']:.2f} ms | {w['n']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, required=True, help="canonical data dir (e.g. from `slotcast data generate`)"
    )
    ap.add_argument(
        "--state-dir", type=Path, default=None, help="state dir to build into (default: a temp dir)"
    )
    ap.add_argument("--skip-build", action="store_true", help="reuse an existing build in --state-dir")
    ap.add_argument("--lookups", type=int, default=200, help="timed lookups per reader and backend")
    ap.add_argument(
        "--pushes",
        type=int,
        default=100,
        help="live events pushed per backend, each timed until a lookup sees it",
    )
    ap.add_argument(
        "--redis", default="start", help="'start' a private redis-server, a redis:// URL, or 'off'"
    )
    ap.add_argument(
        "--feast-lookups",
        type=int,
        default=None,
        help="lookups through Feast's own path (default lookups/5, 0: skip)",
    )
    ap.add_argument(
        "--skip-redis-load", action="store_true", help="the --redis URL already holds this build's features"
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/features.json"))
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    import duckdb

    from features.online_fast import FastOnlineReader
    from features.retrieval import FeastFeatureReader
    from features.settings import FeatureSettings
    from features.store import apply_definitions, build_feature_store, materialize

    state = args.state_dir or Path(tempfile.mkdtemp(prefix="bench-features-"))
    settings = FeatureSettings(state_dir=state)
    result: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "data": str(args.data)}
    events = duckdb.sql(f"SELECT count(*) FROM read_parquet('{args.data / 'events.parquet'}')").fetchall()[0][
        0
    ]
    result["events"] = int(events)
    if not args.skip_build:
        t0 = time.perf_counter()
        with redirect_stdout(StringIO()):
            report = build_feature_store(args.data, settings)
        result["build"] = {
            "wall_s": time.perf_counter() - t0,
            "phases_s": report.seconds,
            "offline_rows": report.offline_rows,
            "online_rows": report.online_rows,
            "peak_rss_mb": _peak_rss_mb(),
        }
        print(json.dumps(result["build"], indent=1))

    off = settings.offline_dir
    users = (
        duckdb.sql(f"SELECT DISTINCT user_id FROM read_parquet('{off / 'user_features.parquet'}')")
        .df()["user_id"]
        .to_numpy()
    )
    products = (
        duckdb.sql(f"SELECT DISTINCT product_id FROM read_parquet('{off / 'product_features.parquet'}')")
        .df()["product_id"]
        .to_numpy()
    )
    streams = (
        duckdb.sql(f"SELECT DISTINCT stream_id FROM read_parquet('{off / 'stream_features.parquet'}')")
        .df()["stream_id"]
        .to_numpy()
    )

    class PerViewReader(FastOnlineReader):  # the fast path before the batches: one call per view
        def _batch_reader(self) -> None:
            return None

    n_feast = max(20, args.lookups // 5) if args.feast_lookups is None else args.feast_lookups
    lookups: dict[str, Any] = {}
    sqlite = {"fast": FastOnlineReader(settings), "fast_per_view": PerViewReader(settings)}
    lookups["sqlite"] = bench_lookups(sqlite, users, products, streams, args.lookups, 2)
    if n_feast:
        lookups["sqlite"] |= bench_lookups(
            {"feast": FeastFeatureReader(settings)}, users, products, streams, n_feast, 1
        )
    lookups["sqlite_push_visible"] = bench_push_visible(sqlite["fast"], users, products, streams, args.pushes)
    print(
        "sqlite", json.dumps(lookups["sqlite"]), "push -> visible", json.dumps(lookups["sqlite_push_visible"])
    )
    proc = None
    if args.redis != "off":
        if args.redis == "start":
            proc, url = _start_redis()
        else:
            url = args.redis
        try:
            rsettings = FeatureSettings(state_dir=state, online_store="redis", redis_url=url)
            if args.skip_redis_load:
                from features.store import open_store

                store = open_store(rsettings)
            else:
                t0 = time.perf_counter()
                store, defs = apply_definitions(rsettings)
                with redirect_stdout(StringIO()):
                    materialize(store, defs, rsettings, datetime.now(UTC) + timedelta(days=3650))
                lookups["redis_load_s"] = time.perf_counter() - t0
            fast = {
                "fast": FastOnlineReader(rsettings, store),
                "fast_per_view": PerViewReader(rsettings, store),
            }
            lookups["redis"] = bench_lookups(fast, users, products, streams, args.lookups, 4)
            if n_feast:
                lookups["redis"] |= bench_lookups(
                    {"feast": FeastFeatureReader(rsettings, store)}, users, products, streams, n_feast, 3
                )
            lookups["redis_push_visible"] = bench_push_visible(
                fast["fast"], users, products, streams, args.pushes
            )
            print(
                "redis",
                json.dumps(lookups["redis"]),
                "push -> visible",
                json.dumps(lookups["redis_push_visible"]),
            )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    print(_table(lookups))
    result["lookups"] = lookups
    result["peak_rss_mb"] = _peak_rss_mb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
