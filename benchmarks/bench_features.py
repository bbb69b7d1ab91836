"""Feature store benchmark: build time and peak memory, online lookup latency (SQLite, Redis).

    .venv/bin/python -m benchmarks.bench_features --data DIR [--state-dir DIR] [--redis start|URL|off]

Build: `features build` phases (offline DuckDB tables, feast apply, online load) with wall time and
the process's peak RSS. Lookups: one user + 100 products (a random user, random products, a
random stream) through Feast's ``get_online_features`` (``FeastFeatureReader``) and through the
fast path (``FastOnlineReader``), p50/p99 of wall time and of this thread's CPU time (on a shared,
loaded machine the CPU time is the steadier figure). Results go to stdout and a JSON file.
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
    reader: Any, users: np.ndarray, products: np.ndarray, streams: np.ndarray, n: int, seed: int
) -> dict:
    rng = np.random.default_rng(seed)
    wall, cpu = [], []
    reader.online(int(users[0]), products[:100].tolist(), stream_id=int(streams[0]))  # warm: registry, caches
    for _ in range(n):
        u = int(rng.choice(users))
        p = rng.choice(products, size=min(100, len(products)), replace=False).tolist()
        s = int(rng.choice(streams)) if len(streams) else None
        t0, c0 = time.perf_counter(), time.thread_time()
        reader.online(u, p, stream_id=s)
        cpu.append((time.thread_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    return {"wall_ms": _percentiles(wall), "cpu_ms": _percentiles(cpu)}


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
        "--redis", default="start", help="'start' a private redis-server, a redis:// URL, or 'off'"
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
    lookups: dict[str, Any] = {}
    lookups["sqlite"] = {
        "feast": bench_lookups(
            FeastFeatureReader(settings), users, products, streams, max(20, args.lookups // 5), 1
        ),
        "fast": bench_lookups(FastOnlineReader(settings), users, products, streams, args.lookups, 2),
    }
    print("sqlite", json.dumps(lookups["sqlite"]))
    proc = None
    if args.redis != "off":
        if args.redis == "start":
            proc, url = _start_redis()
        else:
            url = args.redis
        try:
            rsettings = FeatureSettings(state_dir=state, online_store="redis", redis_url=url)
            t0 = time.perf_counter()
            store, defs = apply_definitions(rsettings)
            with redirect_stdout(StringIO()):
                materialize(store, defs, rsettings, datetime.now(UTC) + timedelta(days=3650))
            lookups["redis_load_s"] = time.perf_counter() - t0
            lookups["redis"] = {
                "feast": bench_lookups(
                    FeastFeatureReader(rsettings, store),
                    users,
                    products,
                    streams,
                    max(20, args.lookups // 5),
                    3,
                ),
                "fast": bench_lookups(
                    FastOnlineReader(rsettings, store), users, products, streams, args.lookups, 4
                ),
            }
            print("redis", json.dumps(lookups["redis"]))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    result["lookups"] = lookups
    result["peak_rss_mb"] = _peak_rss_mb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
