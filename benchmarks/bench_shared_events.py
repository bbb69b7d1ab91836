"""What taking in other workers' pushes costs a worker (serving/shared_events.py).

Writes ``--pushes`` push_sent lines of another worker to a shared-events day file, then times one
worker's catalogue reading and applying them (what a worker starting after a week of campaigns
does, in a thread of its own) and its peak memory before and after.

    uv run --frozen python -m benchmarks.bench_shared_events --pushes 1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pushes", type=int, default=1_000_000, help="push_sent lines another worker wrote")
    ap.add_argument("--users", type=int, default=20_000, help="users of the demo catalogue")
    args = ap.parse_args(argv)

    from serving.catalog import Catalog
    from serving.demo import demo_tables
    from serving.shared_events import SharedEvents

    d = Path(tempfile.mkdtemp()) / "shared_events"
    (d / "push_sent").mkdir(parents=True)
    path = d / "push_sent" / f"{datetime.now(UTC).strftime('%Y%m%d')}.jsonl"
    with open(path, "w") as f:
        for i in range(args.pushes):
            line = {"w": "other", "event_id": 10**15 + i, "type": "push_sent", "user_id": i % args.users,
                    "product_id": 5, "ts_us": 1_700_000_000_000_000 + i}  # fmt: skip
            f.write(json.dumps(line) + "\n")
    cat = Catalog(demo_tables(n_users=args.users, n_products=100, n_streams=2, per_stream=10, seed=1))
    cat.shared_events = SharedEvents(d, "me", {"push_sent": 7.0, "purchase": 90.0}, cat.history_event_ids)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    cat.shared_events.sync(cat._apply_history, force=True)
    seconds = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"pushes": args.pushes, "mb": path.stat().st_size / 1e6, "seconds": seconds, "rss_before_mb": rss0,
           "rss_after_mb": rss1}  # fmt: skip
    print(f"{args.pushes:,} pushes ({out['mb']:.0f} MB of lines): read and applied in {seconds:.1f} s; "
          f"peak RSS {rss0:.0f} -> {rss1:.0f} MB")  # fmt: skip
    return out


if __name__ == "__main__":
    main()
