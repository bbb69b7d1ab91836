"""Off-policy evaluation of five policies on ~1M logged carousel impressions.

    .venv/bin/python -m benchmarks.bench_evaluation --impressions 1000000 --repeats 3

Builds a canonical ``impressions`` table (and ``stream_products``) from the synthetic slate bandit
(training.evaluation.synthetic: the simulator's logging policy, exact propensities), then times
what ``slotcast evaluate`` does with it: load the log and every request's on-air candidates
(``carousel_log``), rank them with five policies, and estimate each one's value with IPS, SNIPS and
DR (400-draw bootstrap 95% intervals, one set of draws shared by all policies), plus the logging
policy's on-policy value and one paired champion-vs-challenger comparison. Prints the median wall time per phase; figures go to
benchmarks/results/evaluation.md by hand.
"""

from __future__ import annotations

import os

# Threaded OpenBLAS thrashes on a shared 2-core box (25x the CPU time for the bootstrap's matmul);
# the CLI sets the same default before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from training.evaluation.logs import carousel_log
from training.evaluation.ope import evaluate_policies, on_policy_value
from training.evaluation.policies import RandomPolicy, ScoreFnPolicy, rank
from training.evaluation.run import empirical_reward_model
from training.evaluation.slates import TargetSlates
from training.evaluation.synthetic import SlateWorld


def make_tables(n_impressions: int, seed: int = 0) -> tuple[SlateWorld, pd.DataFrame, pd.DataFrame]:
    world = SlateWorld.make(seed=seed, n_users=50_000, n_products=3_000, n_streams=200, n_on_air=14, k=6,
                            eps=0.2, dim=8)  # fmt: skip
    n_req = n_impressions // world.k
    log, users, streams = world.log(n_req, seed)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    ts = t0 + pd.to_timedelta(np.arange(n_req) * 2, unit="s")
    req = log.request
    impressions = pd.DataFrame(
        {
            "ts": ts[req],
            "request_id": pd.Series(req).astype(str).to_numpy(),
            "user_id": users[req],
            "stream_id": streams[req],
            "product_id": log.item,
            "slot": log.slot,
            "policy": "logging",
            "propensity": log.propensity,
            "clicked": log.reward > 0,
            "purchased": log.reward > 0,
        }
    )
    s, n = world.on_air.shape
    stream_products = pd.DataFrame(
        {
            "stream_id": np.repeat(np.arange(s), n),
            "product_id": world.on_air.ravel(),
            "on_air_from": t0 - pd.Timedelta(days=1),
            "on_air_to": pd.Series(pd.NaT, index=range(s * n), dtype="datetime64[us, UTC]"),
        }
    )
    return world, impressions, stream_products


class _Clock:
    """Wall and CPU seconds per phase: on a shared box CPU time is the steadier figure."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t = (time.perf_counter(), time.process_time())

    def lap(self, phase: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.wall[phase], self.cpu[phase] = w - self._t[0], c - self._t[1]
        self._t = (w, c)


def run_once(
    world: SlateWorld, impressions: pd.DataFrame, stream_products: pd.DataFrame, n_boot: int
) -> _Clock:
    clock = _Clock()
    lr = carousel_log(impressions, stream_products)
    clock.lap("load log + candidates")
    users = lr.requests["user_id"].to_numpy(np.int64)
    policies = [
        ScoreFnPolicy("popular", world.popular_scores),
        ScoreFnPolicy("oracle", world.oracle_scores),
        ScoreFnPolicy("anti", world.anti_scores),
        ScoreFnPolicy("logging-greedy", world.logging_scores),
        RandomPolicy(),
    ]
    slates = {p.name: rank(p, users, lr.candidates, world.k) for p in policies}
    clock.lap("rank 5 policies")
    _, q = empirical_reward_model(lr)
    on_policy_value(lr.log, n_boot=n_boot)
    evaluate_policies(lr.log, {n: TargetSlates(s) for n, s in slates.items()}, q, pairs=[("popular", "oracle")],
                      n_boot=n_boot)  # fmt: skip
    clock.lap("IPS/SNIPS/DR x5, on-policy, paired diff")
    clock.wall["total"], clock.cpu["total"] = sum(clock.wall.values()), sum(clock.cpu.values())
    return clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--impressions", type=int, default=1_000_000, help="logged impression rows (k=6 per request)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t = time.perf_counter()
    world, impressions, sp = make_tables(args.impressions, args.seed)
    print(f"built {len(impressions):,} impressions in {time.perf_counter() - t:.1f} s (not timed below)")
    runs = [run_once(world, impressions, sp, args.n_boot) for _ in range(args.repeats)]
    for phase in runs[0].wall:
        wall = [r.wall[phase] for r in runs]
        cpu = statistics.median(r.cpu[phase] for r in runs)
        print(f"{phase:42s} wall median {statistics.median(wall):6.2f} s  cpu median {cpu:6.2f} s"
              f"   (wall runs: {', '.join(f'{v:.2f}' for v in wall)})")  # fmt: skip
    total = statistics.median(r.wall["total"] for r in runs)
    print(
        f"target: 5 policies on {len(impressions):,} impressions within 60 s -> {'met' if total <= 60 else 'MISSED'}"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
