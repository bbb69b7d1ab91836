"""Fit the push calibration: P(purchase | pushed) as a logistic map of the ALS score.

Serving ranks push audiences by ALS affinity; the expected value of a push needs a probability,
so the bundle carries a Platt map fitted on the logged pushes (``pushes`` table: was the pushed
product bought?). Data without pushes (imported shop logs) gets the identity link, flagged by
``n == 0`` in the manifest. The pushes the model cannot score (a user it holds no factors for:
signed up, or first active, after its training data) are not thrown away: their purchase rate is
the bundle's ``cold_rate``, serving's P(purchase | pushed) for such a user.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from features.data_model import read_table
from models.calibration import PlattCalibration
from models.errors import ModelFitError

log = logging.getLogger(__name__)


def push_calibration(
    data_dir: Path,
    als: object,
    excluded_users: object = None,
    since: object = None,
    max_rows: int = 2_000_000,
) -> PlattCalibration:
    """Fit on the push log of ``data_dir`` with ``als.score``; the identity link when it cannot be fitted.

    ``since``: only pushes from this time on, the ones ``als`` was not trained on. Pushes the model
    saw score high because their purchases are in its training data, which would make the map far
    too steep for the pushes it is used on.
    """
    pushes = read_table(data_dir, "pushes", columns=["ts", "user_id", "product_id", "purchased"]).to_pandas()
    if since is not None:
        pushes = pushes[pushes["ts"] >= since]
    ids = list(excluded_users) if isinstance(excluded_users, set) else excluded_users
    excluded = np.asarray(ids if ids is not None else [], dtype=np.int64)
    if excluded.size:
        pushes = pushes[~pushes["user_id"].isin(excluded)]
    if len(pushes) > max_rows:
        pushes = pushes.sample(max_rows, random_state=0)
    if pushes.empty:
        return PlattCalibration()
    scores = np.asarray(
        als.score(pushes["user_id"].to_numpy(np.int64), pushes["product_id"].to_numpy(np.int64)),  # type: ignore[attr-defined]
        dtype=np.float64,
    )
    labels = pushes["purchased"].to_numpy(bool)
    users = getattr(als, "users", None)
    if users is not None:  # the unscored pushes that count as cold: to a user without factors
        held = users.index(pushes["user_id"].to_numpy(np.int64)) >= 0
        keep = ~(held & ~np.isfinite(scores))  # a product it lacks: neither the map nor the cold rate
        scores, labels = scores[keep], labels[keep]
    try:
        cal = PlattCalibration.fit(scores, labels)
    except ModelFitError as exc:
        log.warning("push calibration not fitted (%s); serving uses the plain logistic link", exc)
        return PlattCalibration()
    log.info(
        "push calibration a=%.3f b=%.3f on %d pushes (base rate %.4f); %d unscored pushes (rate %.4f)",
        cal.a,
        cal.b,
        cal.n,
        cal.base_rate or 0,
        cal.n_cold,
        cal.cold_rate if cal.cold_rate is not None else float("nan"),
    )
    return cal
