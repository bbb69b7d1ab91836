"""Pushing a product the ALS model never saw: which users does serving pick, judged by the truth?

A community push for one product ranks the audience by the ALS affinity (user factors x the
product's factors) through the bundle's push calibration. ALS leaves a product nobody interacted
with at zero factors, so every user scored the same and the audience came back in user-id order.
Serving now gives such a product the mean factors of its category's products
(``serving.push._factors``). This replays pushes through the app ``slotcast serve`` runs
(``Recommender.score_audience``, the code of ``POST /community/push``) on a built state of a
simulated world and scores the chosen users with the world's true P(purchase | pushed)
(``TrueWorld.push_purchase_prob``), against the first ``--n`` users in id order (what equal
scores gave before), a random ``--n`` and the true best ``--n`` (the ceiling). Products the model
did see are replayed too, as a reference: their ranking did not change.

Audiences: the segments (every user of a segment, broad) or the communities (narrow, each around
one category), consented and known to the model, at least 3 x ``--n`` users. Paired per push:
the difference from id order with a 95% interval (normal approximation).

    uv run --frozen python -m benchmarks.bench_push_cold --state STATE [--audiences segments]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.served_world import served_world


def _interval(d: np.ndarray) -> tuple[float, float, float]:
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def replay(app: Any, truth: Any, audiences: str, n: int, trials: int, seed: int) -> dict[str, Any]:
    models = app._current()[0]
    als, catalog, rec = models.als, app.catalog, app.recommender
    warm = np.any(np.asarray(als.item_factors) != 0, axis=1)
    cold_ids, warm_ids = als.items.ids[~warm], als.items.ids[warm]
    pools = dict(catalog.segment_members if audiences == "segments" else catalog.communities)
    rng = np.random.default_rng(seed)
    rows: dict[str, dict[str, list[float]]] = {"cold": {}, "warm": {}}
    names = list(pools)
    for t in range(trials):
        users = np.unique(np.asarray(pools[names[t % len(names)]], np.int64))
        users = users[catalog.marketing_consent(users) & (als.users.index(users) >= 0)]
        if len(users) < 3 * n:
            continue
        for kind, ids in (("cold", cold_ids), ("warm", warm_ids)):
            if not len(ids):
                continue
            pid = int(rng.choice(ids))
            true_p = truth.push_purchase_prob(users, np.full(len(users), pid))
            p, _ = rec.score_audience(models, users, np.array([pid], np.int64))
            picks = {
                "serving": np.argsort(-p, kind="stable")[:n],
                "id order (before, cold)": np.arange(n),
                "random": rng.choice(len(users), n, replace=False),
                "truth (ceiling)": np.argsort(-true_p, kind="stable")[:n],
            }
            for name, idx in picks.items():
                rows[kind].setdefault(name, []).append(float(true_p[idx].sum()))
    out: dict[str, Any] = {"audiences": audiences, "n": n}
    for kind, by in rows.items():
        if not by:
            continue
        out[kind] = {"pushes": len(by["serving"]), **{k: float(np.mean(v)) for k, v in by.items()}}
        for other in ("id order (before, cold)", "random"):
            d = np.asarray(by["serving"]) - np.asarray(by[other])
            out[kind][f"serving minus {other}"] = _interval(d)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, required=True, help="a built state dir of a simulated world")
    ap.add_argument("--audiences", choices=("segments", "communities"), default="segments")
    ap.add_argument("--n", type=int, default=100, help="users per push")
    ap.add_argument("--trials", type=int, default=120, help="pushes tried (audiences taken in turn)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/push_cold.json"))
    args = ap.parse_args(argv)
    with served_world(args.state) as (app, truth):
        result = replay(app, truth, args.audiences, args.n, args.trials, args.seed)
    for kind in ("cold", "warm"):
        r = result.get(kind)
        if not r:
            continue
        print(
            f"{kind} products, {r['pushes']} pushes of {args.n} users ({args.audiences}): true purchases per push"
        )
        for k, v in r.items():
            if isinstance(v, float):
                print(f"  {k:28s} {v:.4f}")
            elif isinstance(v, tuple):
                print(f"  {k:28s} {v[0]:+.4f} (95% {v[1]:+.4f} .. {v[2]:+.4f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
