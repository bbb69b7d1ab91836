"""Fit the push calibration: P(purchase | pushed) as a logistic map of the ALS score.

Serving ranks push audiences by ALS affinity; the expected value of a push needs a probability,
so the bundle carries a Platt map fitted on the logged pushes (``pushes`` table: was the pushed
product bought?). Data without pushes (imported shop logs) gets the identity link, flagged by
``n == 0`` in the manifest.

A push to a user with no history has no score: serving gives such a user the bundle's
``cold_rate``, the purchase rate of the logged pushes to users who had sent no event the ALS
weighs before the push (``first_interaction``). Those are counted from ``cold_since`` on, not
only in the map's window: a user's state at the push is known from the events, whatever the
model, and such a push is rarely bought. On the demo world 1 of the 1,270 in the map's window
was, 8 of the 7,180 from the end of the ALS's history window on (training passes that time).
Earlier pushes are left out: at the log's start every user looks new, their history being
before it (all 19,635 from the log's start: rate 0.0029, by the simulator's truth 0.0027,
against 0.0011 from the history window's end on).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features.data_model import read_table
from models.calibration import PlattCalibration
from models.errors import ModelFitError

log = logging.getLogger(__name__)


def first_interaction(events: pd.DataFrame, event_types: object) -> pd.Series:
    """Per user, the time of their first event the ALS weighs: of one of ``event_types`` and naming
    a product (the confidence matrix's cells: training/interactions.py)."""
    weighed = events["type"].isin(list(event_types)) & events["product_id"].notna()  # type: ignore[call-overload]
    return events.loc[weighed].groupby("user_id")["ts"].min()


def push_calibration(
    data_dir: Path,
    als: object,
    excluded_users: object = None,
    since: object = None,
    max_rows: int = 2_000_000,
    first_seen: pd.Series | None = None,
    cold_since: object = None,
) -> PlattCalibration:
    """Fit on the push log of ``data_dir`` with ``als.score``; the identity link when it cannot be fitted.

    ``since``: only pushes from this time on, the ones ``als`` was not trained on. Pushes the model
    saw score high because their purchases are in its training data, which would make the map far
    too steep for the pushes it is used on. ``first_seen`` (``first_interaction``): the cold rate
    is measured on the pushes from ``cold_since`` on (all, if None) sent before their user's first
    such event; without it, on the window's pushes to users ``als`` does not hold.
    """
    pushes = read_table(data_dir, "pushes", columns=["ts", "user_id", "product_id", "purchased"]).to_pandas()
    ids = list(excluded_users) if isinstance(excluded_users, set) else excluded_users
    excluded = np.asarray(ids if ids is not None else [], dtype=np.int64)
    if excluded.size:
        pushes = pushes[~pushes["user_id"].isin(excluded)]
    cold: np.ndarray | None = None
    if first_seen is not None:
        first = pushes["user_id"].map(first_seen)
        fresh = first.isna() | (first >= pushes["ts"])
        if cold_since is not None:
            fresh &= pushes["ts"] >= cold_since
        cold = pushes.loc[fresh, "purchased"].to_numpy(bool)
    if since is not None:
        pushes = pushes[pushes["ts"] >= since]
    if len(pushes) > max_rows:
        pushes = pushes.sample(max_rows, random_state=0)
    scores = np.asarray(
        als.score(pushes["user_id"].to_numpy(np.int64), pushes["product_id"].to_numpy(np.int64)),  # type: ignore[attr-defined]
        dtype=np.float64,
    )
    labels = pushes["purchased"].to_numpy(bool)
    if cold is None:  # a push of a product it lacks, to a user it holds, is not a cold user's
        held = als.users.index(pushes["user_id"].to_numpy(np.int64)) >= 0  # type: ignore[attr-defined]
        cold = labels[~np.isfinite(scores) & ~held]
    try:
        cal = PlattCalibration.fit(scores, labels)
    except ModelFitError as exc:
        if len(pushes):
            log.warning("push calibration not fitted (%s); serving uses the plain logistic link", exc)
        cal = PlattCalibration()
    cal = cal.with_cold_outcomes(cold)
    log.info(
        "push calibration a=%.3f b=%.3f on %d pushes (base rate %.4f); %d pushes to users with no history (rate %.4f)",
        cal.a,
        cal.b,
        cal.n,
        cal.base_rate or 0,
        cal.n_cold,
        cal.cold_rate if cal.cold_rate is not None else float("nan"),
    )
    return cal
