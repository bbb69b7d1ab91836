"""Catalogue reload (``POST /admin/reload`` after a features build): its wall time and memory, and
what it does to carousels answered meanwhile.

    uv run --frozen python -m benchmarks.bench_catalog_reload --data DIR [--reloads 3] [--out FILE]

``DIR`` is a data directory (``slotcast data generate``). Its catalogue tables are copied to a
temporary state directory, a worker is built on them in this process (``SlotcastApp`` over that
catalogue, the demo model and features: the model is not what is measured), then the tables are
touched (a new modification time: "a features build rewrote them") and the catalogue is read again
``--reloads`` times (``SlotcastApp.reload_catalog``, what the endpoint runs). Meanwhile a thread asks
for carousels back to back; the same thread runs as long again with no reload, before and after,
for the baseline. Figures: the worker's start (catalogue read), each reload's wall time, resident
memory after the start, at the peak and after the reloads, and carousel latency (median, p99,
max) with and without a reload under way. JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def carousels(app: Any, stop: threading.Event, users: np.ndarray, streams: np.ndarray) -> list[float]:
    """Latencies (ms) of carousels asked back to back until ``stop``."""
    from serving.schemas import CarouselRequest

    out: list[float] = []
    i = 0
    while not stop.is_set():
        req = CarouselRequest(
            user_id=int(users[i % len(users)]), stream_id=int(streams[i % len(streams)]), k=8
        )
        t = time.perf_counter()
        app.carousel(req)
        out.append((time.perf_counter() - t) * 1e3)
        i += 1
    return out


def summary(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "n": len(a),
        "p50_ms": float(np.median(a)),
        "p99_ms": float(np.quantile(a, 0.99)),
        "max_ms": float(a.max()),
    }


def during(app: Any, users: np.ndarray, streams: np.ndarray, work: Any) -> tuple[list[float], float]:
    """Carousel latencies while ``work()`` runs, and its wall time (s)."""
    stop, got = threading.Event(), []
    th = threading.Thread(target=lambda: got.extend(carousels(app, stop, users, streams)))
    th.start()
    t = time.perf_counter()
    work()
    wall = time.perf_counter() - t
    stop.set()
    th.join()
    return got, wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a data directory (slotcast data generate)")
    p.add_argument("--reloads", type=int, default=3, help="catalogue reads after the start")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)

    import pyarrow.compute as pc

    from features.data_model import read_table, table_path
    from features.privacy import DeletionLedger
    from serving.catalog import CATALOG_TABLES
    from serving.catalog_reload import load_catalog
    from serving.demo import DemoFeatureSource, DemoModelSource, demo_tables
    from serving.runtime import SlotcastApp
    from serving.settings import ServingSettings

    state = Path(tempfile.mkdtemp(prefix="bench-catalog-reload-"))
    try:
        (state / "data").mkdir()
        for name in CATALOG_TABLES:
            if table_path(args.data, name).exists():
                shutil.copy(table_path(args.data, name), table_path(state / "data", name))
        settings = ServingSettings(state_dir=state, model_source="demo", feature_source="demo")
        products = read_table(args.data, "products")
        n_users = int(pc.max(read_table(args.data, "users", ["user_id"])["user_id"]).as_py()) + 1
        n_products = int(pc.max(products["product_id"]).as_py()) + 1
        features = DemoFeatureSource(
            demo_tables(n_users=200, n_products=n_products, n_streams=1, per_stream=10)
        )
        rss0 = rss_mb()
        t = time.perf_counter()
        catalog, stamp, error = load_catalog(settings, features)
        assert catalog is not None, error
        app = SlotcastApp(
            settings, DemoModelSource(n_users, n_products, 0.1, 3), features, catalog,
            DeletionLedger(state), catalog_stamp=stamp,
        )  # fmt: skip
        app.reload()
        start_s = time.perf_counter() - t
        gc.collect()
        rss_start = rss_mb()
        rng = np.random.default_rng(0)
        sp = read_table(args.data, "stream_products", ["stream_id"])["stream_id"].to_numpy()
        streams = rng.choice(np.unique(sp), 1000)
        users = rng.integers(0, n_users, 1000)
        carousels(app, _after(0.5), users, streams)  # warm up

        before, _ = during(app, users, streams, lambda: time.sleep(5))
        walls, under, peaks = [], [], []
        for _ in range(args.reloads):
            for name in CATALOG_TABLES:  # "a features build rewrote them"
                path = table_path(state / "data", name)
                if path.exists():
                    os.utime(path)
            ms, wall = during(app, users, streams, lambda: _check(app.reload_catalog()))
            walls.append(wall)
            under.extend(ms)
            gc.collect()
            peaks.append(peak_mb())
        rss_after = rss_mb()
        after, _ = during(app, users, streams, lambda: time.sleep(5))
        fig = {
            "events": read_table(args.data, "events", ["user_id"]).num_rows,
            "users": n_users,
            "products": n_products,
            "start_s": start_s,
            "reload_s": walls,
            "reload_s_median": statistics.median(walls),
            "rss_before_catalogue_mb": rss0,
            "rss_after_start_mb": rss_start,
            "rss_after_reloads_mb": rss_after,
            "peak_rss_mb": max(peaks),
            "carousel_no_reload_before": summary(before),
            "carousel_during_reload": summary(under),
            "carousel_no_reload_after": summary(after),
        }
        print(json.dumps(fig, indent=2))
        if args.out:
            args.out.write_text(json.dumps(fig, indent=2))
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _after(seconds: float) -> threading.Event:
    ev = threading.Event()
    threading.Timer(seconds, ev.set).start()
    return ev


def _check(result: tuple[bool, str | None]) -> None:
    reloaded, error = result
    if not reloaded:
        raise SystemExit(f"the catalogue was not read again: {error}")


if __name__ == "__main__":
    main()
