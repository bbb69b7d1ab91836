"""CPU per carousel in process, for comparing two versions of the code side by side.

Answers ``--requests`` carousels of real users in on-air streams of a built state (the requests
``bench_serving --state`` sends) with the app ``slotcast serve`` runs, ``--rounds`` times, and
prints the process CPU per carousel of each round and their median. The code is that of the
working directory: run it from a worktree of another commit to compare (alternate the two, the
box is shared):

    git worktree add /tmp/old OLD_SHA
    (cd /tmp/old && /path/to/main/.venv/bin/python -m benchmarks.bench_carousel_cpu --state STATE)
    uv run --frozen python -m benchmarks.bench_carousel_cpu --state STATE
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, required=True, help="a built state dir (make demo's)")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-on-air", type=int, default=5)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.getcwd())  # the working directory's code, also from another worktree
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from benchmarks.serving_requests import state_requests
    from serving.runtime import SlotcastApp
    from serving.schemas import CarouselRequest
    from serving.settings import ServingSettings

    app = SlotcastApp.from_settings(ServingSettings(state_dir=args.state))
    reqs = [
        CarouselRequest(**r)
        for r in state_requests(args.state / "data", args.requests, args.min_on_air, seed=1)
    ]
    for r in reqs[:200]:  # warm
        app.carousel(r)
    rounds = []
    for _ in range(args.rounds):
        t = time.process_time()
        for r in reqs:
            app.carousel(r)
        rounds.append((time.process_time() - t) / len(reqs) * 1e3)
    app.close()
    med = statistics.median(rounds)
    print(f"{os.getcwd()}: CPU ms per carousel {[round(x, 3) for x in rounds]}, median {med:.3f}")
    return med


if __name__ == "__main__":
    main()
