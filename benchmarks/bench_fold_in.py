"""What folding in a user the model does not hold is worth, judged by the simulator's truth.

A user new since training got popularity (``cold_start``) until the next training run; now the
events they send fold them in (``serving/fold_in.py``). To measure it on a built state (a trained,
promoted champion; ``data/truth`` from the simulator): ``--users`` consenting users with at least
``--min-events`` weighted product events are erased from a copy of the champion bundle
(``models.bundle_erasure.erase_users``: the model has never seen them, as for a user who signed up
after training), and the service (the app ``slotcast serve`` runs, over that copy, exploration off)
answers the same carousel requests for them (``--requests`` per user, well-stocked on-air moments)
after 0 (cold start), then the first 1, 3 and 10 of their own events (in time order) were posted
to ``POST /events``. The champion that did see their whole history answers the same requests as
the ceiling. Every answer is scored with the simulator's true purchase probability of each product
at its slot (``TrueWorld.purchase_prob``); paired differences from cold start with a bootstrap 95%
interval; how many of the champion's products each answer shows; and the CPU per carousel
(medians). Last, what deciding whether to keep events costs ``POST /events`` (fold-in on and off).

Caveat: these users' events were in the item factors of the champion the copy was made from (one
user of thousands each); the fold-in sees only the events posted.

    .venv/bin/python -m benchmarks.bench_fold_in --state STATE [--users 300] [--requests 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.bench_shortlist import paired_ci, true_value

STEPS = (0, 1, 3, 10)  # events posted before the answers of each step (cumulative)


def _answers(app, reqs: list) -> tuple[list[tuple[list[int], list[int]]], list[float], list[str | None]]:  # type: ignore[no-untyped-def]
    slates, cpu, fallbacks = [], [], []
    for req in reqs:
        t = time.process_time()
        out = app.carousel(req)
        cpu.append(time.process_time() - t)
        slates.append(([s.product_id for s in out.slots], [s.slot for s in out.slots]))
        fallbacks.append(out.fallback)
    return slates, cpu, fallbacks


def fold_in_parser(doc: str | None, users_help: str, events_help: str) -> argparse.ArgumentParser:
    """The options both fold-in benchmarks take (``doc``: the module's docstring, for --help)."""
    parts = (doc or "").split("\n\n")
    p = argparse.ArgumentParser(
        description=parts[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(parts[1:]),
    )
    p.add_argument("--state", type=Path, required=True, help="a built state (data/truth from the simulator)")
    p.add_argument("--users", type=int, default=300, help=users_help)
    p.add_argument("--min-events", type=int, default=10, help=events_help)
    p.add_argument("--requests", type=int, default=5, help="carousel requests per user")
    p.add_argument("--min-on-air", type=int, default=10, help="products on air at the request moments")
    p.add_argument("--seed", type=int, default=1, help="users, request moments and bootstrap seed")
    return p


def open_world(args: argparse.Namespace) -> tuple[Path, Path, Any, np.random.Generator]:
    """(state dir, its data dir, the simulator's truth, the seeded generator) of ``fold_in_parser``'s
    arguments; MLflow's download progress bars off."""
    from pipelines.simulator.truth import TrueWorld

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    state = args.state.resolve()
    return state, state / "data", TrueWorld.load(state / "data"), np.random.default_rng(args.seed)


def event_dicts(rows: pd.DataFrame) -> list[dict[str, object]]:
    """``POST /events`` bodies of event rows (user, type, product, their own ts, watch time)."""
    out = []
    for r in rows.itertuples(index=False):
        e = {"user_id": int(r.user_id), "type": r.type, "product_id": int(r.product_id), "ts": r.ts}
        if pd.notna(r.watch_seconds):
            e["watch_seconds"] = float(r.watch_seconds)
        out.append(e)
    return out


def foldable_events(data: Path) -> pd.DataFrame:
    """The product events of consenting users that fold-in weighs, by user and time."""
    from serving.fold_in import FOLD_TYPES
    from training.settings import TrainSettings

    users = pd.read_parquet(data / "users.parquet", columns=["user_id", "consent_personalization"])
    consenting = users.loc[users["consent_personalization"].fillna(False).astype(bool), "user_id"]
    ev = pd.read_parquet(
        data / "events.parquet", columns=["user_id", "type", "product_id", "ts", "watch_seconds"]
    )
    weights = TrainSettings().weights.per_type()  # type: ignore[call-arg]
    ev = ev.loc[ev["product_id"].notna() & ev["type"].isin(list(weights)) & ev["type"].isin(FOLD_TYPES)]
    return ev.loc[ev["user_id"].isin(consenting)].sort_values(["user_id", "ts"], kind="stable")


def paired_cells(values: np.ndarray, base: np.ndarray, scale: float, seed: int, digits: int = 3) -> list[str]:
    """[mean of ``values`` x ``scale``, its paired difference from ``base`` with a bootstrap 95% CI]."""
    diff = (values - base) * scale
    lo, hi = paired_ci(diff, seed)
    f = f"{{:+.{digits}f}}"
    return [
        f"{values.mean() * scale:.{digits}f}",
        f"{f.format(diff.mean())} ({f.format(lo)} .. {f.format(hi)})",
    ]


def carousel_requests(
    data: Path,
    users: np.ndarray,
    per_user: int,
    min_on_air: int,
    rng: np.random.Generator,
    weights: Callable[[list], np.ndarray] | None = None,
) -> list:  # type: ignore[type-arg]
    """``per_user`` carousel requests (k 8) for each user, at on-air moments with ``min_on_air``+
    products on air: uniform, or drawn by ``weights(moments)`` (users x moments, rows sum to 1)."""
    from benchmarks.serving_requests import on_air_moments
    from serving.schemas import CarouselRequest

    moments = on_air_moments(data, min_on_air)
    if not moments:
        sys.exit(f"{data}: no stream has {min_on_air}+ products on air at once (--min-on-air)")
    w = weights(moments) if weights is not None else None
    reqs = []
    for j, u in enumerate(users):
        picks = (
            rng.integers(0, len(moments), per_user)
            if w is None
            else rng.choice(len(moments), per_user, p=w[j])
        )
        for m in picks:
            stream, t_us, _ = moments[m]
            at = pd.Timestamp(t_us, unit="us", tz="UTC").to_pydatetime()
            reqs.append(CarouselRequest(user_id=int(u), stream_id=stream, k=8, at=at))
    return reqs


def events_cpu(app, rows: pd.DataFrame) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """CPU per ``POST /events`` batch of 100 of ``rows`` with fold-in on and off: medians of 3
    alternating rounds each."""
    from serving.schemas import EventsRequest

    batches = [EventsRequest(events=event_dicts(c)) for _, c in rows.groupby(np.arange(len(rows)) // 100)]
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for rnd in range(6):
        for on in (True, False) if rnd % 2 == 0 else (False, True):
            app.settings.fold_in = on
            t = time.process_time()
            for b in batches:
                app.events(b)
            cpu[on].append((time.process_time() - t) / len(batches))
    app.settings.fold_in = True
    return statistics.median(cpu[True]), statistics.median(cpu[False])


def main(argv: list[str] | None = None) -> int:
    p = fold_in_parser(
        __doc__, "users taken out of the model and folded in", "weighted product events a user needs"
    )
    args = p.parse_args(argv)
    state, data, world, rng = open_world(args)

    from models.bundle_erasure import erase_users
    from serving.runtime import SlotcastApp
    from serving.schemas import EventsRequest
    from serving.settings import ServingSettings
    from training.registry import download_bundle
    from training.settings import TrainSettings

    ev = foldable_events(data)
    counts = ev["user_id"].value_counts()
    pool = counts.index[counts >= args.min_events].to_numpy()
    if len(pool) < args.users:
        sys.exit(f"only {len(pool)} consenting users have {args.min_events}+ weighted product events")
    chosen = np.sort(rng.choice(pool, args.users, replace=False))
    reqs = carousel_requests(data, chosen, args.requests, args.min_on_air, rng)
    history = {int(u): g for u, g in ev.loc[ev["user_id"].isin(chosen)].groupby("user_id")}

    settings = TrainSettings(state_dir=state)  # type: ignore[call-arg]
    from training.tracking import configure

    configure(settings)
    with tempfile.TemporaryDirectory(prefix="bench-fold-in-") as tmp:
        bundle = download_bundle(settings.registered_model, "champion", Path(tmp))
        erased = erase_users(bundle, chosen)
        print(f"{len(chosen)} users erased from a copy of the champion ({erased} records)", file=sys.stderr)
        serve = {"state_dir": state, "epsilon": 0.0, "fold_in_days": 3650.0}
        ceiling_app = SlotcastApp.from_settings(ServingSettings(**serve))  # type: ignore[arg-type]
        app = SlotcastApp.from_settings(ServingSettings(**serve, model_source="dir", bundle_dir=bundle))  # type: ignore[arg-type]
        for a in (app, ceiling_app):
            ok, why = a.ready()
            if not ok:
                sys.exit(f"the service on {state} is not ready: {why}")
        # One process: nothing to share, and an earlier run's events in $STATE/serving/fold_in
        # (the same users, same seed) must not be read back.
        app.fold_ins.shared = None
        app.fold_ins.drop(chosen.tolist())

        price = lambda ids: np.nan_to_num(app._rec().catalog.product_frame(ids)["price"])  # noqa: E731
        rows: dict[str, tuple[np.ndarray, np.ndarray, list[float], float]] = {}
        shown: dict[str, list[tuple[list[int], list[int]]]] = {}
        posted = 0
        for step in STEPS:
            batch = [e for u in chosen for e in event_dicts(history[int(u)].iloc[posted:step])]
            if batch:
                app.events(EventsRequest(events=batch))
            posted = step
            slates, cpu, fb = _answers(app, reqs)
            shown[f"fold-in, {step} events"] = slates
            personal = float(np.mean([f is None for f in fb]))
            rows[f"fold-in, {step} events"] = (true_value(world, reqs, slates),
                                                true_value(world, reqs, slates, price), cpu, personal)  # fmt: skip
            print(f"step {step}: {personal:.0%} personal", file=sys.stderr, flush=True)
        slates, cpu, fb = _answers(ceiling_app, reqs)
        shown["champion with their whole history"] = slates
        rows["champion with their whole history"] = (true_value(world, reqs, slates),
                                                    true_value(world, reqs, slates, price), cpu,
                                                    float(np.mean([f is None for f in fb])))  # fmt: skip
        # What deciding whether to keep events costs POST /events: batches of 100 events of users
        # the model holds, with fold-in on and off in alternating rounds.
        on, off = events_cpu(app, ev.loc[~ev["user_id"].isin(chosen)].head(100 * 50))
        app.close()
        ceiling_app.close()

    base = rows[f"fold-in, {STEPS[0]} events"]
    print(f"# {len(reqs)} carousels ({args.users} users x {args.requests}) on {state}, k=8, epsilon 0; "
          "truth from the simulator")  # fmt: skip
    print("| answers | personal | true purchases / 1,000 carousels | vs cold start (95% CI) "
          "| true revenue / carousel | vs cold start (95% CI) | products in common with the champion's "
          "answer | CPU p50 per carousel |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    ceiling = shown["champion with their whole history"]
    for name, (value, revenue, cpu, personal) in rows.items():
        cells = []
        for i, (table, scale) in enumerate(((value, 1000.0), (revenue, 1.0))):
            cells += paired_cells(table, base[i], scale, args.seed)
        label = name.replace("fold-in, 0 events", "cold start (0 events)")
        common = np.mean(
            [
                len(set(a) & set(b)) / max(len(b), 1)
                for (a, _), (b, _) in zip(shown[name], ceiling, strict=True)
            ]
        )
        print(
            f"| {label} | {personal:.0%} | {' | '.join(cells)} | {common:.0%} | {statistics.median(cpu) * 1e3:.2f} ms |"
        )
    print(f"\nPOST /events, a batch of 100 events of users the model holds: CPU {on * 1e3:.2f} ms with "
          f"fold-in, {off * 1e3:.2f} ms without (ratio {on / off:.2f}; medians of 3 alternating rounds each)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
