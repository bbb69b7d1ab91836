"""Benchmark the world simulator: wall time, events per second and peak memory.

    .venv/bin/python -m benchmarks.bench_simulator --users 1000000 --products 50000 --days 30

Targets (issue 2): >= 10M events at that size, >= 200k events/s, peak RSS <= 4 GB on the 2-core dev box.
Peak RSS is the process high-water mark (getrusage), so run one size per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _marginals(data_dir: Path, users: int, products: int) -> dict[str, float]:
    """The world's shape at this size: long tail, conversion, inactivity (the tested ranges)."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ev = pq.read_table(data_dir / "events.parquet", columns=["type", "product_id", "stream_id", "user_id"])
    clicks = ev.filter(pc.equal(ev["type"], "product_click"))
    per_product = np.sort(np.bincount(clicks["product_id"].to_numpy(), minlength=products + 1))[::-1]
    in_stream_buys = ev.filter(pc.and_(pc.equal(ev["type"], "purchase"), pc.is_valid(ev["stream_id"])))
    engaged = ev.filter(
        pc.is_in(ev["type"], pa_strings(["stream_view", "product_click", "purchase", "push_open"]))
    )
    return {
        "top1pct_click_share": round(
            float(per_product[: max(1, products // 100)].sum() / per_product.sum()), 3
        ),
        "click_to_purchase": round(in_stream_buys.num_rows / clicks.num_rows, 4),
        "inactive_user_share": round(1 - len(pc.unique(engaged["user_id"])) / users, 3),
    }


def pa_strings(values: list[str]):
    import pyarrow as pa

    return pa.array(values, pa.string())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--products", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=None, help="data directory to keep (default: a temporary one, removed)"
    )
    ap.add_argument("--progress", action="store_true", help="show the progress bars")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = ap.parse_args(argv)

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import pandas  # noqa: F401  pyarrow imports it lazily on first use: warm it so the timing is the simulation
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from pipelines.simulator import SimConfig, generate

    cfg = SimConfig(users=args.users, products=args.products, days=args.days, seed=args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="slotcast-bench-sim-"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        result = generate(cfg, out, progress=args.progress)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, before the checks
        shape = _marginals(out, args.users, args.products)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    figures = {
        "users": args.users,
        "products": args.products,
        "days": args.days,
        "events": result.rows["events"],
        "impressions": result.rows["impressions"],
        "pushes": result.rows["pushes"],
        "wall_s": round(wall, 2),
        "events_per_s": round(result.rows["events"] / wall),
        # the dev box is shared: CPU time shows what the code costs when it is not waiting its turn
        "cpu_s": round(cpu, 2),
        "events_per_cpu_s": round(result.rows["events"] / cpu),
        "peak_rss_mb": round(peak_mb),
        "output_mb": round(size / 2**20, 1),
        **shape,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:>14}: {v:,}" if isinstance(v, int) else f"{k:>14}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
