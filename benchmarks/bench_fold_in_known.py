"""What folding a known user's newer events into their factors is worth, judged by the simulator's truth.

The champion's ALS is fitted on the events before the test period (``als/history.npz``'s
``until_us``); the users' events of the test period are new to it, as the events a live service
takes after a training run are. ``--users`` consenting users the champion holds, with at least
``--min-events`` weighted product events in that period, get the same carousel requests
(``--requests`` per user, well-stocked on-air moments, uniform or, with ``--streams-by-taste``,
in streams of the categories the user would watch now; exploration off) after 0 (their trained
factors, what a known user got before), then the first 3, 10 and all of their new events (in time
order, with their own timestamps) were posted to ``POST /events``, with the service's
``fold_in_history_weight`` (the training row's weight against the new events), and after all of
them with each of ``--history-weights`` instead. A last arm answers from a
copy of the champion with these users erased, after all their new events: their factors from the
new events alone, without their history (what fold-in gave a user the model does not hold). Every
answer is scored with the simulator's true purchase probability of each product at its slot
(``TrueWorld.purchase_prob``; in a world with taste drift, the tastes at the end of the period,
after every change, and a second table by whether the user's tastes changed after the model's
data, before it, or never); paired differences from the trained factors with a bootstrap 95%
interval, how many of the trained factors' products each answer keeps, and the CPU per carousel.
The same arms rank the chosen users for a push of each of ``--push-products`` products the model
has factors for (``Recommender.score_audience``, the users direction of ``POST /community/push``,
marketing consent aside: this measures the ranking): the true purchases
(``TrueWorld.push_purchase_prob``) of pushing it to the top 10%, of all of them and of those whose
tastes changed after the model's data. Last: the CPU of a fold-in (``user_vector`` from the history row plus the events), of ``POST
/events`` (batches of 100 events of users the model holds: kept now) with fold-in on and off, and
the size of the history in the bundle.

    .venv/bin/python -m benchmarks.bench_fold_in_known --state STATE [--users 300] [--requests 5]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_fold_in import (
    _answers,
    carousel_requests,
    event_dicts,
    events_cpu,
    fold_in_parser,
    foldable_events,
    open_world,
    paired_cells,
)
from benchmarks.bench_shortlist import true_value
from models.bundle import Bundle
from models.bundle_erasure import erase_users
from pipelines.simulator.config import DAY_US
from serving.fold_in import FoldIns
from serving.runtime import SlotcastApp
from serving.schemas import EventsRequest
from serving.settings import ServingSettings
from training.registry import download_bundle
from training.settings import TrainSettings
from training.tracking import configure

STEPS = (0, 3, 10, None)  # new events posted before the answers of each step (cumulative; None: all)
TRAINED = "trained factors (0 new events)"
CHANGED = "tastes changed after the model's data"
ALONE = "new events alone, no history (all)"


def _label(step: int | None, weight: float) -> str:
    return TRAINED if step == 0 else f"history x {weight:g} + {'all' if step is None else step} new events"


def main(argv: list[str] | None = None) -> int:
    p = fold_in_parser(
        __doc__, "known users whose new events are folded in", "new weighted product events a user needs"
    )
    p.add_argument(
        "--history-weights",
        default="1,0.05",
        help="comma list: other fold_in_history_weight values than the service's, after all events",
    )
    p.add_argument(
        "--streams-by-taste",
        action="store_true",
        help="request moments in streams drawn as each user's sessions would now draw them (default: uniform)",
    )
    p.add_argument("--push-products", type=int, default=200, help="products pushed to the users' audience")
    args = p.parse_args(argv)
    state, data, world, rng = open_world(args)
    settings = TrainSettings(state_dir=state)  # type: ignore[call-arg]
    configure(settings)
    with tempfile.TemporaryDirectory(prefix="bench-fold-in-known-") as tmp:
        bundle = download_bundle(settings.registered_model, "champion", Path(tmp) / "champion")
        als = Bundle.load(bundle).als
        if als.history is None or als.history.until_us is None:
            sys.exit(f"the champion of {state} kept no history with its time: train it with this version")
        until = pd.Timestamp(als.history.until_us, unit="us", tz="UTC")

        ev = foldable_events(data)
        ev = ev.loc[als.users.index(ev["user_id"].to_numpy(np.int64)) >= 0]  # users it holds
        new = ev.loc[ev["ts"] >= until]
        counts = new["user_id"].value_counts()
        pool = counts.index[counts >= args.min_events].to_numpy()
        if len(pool) < args.users:
            sys.exit(
                f"only {len(pool)} consenting known users have {args.min_events}+ weighted events after {until}"
            )
        chosen = np.sort(rng.choice(pool, args.users, replace=False))
        by_taste = (lambda m: taste_weights(data, world, chosen, m)) if args.streams_by_taste else None
        reqs = carousel_requests(data, chosen, args.requests, args.min_on_air, rng, by_taste)
        mine = {int(u): g for u, g in new.loc[new["user_id"].isin(chosen)].groupby("user_id")}
        print(f"{len(chosen)} users, {sum(len(g) for g in mine.values())} new events (median "
              f"{int(np.median([len(g) for g in mine.values()]))} each) after {until}", file=sys.stderr)  # fmt: skip

        erased = Path(tmp) / "erased"
        Bundle.load(bundle).save(erased)
        erase_users(erased, chosen)
        serve = {"state_dir": state, "epsilon": 0.0, "fold_in_days": 3650.0}
        app = SlotcastApp.from_settings(ServingSettings(**serve, model_source="dir", bundle_dir=bundle))  # type: ignore[arg-type]
        alone_app = SlotcastApp.from_settings(ServingSettings(**serve, model_source="dir", bundle_dir=erased))  # type: ignore[arg-type]
        for a in (app, alone_app):
            ok, why = a.ready()
            if not ok:
                sys.exit(f"the service on {state} is not ready: {why}")
            a.fold_ins.shared = None  # one process; an earlier run's shared events are not read back
            a.fold_ins.drop(chosen.tolist())

        price = lambda ids: np.nan_to_num(app._rec().catalog.product_frame(ids)["price"])  # noqa: E731
        rows: dict[str, tuple[np.ndarray, np.ndarray, list[float], float]] = {}
        # Push, users direction: for each of --push-products products the model has factors for,
        # the top 10% of an audience by p_convert (Recommender.score_audience, POST /community/push).
        warm = als.items.ids[np.any(np.asarray(als.item_factors) != 0, axis=1)]
        push_ids = rng.choice(warm, min(args.push_products, len(warm)), replace=False)
        until_day = (als.history.until_us - world.start_us) / DAY_US  # the model's data ends here
        audiences = {"all chosen users": chosen}
        if CHANGED in (by_drift := drift_groups(world, chosen, until_day)):
            audiences[CHANGED] = chosen[by_drift[CHANGED]]
        pushes: dict[str, dict[str, np.ndarray]] = {}
        shown: dict[str, list[tuple[list[int], list[int]]]] = {}

        def record(name: str, server: SlotcastApp) -> None:
            # Twice: the first answers after events refresh the feature cache (as any event does)
            # and compute the fold-ins (timed apart below); the CPU column is the second pass's.
            first, _, _ = _answers(server, reqs)
            slates, cpu, fb = _answers(server, reqs)
            if slates != first:
                sys.exit(f"{name}: the answers changed between two passes (exploration must be off)")
            shown[name] = slates
            rows[name] = (true_value(world, reqs, slates), true_value(world, reqs, slates, price), cpu,
                          float(np.mean([f is None for f in fb])))  # fmt: skip
            pushes[name] = {g: push_value(world, server, users, push_ids) for g, users in audiences.items()}
            print(f"{name}: done", file=sys.stderr, flush=True)

        posted = 0
        for step in STEPS:
            batch = [e for u in chosen for e in event_dicts(mine[int(u)].iloc[posted:step])]
            for i in range(0, len(batch), 1000):
                app.events(EventsRequest(events=batch[i : i + 1000]))
            posted = 10**9 if step is None else step
            record(_label(step, app.fold_ins.history_weight), app)
        for h in (float(x) for x in args.history_weights.split(",")):
            if h == app.settings.fold_in_history_weight:
                continue  # its row is above
            app.fold_ins.history_weight = h
            app.fold_ins.drop_vectors()
            record(f"history x {h:g} + all new events", app)
        app.fold_ins.history_weight = app.settings.fold_in_history_weight
        app.fold_ins.drop_vectors()
        batch = [e for u in chosen for e in event_dicts(mine[int(u)])]
        for i in range(0, len(batch), 1000):
            alone_app.events(EventsRequest(events=batch[i : i + 1000]))
        record(ALONE, alone_app)

        # The CPU of one fold-in: the history row plus the user's new events, solved again.
        models = app._current()[0]
        fold_cpu = []
        for u in chosen:
            app.fold_ins.drop_vectors([int(u)])  # the cached factors: computed again
            t = time.process_time()
            app.folded_in(models, int(u))
            fold_cpu.append(time.process_time() - t)
        # The same users solved together, as a push audience has them (one recalculate_user call).
        app.fold_ins.drop_vectors()
        t = time.process_time()
        app.folded_in_many(models, chosen)
        together_s = time.process_time() - t
        # A push audience at scale: every user the champion holds (up to the FOLD_IN_MAX_USERS
        # cap) with 3 clicks kept, in a store of their own: which of them have events kept (16
        # push batches of 65,536 ids), and all of them solved together.
        big = FoldIns(
            None, max_users=app.settings.fold_in_max_users, history_weight=app.fold_ins.history_weight
        )
        crowd = als.users.ids[: app.settings.fold_in_max_users]
        clicks = rng.choice(als.items.ids, (crowd.size, 3))
        big.take([{"user_id": int(u), "type": "product_click", "product_id": int(p), "ts_us": als.history.until_us}
                  for u, row in zip(crowd, clicks, strict=True) for p in row], lambda _u: True)  # fmt: skip
        asked = np.concatenate([crowd, rng.integers(0, 2**40, 16 * 65_536 - crowd.size)])
        t = time.perf_counter()
        for i in range(16):
            big.held(asked[i * 65_536 : (i + 1) * 65_536])
        held_s = time.perf_counter() - t
        t = time.process_time()
        big.vectors(models.als, models.event_weights, crowd)
        crowd_s = time.process_time() - t
        # POST /events: batches of 100 events of other known users (kept now), fold-in on and off.
        on, off = events_cpu(app, ev.loc[~ev["user_id"].isin(chosen)].head(100 * 50))
        app.close()
        alone_app.close()
        sizes = {f.name: f.stat().st_size for f in (bundle / "als").iterdir()}
        t = time.perf_counter()
        Bundle.load(bundle)
        load_s = time.perf_counter() - t

    base = rows[TRAINED]
    print(f"# {len(reqs)} carousels ({args.users} users x {args.requests}) on {state}, k=8, epsilon 0; "
          "truth from the simulator")  # fmt: skip
    print("| answers | personal | true purchases / 1,000 carousels | vs trained factors (95% CI) "
          "| true revenue / carousel | vs trained factors (95% CI) | products in common with the "
          "trained factors' answer | CPU p50 per carousel (warm) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (value, revenue, cpu, personal) in rows.items():
        cells = []
        for i, (table, scale) in enumerate(((value, 1000.0), (revenue, 1.0))):
            cells += paired_cells(table, base[i], scale, args.seed)
        common = np.mean(
            [
                len(set(a) & set(b)) / max(len(b), 1)
                for (a, _), (b, _) in zip(shown[name], shown[TRAINED], strict=True)
            ]
        )
        print(
            f"| {name} | {personal:.0%} | {' | '.join(cells)} | {common:.0%} | {statistics.median(cpu) * 1e3:.2f} ms |"
        )
    print(f"\nPush to the top 10% of an audience by p_convert, {len(push_ids)} products the model has factors for: "
          "true purchases per 1,000 pushes, and the paired difference from the trained factors (95% CI over products)")  # fmt: skip
    print("| answers | " + " | ".join(f"{g} ({len(u)} users)" for g, u in audiences.items()) + " |")
    print("| --- |" + " --- |" * len(audiences))
    for name, by in pushes.items():
        cells = []
        for g, users in audiences.items():
            per_push = 1000.0 / max(1, len(users) // 10)
            cells.append(", ".join(paired_cells(by[g], pushes[TRAINED][g], per_push, args.seed, 2)))
        print(f"| {name} | {' | '.join(cells)} |")
    groups = drift_groups(world, np.array([r.user_id for r in reqs], np.int64), until_day)
    if set(groups) - {"never changed"}:  # a world with drift
        print(f"\nBy whether the user's tastes changed (a world with taste drift; {len(reqs)} carousels): "
              "true purchases / 1,000 carousels, and the paired difference from the trained factors (95% CI)")  # fmt: skip
        print(
            "| answers | "
            + " | ".join(f"{g} ({m.sum() // args.requests} users)" for g, m in groups.items())
            + " |"
        )
        print("| --- |" + " --- |" * len(groups))
        for name, (value, *_rest) in rows.items():
            cells = []
            for mask in groups.values():
                cells.append(", ".join(paired_cells(value[mask], base[0][mask], 1000.0, args.seed)))
            print(f"| {name} | {' | '.join(cells)} |")
    print(f"\nOne fold-in (history row + new events, solved again): CPU p50 {statistics.median(fold_cpu) * 1e3:.3f} ms, "
          f"p99 {np.percentile(fold_cpu, 99) * 1e3:.3f} ms over {len(fold_cpu)} users; all {len(fold_cpu)} "
          f"together (push): {together_s * 1e3:.1f} ms CPU, {together_s / len(fold_cpu) * 1e6:.0f} us a user")  # fmt: skip
    print(f"A push audience at scale: {crowd.size:,} known users with 3 clicks kept each; which of 16 x 65,536 "
          f"ids have events kept: {held_s * 1e3:.1f} ms wall; all {crowd.size:,} solved together: "
          f"{crowd_s:.2f} s CPU, {crowd_s / crowd.size * 1e6:.0f} us a user")  # fmt: skip
    print(f"POST /events, a batch of 100 events of known users (kept): CPU {on * 1e3:.2f} ms with fold-in, "
          f"{off * 1e3:.2f} ms without (ratio {on / off:.2f}; medians of 3 alternating rounds each)")  # fmt: skip
    print(f"Bundle als/: {', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sorted(sizes.items()))}; "
          f"Bundle.load {load_s:.2f} s")  # fmt: skip
    return 0


def push_value(world, server: SlotcastApp, users: np.ndarray, products: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per product: the true purchases (``TrueWorld.push_purchase_prob``) of pushing it to the top
    10% of ``users`` by the service's p_convert."""
    models, rec = server._current()[0], server._rec()
    n = max(1, len(users) // 10)
    out = np.zeros(len(products))
    for j, pid in enumerate(products):
        p, _ = rec.score_audience(models, users, np.array([pid], np.int64))
        top = users[np.argsort(-p, kind="stable")[:n]]
        out[j] = world.push_purchase_prob(top, np.full(n, pid)).sum()
    return out


def taste_weights(data: Path, world, users: np.ndarray, moments: list) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Users x moments: the chance a session of the user now lands in each moment's stream (their
    category choice at the end of the period, ``TrueWorld.category_choice``, spread evenly over
    the moments of the category)."""
    import pyarrow.parquet as pq

    from features.data_model import table_path
    from pipelines.simulator.config import SimConfig

    streams = pq.read_table(table_path(data, "streams"), columns=["stream_id", "category"]).to_pandas()
    names = list(SimConfig(categories=world.meta["config"]["categories"]).category_names)
    cat_of = dict(zip(streams["stream_id"], streams["category"].map(names.index), strict=True))
    cat = np.array([cat_of[s] for s, _, _ in moments])
    per_cat = np.bincount(cat, minlength=len(names)).astype(float)
    w = world.category_choice(users)[:, cat] / per_cat[cat]
    return w / w.sum(axis=1, keepdims=True)


def drift_groups(world, users: np.ndarray, until_day: float) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Masks over ``users`` by when their tastes changed (``data generate --drift-share``): on or
    after ``until_day``, the day the model's data ends; before it; never. Empty groups are left
    out, so a world without drift gives only "never changed"."""
    switch = world.switch_day(users)
    after = np.isfinite(switch) & (switch >= until_day)
    groups = {
        CHANGED: after,
        "changed before it": np.isfinite(switch) & ~after,
        "never changed": ~np.isfinite(switch),
    }
    return {g: m for g, m in groups.items() if m.any()}


if __name__ == "__main__":
    raise SystemExit(main())
