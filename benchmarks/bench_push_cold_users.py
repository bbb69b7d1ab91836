"""Pushing to members the model has no score for, judged by the world's truth.

The users direction of ``POST /community/push`` ranks a community's members by the ALS affinity
through the bundle's push calibration. A member the model does not hold (signed up, or first
active, after its training data) and who sent nothing since has no score. They got p_convert 0,
ranked below every member the model holds, with the campaign's first product. Now they get the
bundle's ``cold_rate`` (the purchase rate training measured on the pushes to such users) and the
product the scored members like best on average.

This replays every community's campaign push through the app ``slotcast serve`` runs, with the
bundle as trained ("now") and with its cold rate taken out ("before"), side by side, and scores
every row with the world's true P(purchase | pushed) at the replay's time, 0 for a member who
had churned by then (``served_world.true_push_prob``):

- the level: the cold rows' summed p_convert against their summed truth (a push budget planned on
  the answer's expected purchases counts them); and of the "idle" ones among them, who sent no
  event the ALS weighs (a click, cart, purchase, push open or push click) before the replay's
  time. The others were active after the model's training data; in production what they sent
  would be folded in, here the data directory's events are not;
- the product: the mean truth of the product each cold row is given;
- the order: the true purchases of the answer's first N rows, N a share of the audience.

    uv run --frozen python -m benchmarks.bench_push_cold_users --state STATE
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmarks.served_world import served_world, true_push_prob

SHARES = (0.25, 0.5, 0.75, 0.9)


def campaign_pools(app: Any, ev: pd.DataFrame, kind: str, at: datetime) -> dict[int, np.ndarray]:
    """Per community, the products a campaign draws from: those the model has factors for and
    that are on offer at ``at``, among the 20 most bought (in the events ``ev``) of the community's
    category (its topic names it, as the simulator's campaigns pick them) or, ``random``, the
    whole catalogue."""
    from features.data_model import read_table

    als, catalog = app._current()[0].als, app.catalog
    warm = als.items.ids[np.any(np.asarray(als.item_factors) != 0, axis=1)]
    warm = np.intersect1d(warm, catalog.offered(int(at.timestamp() * 1e6)))
    bought = ev.loc[ev["type"] == "purchase", "product_id"].value_counts()
    topics = read_table(app.settings.data_dir, "communities").to_pandas().set_index("community_id")["topic"]
    category = catalog.product_frame(warm)["category"]
    out = {}
    for cid in sorted(catalog.communities):
        pool = warm
        if kind == "category":
            pool = warm[category == str(topics[cid]).split("-")[0]]
            pool = pool[np.argsort(-bought.reindex(pool).fillna(0).to_numpy(), kind="stable")[:20]]
        out[int(cid)] = pool
    return out


def replay(
    app: Any, truth: Any, kind: str, size: int, seed: int, at: datetime, repeats: int
) -> dict[str, Any]:
    from features.data_model import read_table
    from serving.schemas import PushRequest
    from training.calibrate import first_interaction
    from training.settings import EventWeights

    rec = app.recommender
    models = app._current()[0]
    cal = models.push_calibration
    if getattr(cal, "cold_rate", None) is None:
        raise SystemExit("the bundle's push calibration holds no cold rate: retrain it with this code")
    no_rate = dataclasses.replace(models, push_calibration=dataclasses.replace(cal, cold_rate=None))
    als = models.als
    ev = read_table(app.settings.data_dir, "events", columns=["user_id", "ts", "type", "product_id"])
    ev = ev.to_pandas()
    # Active: an event the ALS weighs before ``at`` (training's definition, as for the cold rate).
    first = first_interaction(ev, EventWeights().per_type())
    active = first.index[first < pd.Timestamp(at)].to_numpy(np.int64)
    rows: dict[str, dict[str, list[float]]] = {"before": {}, "now": {}}
    pushes = 0
    rng = np.random.default_rng(seed)
    pools = campaign_pools(app, ev, kind, at)
    drawn = [
        (c, [int(p) for p in rng.choice(pool, min(size, len(pool)), replace=False)])
        for _ in range(repeats)
        for c, pool in pools.items()
    ]
    for cid, campaign in tqdm(drawn, desc="pushes", unit="push"):
        req = PushRequest(community_id=cid, campaign_products=campaign, max_users=10**6, at=at)
        answers = {}
        for name, m in (("now", models), ("before", no_rate)):
            rec.models = lambda m=m: (m, None)
            answers[name] = rec.push(req).users
        # Before, a cold row (p_convert 0: with personalization consent, the model holds no score)
        # was given the campaign's first product; the order is the same (last, by user id).
        b = answers["before"]
        cold0 = (np.asarray(b.p_convert) == 0) & np.asarray(b.personalized, bool)
        b.product_id = [campaign[0] if c else p for p, c in zip(b.product_id, cold0, strict=True)]
        pushes += 1
        for name, a in answers.items():
            users = np.asarray(a.user_id, np.int64)
            if not len(users):
                continue
            true_p = true_push_prob(truth, users, a.product_id, at)
            p = np.asarray(a.p_convert)
            cold = als.users.index(users) < 0
            r = rows[name]
            r.setdefault("cold rows", []).append(float(cold.sum()))
            r.setdefault("rows", []).append(float(len(users)))
            r.setdefault("cold: sum p_convert", []).append(float(p[cold].sum()))
            r.setdefault("cold: sum truth", []).append(float(true_p[cold].sum()))
            # Of the cold rows, those who did nothing at all before ``at``: the ones that would
            # still have no score in production, where what a user sends after training is folded in.
            idle = cold & ~np.isin(users, active)
            r.setdefault("idle rows", []).append(float(idle.sum()))
            r.setdefault("idle: sum p_convert", []).append(float(p[idle].sum()))
            r.setdefault("idle: sum truth", []).append(float(true_p[idle].sum()))
            r.setdefault("held: sum p_convert", []).append(float(p[~cold].sum()))
            r.setdefault("held: sum truth", []).append(float(true_p[~cold].sum()))
            for s in SHARES:
                n = max(1, int(round(s * len(users))))
                r.setdefault(f"truth of the first {s:.0%}", []).append(float(true_p[:n].sum()))
    rec.models = lambda: (models, None)
    out: dict[str, Any] = {"pushes": pushes, "at": at.isoformat(), "campaigns": kind, "campaign_size": size, "cold_rate": cal.cold_rate,
                           "n_cold": cal.n_cold}  # fmt: skip
    for name, r in rows.items():
        out[name] = {k: float(np.sum(v)) for k, v in r.items()}
    for s in SHARES:
        key = f"truth of the first {s:.0%}"
        d = np.asarray(rows["now"][key]) - np.asarray(rows["before"][key])
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        out[f"now minus before, {key}"] = (float(d.sum()), float(d.mean() - half), float(d.mean() + half))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, required=True, help="a built state dir of a simulated world")
    ap.add_argument("--campaign-size", type=int, default=3, help="products per campaign push")
    ap.add_argument(
        "--campaigns",
        choices=("category", "random"),
        default="category",
        help="a community's products: among its category's 20 most bought, or at random",
    )
    ap.add_argument(
        "--at",
        type=datetime.fromisoformat,
        required=True,
        help="replay time (ISO, with an offset), e.g. the day after the world's last",
    )
    ap.add_argument("--repeats", type=int, default=10, help="campaigns drawn per community")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/push_cold_users.json"))
    args = ap.parse_args(argv)
    with served_world(args.state) as (app, truth):
        result = replay(app, truth, args.campaigns, args.campaign_size, args.seed, args.at, args.repeats)
    print(f"{result['pushes']} community pushes of {args.campaign_size} products ({args.campaigns}); cold rate "
          f"{result['cold_rate']:.5f} ({result['n_cold']} unscored pushes)")  # fmt: skip
    for name in ("before", "now"):
        print(f"  {name}:")
        for k, v in result[name].items():
            print(f"    {k:28s} {v:10.3f}")
    for k, v in result.items():
        if k.startswith("now minus"):
            print(f"  {k}: {v[0]:+.3f} in all (95% per push {v[1]:+.4f} .. {v[2]:+.4f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
