"""Interaction matrix (weights, decay, exclusions) and the promotion gate's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.data_model import write_table
from training.gate import decide, paired_bootstrap
from training.interactions import build_interactions, load_events
from training.settings import EventWeights, SplitConfig

T = pd.Timestamp("2026-01-10", tz="UTC")


def _events(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user_id", "type", "product_id", "ts", "watch_seconds"])
    df["event_id"] = np.arange(1, len(df) + 1)
    return df


def test_matrix_sums_weighted_events_per_cell() -> None:
    ev = _events(
        [
            (1, "product_click", 10, T, None),
            (1, "purchase", 10, T, None),
            (1, "add_to_cart", 20, T, None),
            (2, "stream_view", None, T, 600.0),  # no product: not in the matrix
            (2, "product_click", 20, T, 120.0),  # watch time on a product event counts, log-scaled
        ]
    )
    w = EventWeights()
    inter = build_interactions(ev, w)
    m = pd.DataFrame(inter.matrix.toarray(), index=inter.user_ids, columns=inter.item_ids)
    assert m.loc[1, 10] == pytest.approx(w.product_click + w.purchase)
    assert m.loc[1, 20] == pytest.approx(w.add_to_cart)
    assert m.loc[2, 20] == pytest.approx(w.product_click + w.watch_log_scale * np.log1p(2.0))
    assert m.loc[2, 10] == 0


def test_time_decay_halves_weight_per_half_life() -> None:
    ev = _events([(1, "purchase", 10, T - pd.Timedelta(days=7), None), (1, "purchase", 20, T, None)])
    inter = build_interactions(ev, EventWeights(), half_life_days=7.0, as_of=T)
    row = inter.matrix.toarray()[0]
    assert row[0] == pytest.approx(row[1] / 2, rel=1e-5)


def test_pinned_catalogue_keeps_untouched_products_and_drops_unknown() -> None:
    ev = _events([(1, "purchase", 10, T, None), (2, "purchase", 99, T, None)])
    inter = build_interactions(ev, EventWeights(), item_ids=np.array([10, 11, 12]))
    assert inter.item_ids.tolist() == [10, 11, 12]
    assert inter.user_ids.tolist() == [1]  # user 2 only touched an unknown product


def test_load_events_leaves_out_quarantined_rows_and_deleted_users(tmp_path: Path) -> None:
    ev = _events([(1, "purchase", 10, T, None), (2, "purchase", 10, T, None), (3, "purchase", 10, T, None)])
    ev["ts"] = ev["ts"].astype("datetime64[us, UTC]")
    write_table(tmp_path, "events", pa.Table.from_pandas(ev, preserve_index=False))
    pd.DataFrame({"table": ["events"], "reason": ["bad"], "event_id": ["3"]}).to_parquet(
        tmp_path / "quarantine.parquet"
    )
    out = load_events(tmp_path, exclude_users=[2])
    assert out["user_id"].tolist() == [1]


def test_split_fractions_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        SplitConfig(history=0.5, train=0.3, valid=0.3, test=0.1)


def test_paired_bootstrap_sees_a_small_consistent_gain_that_noise_hides() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 400)  # large query-to-query spread
    better = base + 0.02 + rng.normal(0, 0.01, 400)
    diff, lo, hi = paired_bootstrap(base, better, seed=0)
    assert lo > 0 and diff == pytest.approx(0.02, abs=0.005)
    assert decide(base, better).promote


def test_gate_refuses_worse_or_equal_and_accepts_forced_or_first() -> None:
    rng = np.random.default_rng(2)
    champ = rng.uniform(0, 1, 300)
    assert not decide(champ, champ - 0.05).promote
    assert not decide(champ, champ.copy()).promote
    noisy = champ + rng.normal(0, 0.2, 300)  # no real difference
    assert not decide(champ, noisy).promote
    assert decide(champ, champ - 0.05, force=True).promote
    first = decide(None, champ)
    assert first.promote and "no champion" in first.reason


def test_gate_drops_queries_without_relevant_items_pairwise() -> None:
    a = np.array([0.5, np.nan, 0.2, 0.9])
    b = np.array([0.6, 0.7, np.nan, 1.0])
    assert decide(a, b).n_queries == 2


def test_a_better_mean_inside_the_noise_is_not_enough() -> None:
    """The challenger's mean gain is exactly +0.01 but the per-query noise is 30x that: the interval
    straddles 0 and the gate keeps the champion (a rule on the mean alone would promote)."""
    rng = np.random.default_rng(4)
    champ = rng.uniform(0, 1, 300)
    noise = rng.normal(0, 0.3, 300)
    chall = champ + 0.01 + (noise - noise.mean())
    r = decide(champ, chall)
    assert r.mean_diff == pytest.approx(0.01) and r.ci_low < 0 < r.ci_high
    assert not r.promote and "includes or is below 0" in r.reason
