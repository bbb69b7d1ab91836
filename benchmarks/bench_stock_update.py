"""One stock update (``POST /products/stock``, or another worker's level taken in) on a world with
many streams: ``Catalog.replace_stock``, which finds the streams showing the product through one
index, against the loop before 6f0aac1 (an ``isin`` per stream), alternating in one process.

    uv run --frozen python -m benchmarks.bench_stock_update --data DIR [--updates 10]

``DIR`` is a data directory (``slotcast data generate``). Medians of the wall time per update of
one product's stock; each method updates the same random products in turn.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a data directory (slotcast data generate)")
    p.add_argument("--updates", type=int, default=10, help="updates per method")
    args = p.parse_args(argv)

    from serving.catalog import Catalog

    cat = Catalog.from_data_dir(args.data)

    def per_stream(rows: np.ndarray, levels: np.ndarray) -> None:
        """``replace_stock`` as it was: every stream asked whether it shows a changed product."""
        with cat._lock:
            stock, num = cat._p_stock.copy(), cat._p_num.copy()
            stock[rows] = num[rows, 2] = levels
            cat._p_stock, cat._p_num = stock, num
            changed = cat.products.index.to_numpy(np.int64)[rows]
            for sp in cat.on_air.values():
                if sp.attributes is not None and np.isin(sp.product_ids, changed).any():
                    r = cat.product_rows(sp.product_ids)
                    new = np.where(r >= 0, stock[np.where(r >= 0, r, 0)], np.nan)
                    new.flags.writeable = False
                    sp.attributes = {**sp.attributes, "stock": new}

    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"index": [], "isin per stream": []}
    methods = [("index", cat.replace_stock), ("isin per stream", per_stream)]
    for i in range(args.updates):
        rows = rng.choice(len(cat._p_stock), 1, replace=False)
        for name, fn in methods if i % 2 == 0 else methods[::-1]:
            t = time.perf_counter()
            fn(rows, np.array([float(i)]))
            times[name].append(time.perf_counter() - t)
    print(
        f"{len(cat.on_air)} streams, {len(cat._p_stock)} products; one product's stock, median of {args.updates}:"
    )
    for name, ts in times.items():
        print(f"  {name}: {statistics.median(ts) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
