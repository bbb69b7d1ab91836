"""What the ranker's shortlist (SLOTCAST_RERANK_SHORTLIST) buys and costs, judged by the simulator's truth.

The carousel looks up features for, and scores with LightGBM, only the first stage's (ALS) top n
on-air products; the rest keep the first stage's order below them. A longer shortlist costs CPU
per request (feature rows, ranker rows); whether it earns anything is a question for the world's
ground truth, not for logged clicks: for each shortlist length the same requests (real users of a
built state, in streams with ``--min-on-air`` or more products on air, as ``bench_serving --state``
sends them) are answered in process by the app ``slotcast serve`` runs, and every answer is scored
with the simulator's true purchase probability of each product at its slot
(``pipelines.simulator.truth.TrueWorld.purchase_prob``). Exploration is off (epsilon 0), so two
lengths differ only by their shortlist.

Reported per length: true expected purchases per 1,000 carousels and true expected revenue per
carousel (purchase probability x price: what the slot policy ranks by, ``rank_by:
expected_value``), each with its paired difference from ``--baseline`` and a bootstrap 95%
interval (the same requests under both), and the CPU per carousel (median over rounds that
alternate the lengths, so machine noise hits all of them).

    .venv/bin/python -m benchmarks.bench_shortlist --state STATE --lengths 10,20,50,80
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ALL = 0  # the "length" of the default: every on-air product reranked (RERANK_ON_AIR)


def _answers(
    app, reqs: list, shortlist: int, served
) -> tuple[list[tuple[list[int], list[int]]], list[float]]:  # type: ignore[no-untyped-def]
    """Each request's (product ids, slots) and CPU seconds with the stream shortlisted to its first
    stage's top ``shortlist`` (RERANK_ON_AIR=false), or with every on-air product reranked (ALL).
    ``served``: the pipeline's config as the service runs it. ALL is exactly that config, so its
    fallback answers keep the service's own shortlist, not the length measured before it."""
    rec = app._rec()
    if shortlist == ALL:
        rec.config = dataclasses.replace(served, rerank_on_air=True)
    else:
        rec.config = dataclasses.replace(served, rerank_shortlist=shortlist, rerank_on_air=False)
    slates, cpu = [], []
    for req in reqs:
        t = time.process_time()
        out = app.carousel(req)
        cpu.append(time.process_time() - t)
        slates.append(([s.product_id for s in out.slots], [s.slot for s in out.slots]))
    return slates, cpu


def true_value(world, reqs: list, slates: list[tuple[list[int], list[int]]], price=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per request: the sum over its slots of the true P(purchase | product at slot, stream), times
    the product's price when ``price`` (a product id -> price lookup) is given."""
    lengths = [len(p) for p, _ in slates]
    owner = np.repeat(np.arange(len(reqs)), lengths)
    products = np.fromiter((p for ps, _ in slates for p in ps), np.int64, sum(lengths))
    slots = np.fromiter((s for _, ss in slates for s in ss), np.int64, sum(lengths))
    users = np.array([r.user_id for r in reqs], np.int64)[owner]
    streams = np.array([r.stream_id for r in reqs], np.int64)[owner]
    p = world.purchase_prob(users, products, slots, streams)
    if price is not None:
        p = p * price(products)
    return np.bincount(owner, weights=p, minlength=len(reqs))


def paired_ci(diff: np.ndarray, seed: int, draws: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [float(diff[rng.integers(0, len(diff), len(diff))].mean()) for _ in range(draws)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )  # fmt: skip
    p.add_argument("--state", type=Path, required=True, help="a built state (data/truth from the simulator)")
    p.add_argument(
        "--lengths",
        default="10,20,50,80",
        help="shortlist lengths, comma-separated; every on-air product (the default) is always measured, as 'all'",
    )
    p.add_argument(
        "--baseline", type=int, default=50, help="the length the others are compared with (0: all)"
    )
    p.add_argument("--requests", type=int, default=2000, help="carousel requests per length and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds for the CPU figures")
    p.add_argument("--min-on-air", type=int, default=90, help="products on air at the request moments")
    p.add_argument("--seed", type=int, default=1, help="request mix and bootstrap seed")
    args = p.parse_args(argv)
    lengths = sorted({int(x) for x in args.lengths.split(",")} | {args.baseline, ALL})
    if min(lengths) < 0:
        p.error("--lengths must be positive (0 stands for every on-air product)")

    from benchmarks.serving_requests import state_requests
    from pipelines.simulator.truth import TrueWorld
    from serving.runtime import SlotcastApp
    from serving.schemas import CarouselRequest
    from serving.settings import ServingSettings

    state = args.state.resolve()
    world = TrueWorld.load(state / "data")
    app = SlotcastApp.from_settings(ServingSettings(state_dir=state, epsilon=0.0))
    ok, why = app.ready()
    if not ok:
        sys.exit(f"the service on {state} is not ready: {why}")
    bodies = state_requests(state / "data", args.requests, args.min_on_air, seed=args.seed)
    reqs = [CarouselRequest.model_validate(b) for b in bodies]
    served = app._rec().config
    _answers(app, reqs[:200], args.baseline, served)  # warm-up: caches, lazily built tables

    catalog = app._rec().catalog

    def price(ids: np.ndarray) -> np.ndarray:
        return np.nan_to_num(catalog.product_frame(ids)["price"])

    value: dict[int, np.ndarray] = {}
    revenue: dict[int, np.ndarray] = {}
    cpu: dict[int, list[float]] = {n: [] for n in lengths}
    for r in range(args.rounds):
        for n in lengths if r % 2 == 0 else lengths[::-1]:
            slates, secs = _answers(app, reqs, n, served)
            cpu[n].append(statistics.median(secs))
            got = true_value(world, reqs, slates)
            if n in value and not np.array_equal(value[n], got):
                sys.exit(f"shortlist {n}: answers changed between rounds (exploration must be off)")
            value[n], revenue[n] = got, true_value(world, reqs, slates, price)
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    app.close()

    print(f"# {len(reqs)} carousels on {state}, k=8, epsilon 0; truth from the simulator")
    print(
        "| shortlist | true purchases / 1,000 carousels | vs baseline (95% CI) "
        "| true revenue / carousel | vs baseline (95% CI) | CPU p50 per carousel |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for n in lengths:
        cells = []
        for table, scale in ((value, 1000.0), (revenue, 1.0)):
            diff = (table[n] - table[args.baseline]) * scale
            lo, hi = paired_ci(diff, args.seed)
            vs = "baseline" if n == args.baseline else f"{diff.mean():+.3f} ({lo:+.3f} .. {hi:+.3f})"
            cells += [f"{table[n].mean() * scale:.3f}", vs]
        runs = ", ".join(f"{c * 1e3:.2f}" for c in cpu[n])
        label = "all on air (default)" if n == ALL else str(n)
        print(f"| {label} | {' | '.join(cells)} | {statistics.median(cpu[n]) * 1e3:.2f} ms ({runs}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
