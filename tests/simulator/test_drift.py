"""Taste drift: some users' tastes are drawn afresh on a day of the period, and the logs and the
truth both follow the change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features.data_model import table_path
from pipelines.cli import EXIT_BAD_INPUT, EXIT_OK, main
from pipelines.simulator import SimConfig, TrueWorld, generate
from pipelines.simulator.config import DAY_US

DRIFT = SimConfig(users=5_000, products=1_200, days=10, seed=4, drift_share=0.5, drift_after=0.5)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the drifting world, the same world without drift)."""
    root = tmp_path_factory.mktemp("drift")
    generate(DRIFT, root / "drift")
    generate(DRIFT.model_copy(update={"drift_share": 0.0}), root / "still")
    return root / "drift", root / "still"


def _table(data: Path, name: str, cols: list[str]) -> dict[str, np.ndarray]:
    t = pq.read_table(table_path(data, name), columns=cols)
    return {c: t.column(c).to_numpy() for c in cols}


def _events(data: Path, etype: str, col: str) -> tuple[TrueWorld, np.ndarray, np.ndarray, np.ndarray]:
    """(the truth, user_id, ``col``, ts in us) of the ``etype`` events of ``data``."""
    ev = _table(data, "events", ["ts", "user_id", "type", col])
    rows = ev["type"] == etype
    ts = ev["ts"][rows].astype("datetime64[us]").astype(np.int64)
    return TrueWorld.load(data), ev["user_id"][rows], ev[col][rows], ts


def _z(observed: np.ndarray, prob: np.ndarray) -> float:
    return float((observed.sum() - prob.sum()) / np.sqrt((prob * (1 - prob)).sum()))


def test_switch_days_fall_in_the_second_half_for_the_drift_share(worlds: tuple[Path, Path]) -> None:
    drift, still = worlds
    users = np.arange(1, DRIFT.users + 1)
    day = TrueWorld.load(drift).switch_day(users)
    moved = np.isfinite(day)
    assert abs(moved.mean() - DRIFT.drift_share) < 0.03
    assert day[moved].min() >= 5 and day[moved].max() <= DRIFT.days - 1
    assert len(np.unique(day[moved])) == 5  # days 5..9, each drawn
    assert np.isinf(TrueWorld.load(still).switch_day(users)).all()


def test_nothing_changes_before_the_first_switch(worlds: tuple[Path, Path]) -> None:
    drift, still = worlds
    first = int(TrueWorld.load(drift).switch_day(np.arange(1, DRIFT.users + 1)).min())
    cut = DRIFT.start_us + first * DAY_US
    cols = ["ts", "user_id", "type", "product_id"]
    a, b = _table(drift, "events", cols), _table(still, "events", cols)
    before_a = {c: v[a["ts"].astype("datetime64[us]").astype(np.int64) < cut] for c, v in a.items()}
    before_b = {c: v[b["ts"].astype("datetime64[us]").astype(np.int64) < cut] for c, v in b.items()}
    assert len(before_a["ts"]) > 10_000
    for c in cols:
        np.testing.assert_array_equal(before_a[c], before_b[c])
    assert len(a["ts"]) != len(b["ts"]) or not np.array_equal(a["product_id"], b["product_id"])


def test_clicks_follow_the_tastes_of_their_day(worlds: tuple[Path, Path]) -> None:
    truth, u, p, ts = _events(worlds[0], "product_click", "product_id")
    day = (ts - truth.start_us) // DAY_US
    switch = truth.switch_day(u)
    before, after = day < switch, np.isfinite(switch) & (day >= switch)
    old = truth.affinity(u, p, np.full(len(u), truth.start_us))  # tastes on the first day
    new = truth.affinity(u, p)  # tastes at the end of the period
    np.testing.assert_array_equal(old[~np.isfinite(switch)], new[~np.isfinite(switch)])
    moved_before = before & np.isfinite(switch)
    assert after.sum() > 300 and moved_before.sum() > 300
    # before the switch, clicks agree with the old tastes; after it, with the new ones
    assert old[moved_before].mean() > new[moved_before].mean() + 0.5
    assert new[after].mean() > old[after].mean() + 0.5
    np.testing.assert_array_equal(truth.affinity(u, p, ts), np.where(after, new, old))


def test_the_truth_at_each_impressions_time_agrees_with_the_logs(worlds: tuple[Path, Path]) -> None:
    drift, _ = worlds
    truth = TrueWorld.load(drift)
    imp = _table(
        drift, "impressions", ["ts", "user_id", "product_id", "slot", "stream_id", "clicked", "purchased"]
    )
    ts = imp["ts"].astype("datetime64[us]").astype(np.int64)
    moved = np.isfinite(truth.switch_day(imp["user_id"]))
    args = (imp["user_id"][moved], imp["product_id"][moved], imp["slot"][moved])
    timed = truth.click_prob(*args, ts[moved])
    assert abs(_z(imp["clicked"][moved], timed)) < 4
    # judged by the end-of-period tastes throughout, the moved users' early clicks are mispredicted
    assert abs(_z(imp["clicked"][moved], truth.click_prob(*args))) > 6
    buy = truth.purchase_prob(*args, imp["stream_id"][moved], ts[moved])
    assert abs(_z(imp["purchased"][moved], buy)) < 4


def test_the_cli_takes_drift_and_refuses_a_bad_share(tmp_path: Path) -> None:
    args = ["data", "generate", "--users", "300", "--products", "200", "--days", "4", "--no-progress"]
    assert main([*args, "--drift-share", "1.5", "--out", str(tmp_path / "bad")]) == EXIT_BAD_INPUT
    assert (
        main([*args, "--drift-share", "1", "--drift-after", "0.5", "--out", str(tmp_path / "ok")]) == EXIT_OK
    )
    day = TrueWorld.load(tmp_path / "ok").switch_day(np.arange(1, 301))
    assert set(np.unique(day)) == {2.0, 3.0}


def test_the_streams_watched_follow_the_category_choice_of_their_day(worlds: tuple[Path, Path]) -> None:
    truth, u, sid, ts = _events(worlds[0], "stream_view", "stream_id")
    streams = _table(worlds[0], "streams", ["stream_id", "category"])
    names = list(DRIFT.category_names)
    cat_of = dict(zip(streams["stream_id"], (names.index(c) for c in streams["category"]), strict=True))
    cat = np.array([cat_of[s] for s in sid])
    moved = np.isfinite(truth.switch_day(u)) & ((ts - truth.start_us) // DAY_US >= truth.switch_day(u))
    assert moved.sum() > 500
    probs = truth.category_choice(u[moved], ts[moved])
    observed = np.bincount(cat[moved], minlength=len(names))
    z = (observed - probs.sum(axis=0)) / np.sqrt((probs * (1 - probs)).sum(axis=0))
    assert np.abs(z).max() < 4
    # the old tastes would choose differently: the observed categories are far likelier under the new ones
    old = truth.category_choice(u[moved], np.full(moved.sum(), truth.start_us))
    rows = np.arange(moved.sum())
    assert np.log(probs[rows, cat[moved]]).mean() > np.log(old[rows, cat[moved]]).mean() + 0.5
