"""Training wall time and peak memory per phase on a simulated world: ALS fits, ranker dataset
build (queries, candidates, point-in-time features), ranker fit.

    .venv/bin/python -m benchmarks.bench_training --help
    .venv/bin/python -m benchmarks.bench_training --generate 20000,2000,14 --no-features

``--generate USERS,PRODUCTS,DAYS`` first runs ``slotcast data generate`` into a temp dir (not timed);
``--features`` builds the Feast store there first (timed separately, as ``features_build_s``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class PeakRSS:
    """Samples this process's RSS every 50 ms; ``peak`` is the maximum seen since ``reset``."""

    def __init__(self) -> None:
        import psutil

        self._p = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._p.memory_info().rss)
            time.sleep(0.05)

    def reset(self) -> None:
        self.peak = self._p.memory_info().rss

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="a data directory of canonical tables")
    p.add_argument("--generate", help="USERS,PRODUCTS,DAYS: simulate a world first (not timed)")
    p.add_argument("--features", action=argparse.BooleanOptionalAction, default=False,
                   help="build and use the Feast ranker_v1 features")  # fmt: skip
    p.add_argument("--feature-state", type=Path,
                   help="use the Feast store already built in this state dir (e.g. a pipeline's) instead of --features")  # fmt: skip
    p.add_argument("--max-queries", type=int, default=20_000)
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    if not args.data and not args.generate:
        p.error("give --data DIR or --generate USERS,PRODUCTS,DAYS")

    from training.fit import _fit_ranker, build_data, check_trainable
    from training.run import load_inputs
    from training.settings import TrainSettings

    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    data = args.data
    if args.generate:
        u, pr, d = (int(x) for x in args.generate.split(","))
        data = tmp / "data"
        subprocess.run([sys.executable, "-m", "pipelines.cli", "data", "generate", "--users", str(u), "--products",
                        str(pr), "--days", str(d), "--out", str(data), "--no-progress"], check=True)  # fmt: skip
    s = TrainSettings(state_dir=tmp / "state", max_queries=args.max_queries)
    rss = PeakRSS()
    fig: dict[str, float] = {}
    reader = None
    if args.feature_state:
        from features.retrieval import FeastFeatureReader
        from features.settings import FeatureSettings

        reader = FeastFeatureReader(FeatureSettings(state_dir=args.feature_state))
    elif args.features:
        from features.retrieval import FeastFeatureReader
        from features.settings import FeatureSettings
        from features.store import build_feature_store

        fs = FeatureSettings(state_dir=s.state_dir)
        t = time.perf_counter()
        build_feature_store(data, fs)
        fig["features_build_s"] = time.perf_counter() - t
        reader = FeastFeatureReader(fs)
    rss.reset()
    t = time.perf_counter()
    events, sp_, items = load_inputs(data, s)
    fig["load_s"] = time.perf_counter() - t
    fig["n_events"] = float(len(events))
    rss.reset()
    t = time.perf_counter()
    rd, *_, timings = build_data(events, sp_, items, s, reader)
    fig["als_fit_s"] = timings["als_fit_s"]
    fig["dataset_build_s"] = timings["dataset_build_s"]
    fig["als_and_dataset_peak_rss_mb"] = rss.peak / 2**20
    check_trainable(rd, s)
    rss.reset()
    t = time.perf_counter()
    _fit_ranker(rd, s.ranker)
    fig["ranker_fit_s"] = time.perf_counter() - t
    fig["ranker_peak_rss_mb"] = rss.peak / 2**20
    fig["ranker_rows"] = float(len(rd.part("train", candidates_only=True)))
    import resource

    fig["process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss.stop()
    fig["total_train_s"] = fig["als_fit_s"] + fig["dataset_build_s"] + fig["ranker_fit_s"]
    for k, v in fig.items():
        print(f"{k:<28} {v:>14,.2f}" if not float(v).is_integer() else f"{k:<28} {int(v):>14,}")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
