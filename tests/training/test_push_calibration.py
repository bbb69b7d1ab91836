"""The push calibration keeps what the pushes to users without a history say (serving's cold rate).

A simulated week, an ALS fitted on its first five days, the map on the pushes of the last two (as
training does: out of sample). A push to a user who had sent no event the ALS weighs before it is
a push to a user serving has no score for: their outcomes give the cold rate, over the whole log.
Before, such pushes were dropped and serving gave those users P(purchase | pushed) 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_the_calibration_measures_the_pushes_to_users_without_a_history(week_world: Path) -> None:
    from features.data_model import read_table
    from models.als import ALSCandidateGenerator, ALSConfig
    from models.vocab import IdVocab
    from training.calibrate import first_interaction, push_calibration
    from training.interactions import build_interactions, load_events
    from training.settings import EventWeights

    weights = EventWeights()
    events = load_events(week_world)
    cut = events["ts"].min() + pd.Timedelta(days=5)
    inter = build_interactions(events[events["ts"] < cut], weights)
    cfg = ALSConfig(factors=8, iterations=6, random_state=0, num_threads=1)
    als = ALSCandidateGenerator(cfg).fit(inter.matrix, IdVocab(inter.user_ids), IdVocab(inter.item_ids))
    pushes = read_table(week_world, "pushes").to_pandas()

    # The known answer, the slow way: a push is to a user without a history when none of their
    # events of a weighed type, naming a product, came before it.
    weighed = events[events["type"].isin(list(weights.per_type())) & events["product_id"].notna()]
    times = {int(u): sorted(g["ts"]) for u, g in weighed.groupby("user_id")}
    fresh = np.array(
        [
            not times.get(int(u)) or times[int(u)][0] >= t
            for u, t in zip(pushes["user_id"], pushes["ts"], strict=True)
        ]
    )
    assert fresh.sum() >= 500 and (~fresh).sum() >= 500, "the week should push both kinds of users"

    first = first_interaction(events, weights.per_type())
    cal = push_calibration(week_world, als, since=cut, first_seen=first)
    assert cal.n_cold == int(fresh.sum())
    assert cal.cold_rate == pytest.approx((pushes.loc[fresh, "purchased"].sum() + 0.5) / (fresh.sum() + 1))
    # The map is fitted on the window's scored pushes only, as before.
    window = pushes[pushes["ts"] >= cut]
    scored = np.isfinite(
        als.score(window["user_id"].to_numpy(np.int64), window["product_id"].to_numpy(np.int64))
    )
    assert cal.n == int(scored.sum())
    # From a time on only: at the log's start every user looks new.
    later = push_calibration(week_world, als, since=cut, first_seen=first, cold_since=cut)
    assert later.n_cold == int((fresh & (pushes["ts"] >= cut).to_numpy()).sum()) < cal.n_cold
    # A user excluded from training (deleted, or no personalization consent) is in neither figure.
    gone = set(pushes.loc[fresh, "user_id"].head(20).astype(int))
    without = push_calibration(week_world, als, excluded_users=gone, since=cut, first_seen=first)
    assert without.n_cold == int(fresh.sum()) - int(pushes.loc[fresh, "user_id"].isin(gone).sum())

    # Without the events: the window's pushes to users the model does not hold. A push of a product
    # the model lacks, to a user it holds, counts in neither figure.
    lacks = als.users.index(window["user_id"].to_numpy(np.int64)) < 0
    alone = push_calibration(week_world, als, since=cut)
    assert alone.n_cold == int(lacks.sum()) and alone.n == cal.n < int((~lacks).sum())
    assert alone.cold_rate == pytest.approx((window.loc[lacks, "purchased"].sum() + 0.5) / (lacks.sum() + 1))
