"""Run a whole simulation: draw the world, simulate day by day, write tables and truth.

Random streams are keyed by (seed, phase, day), so the same seed gives identical tables and one
phase's draws never shift another's.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from features.data_model import table_path, write_table
from features.validation import QUARANTINE_FILE, REJECTED_FILE
from pipelines.simulator.config import DAY_US, SimConfig
from pipelines.simulator.entities import World, build_world
from pipelines.simulator.policies import CAROUSEL_POLICY, PUSH_POLICY
from pipelines.simulator.pushes import membership_events, simulate_pushes
from pipelines.simulator.sessions import repurchases, schedule_repurchases, simulate_day
from pipelines.simulator.truth import save_truth
from pipelines.simulator.writer import SortedTableWriter, concat, to_events, to_impressions, to_pushes

log = logging.getLogger(__name__)

PHASE_WORLD, PHASE_SESSIONS, PHASE_PUSHES, PHASE_REPURCHASE = range(4)
STATIC_TABLES = ("users", "products", "streams", "stream_products", "communities", "memberships")
WRITTEN_TABLES = ("events", "impressions", "pushes")  # written day by day


@dataclass
class GenerateResult:
    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.rows.get("events", 0) / max(self.seconds, 1e-9)


@contextmanager
def _progress(enabled: bool) -> Iterator:
    """A rich progress bar (or a silent stand-in) with one task per phase."""
    if not enabled:

        class _Quiet:
            def add_task(self, *a, **k):
                return 0

            def advance(self, *a, **k):
                pass

            def update(self, *a, **k):
                pass

        yield _Quiet()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cols = (TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*cols, transient=False) as bar:
        yield bar


def _rng(cfg: SimConfig, phase: int, day: int = 0) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, phase, day])


def _by_day(world: World, parts: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Split events that were drawn for the whole period into one batch per day."""
    cols = concat(parts)
    days = world.config.days
    if not cols:
        return [{} for _ in range(days)]
    day = np.clip((cols["ts"] - world.config.start_us) // DAY_US, 0, days - 1)
    order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[order], np.arange(days + 1))
    return [{k: v[order[bounds[d] : bounds[d + 1]]] for k, v in cols.items()} for d in range(days)]


def generate(cfg: SimConfig, out: str | Path, progress: bool = False) -> GenerateResult:
    """Simulate ``cfg`` into the data directory ``out`` (tables + ``truth/``); return row counts.

    The world is written to a staging folder inside ``out`` and moved into place once complete:
    interrupted, it used to leave the days simulated so far beside the truth of the world before
    (a valid-looking, cut-short world); now ``out`` keeps what it held.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stage = out / f".generate-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        result = _simulate(cfg, stage, progress)
        _move_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    result.out = out
    return result


def _move_into(stage: Path, out: Path) -> None:
    """Replace ``out``'s simulated tables and truth with the staged ones (a table the staged world
    lacks, such as streams under --no-streams, goes); the old world's quarantine goes with it."""
    for name in (*STATIC_TABLES, *WRITTEN_TABLES):
        if table_path(stage, name).exists():
            os.replace(table_path(stage, name), table_path(out, name))
        else:
            table_path(out, name).unlink(missing_ok=True)
    for name in (QUARANTINE_FILE, REJECTED_FILE):  # rows of the replaced world
        (out / name).unlink(missing_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    for f in (stage / "truth").iterdir():
        os.replace(f, out / "truth" / f.name)


def _simulate(cfg: SimConfig, out: Path, progress: bool) -> GenerateResult:
    t_start = time.perf_counter()
    result = GenerateResult(out)
    with _progress(progress) as bar:
        task = bar.add_task("world (static tables)", total=len(STATIC_TABLES) + 1)
        world = build_world(cfg, _rng(cfg, PHASE_WORLD))
        bar.advance(task)
        for name in STATIC_TABLES:
            if name in ("streams", "stream_products") and not cfg.streams:
                # absent optional tables read as empty; _move_into removes a stale one
                result.rows[name] = 0
            else:
                write_table(out, name, world.tables[name])
                result.rows[name] = world.tables[name].num_rows
            bar.advance(task)

        writers = {
            "events": SortedTableWriter(out, "events", lambda c, first: to_events(c, first + 1)),
            "impressions": SortedTableWriter(
                out, "impressions", lambda c, _: to_impressions(c, CAROUSEL_POLICY)
            ),
            "pushes": SortedTableWriter(out, "pushes", lambda c, _: to_pushes(c, PUSH_POLICY)),
        }
        try:
            _simulate_days(world, writers, bar)
        finally:
            for w in writers.values():
                w.close()
        for name, w in writers.items():
            result.rows[name] = w.rows

        task = bar.add_task("truth", total=1)
        save_truth(out, cfg, world.params, {"rows": result.rows})
        bar.advance(task)
    result.seconds = time.perf_counter() - t_start
    log.info(
        "simulated %d days: %d events, %d impressions in %.1f s (%.0f events/s)",
        cfg.days,
        result.rows["events"],
        result.rows["impressions"],
        result.seconds,
        result.events_per_second,
    )
    return result


def _simulate_days(world: World, writers: dict[str, SortedTableWriter], bar) -> None:
    cfg = world.config
    consent = world.tables["users"].column("consent_marketing").to_numpy(zero_copy_only=False)
    membership = _by_day(world, membership_events(world))
    due: dict[str, np.ndarray] = {}
    requests = pushes = 0
    task = bar.add_task("days (sessions, pushes)", total=cfg.days)
    for day in range(cfg.days):
        today = replace(world, params=world.params.at_day(day))  # the users' tastes of the day (drift)
        ev_s, imp, bought_s = simulate_day(today, day, _rng(cfg, PHASE_SESSIONS, day), requests)
        ev_p, push_rows, bought_p = simulate_pushes(today, day, _rng(cfg, PHASE_PUSHES, day), pushes, consent)
        ev_r, bought_r, due = repurchases(today, due, day)
        due = schedule_repurchases(
            today, due, [bought_s, bought_p, bought_r], _rng(cfg, PHASE_REPURCHASE, day)
        )
        requests += len(imp.get("ts", ())) // cfg.slots
        pushes += len(push_rows.get("ts", ()))
        until = cfg.start_us + (day + 1) * DAY_US
        writers["events"].add(concat([*ev_s, *ev_p, *ev_r, membership[day]]), until)
        writers["impressions"].add(imp, until)
        writers["pushes"].add(push_rows, until)
        bar.advance(task)
