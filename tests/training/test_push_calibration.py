"""The push calibration keeps what the pushes to users the model lacks say (serving's cold rate).

A simulated week, an ALS fitted on its first five days, the calibration on the pushes of the
last two (as training does: out of sample). Users first active in those two days have no
factors: their pushes used to be dropped, so serving gave such users P(purchase | pushed) 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_the_calibration_measures_the_pushes_to_users_the_model_lacks(week_world: Path) -> None:
    from features.data_model import read_table
    from models.als import ALSCandidateGenerator, ALSConfig
    from models.vocab import IdVocab
    from training.calibrate import push_calibration
    from training.interactions import build_interactions, load_events
    from training.settings import EventWeights

    events = load_events(week_world)
    cut = events["ts"].min() + pd.Timedelta(days=5)
    inter = build_interactions(events[events["ts"] < cut], EventWeights())
    cfg = ALSConfig(factors=8, iterations=6, random_state=0, num_threads=1)
    als = ALSCandidateGenerator(cfg).fit(inter.matrix, IdVocab(inter.user_ids), IdVocab(inter.item_ids))

    pushes = read_table(week_world, "pushes").to_pandas()
    pushes = pushes[pushes["ts"] >= cut]
    lacks = als.users.index(pushes["user_id"].to_numpy(np.int64)) < 0
    assert lacks.sum() >= 100 and (~lacks).sum() >= 100, "the week should push both kinds of users"
    bought = int(pushes.loc[lacks, "purchased"].sum())

    scored = np.isfinite(
        als.score(pushes["user_id"].to_numpy(np.int64), pushes["product_id"].to_numpy(np.int64))
    )
    cal = push_calibration(week_world, als, since=cut)
    # A push of a product the model lacks, to a user it holds, counts in neither figure (serving
    # scores such a product by its category's factors).
    assert cal.n_cold == int(lacks.sum()) and cal.n == int(scored.sum()) < int((~lacks).sum())
    assert cal.cold_rate == pytest.approx((bought + 0.5) / (lacks.sum() + 1))
    # A user excluded from training (deleted, or no personalization consent) is in neither figure.
    gone = set(pushes.loc[lacks, "user_id"].head(20).astype(int))
    without = push_calibration(week_world, als, excluded_users=gone, since=cut)
    assert without.n_cold == int(lacks.sum()) - int(pushes.loc[lacks, "user_id"].isin(gone).sum())
