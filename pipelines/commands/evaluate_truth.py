"""The simulator's truth for `slotcast evaluate`: every policy's slates on the logged requests valued
with the world's own probabilities (DATA/truth), as run.Truth."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def simulator_truth(data: Path, reward: str) -> Any:
    """The simulator's truth as run.Truth, when DATA has one."""
    from pipelines.simulator.truth import TrueWorld

    world = TrueWorld.load(data)

    def truth(kind: str, requests: Any, slates: Any) -> Any:
        import numpy as np

        users = requests["user_id"].to_numpy(np.int64)
        filled = slates >= 0
        out = np.zeros(slates.shape)
        u = np.broadcast_to(users[:, None], slates.shape)[filled]
        slots = np.broadcast_to(np.arange(slates.shape[1]), slates.shape)[filled]
        # each request is judged by its user's tastes on its day (worlds with taste drift)
        when = np.broadcast_to(_ts_us(requests)[:, None], slates.shape)[filled]
        try:
            if kind == "push":
                if reward != "purchased":
                    return None  # the truth module answers push purchases only
                out[filled] = world.push_purchase_prob(u, slates[filled], when)
                # a push to a user who has churned is sent but never opened (pipelines/simulator/pushes.py)
                out *= _around(world, requests)[:, None]
            elif reward == "clicked":
                out[filled] = world.click_prob(u, slates[filled], slots, when)
            else:
                out[filled] = world.purchase_prob(
                    u, slates[filled], slots, _streams(requests, slates.shape, filled), when
                )
        except KeyError as exc:  # a service log may name users or products this world never had
            log.warning("no simulator truth for the %s log: %s", kind, exc)
            return None
        return out.sum(axis=1)

    return truth


def _streams(requests: Any, shape: tuple[int, ...], filled: Any) -> Any:
    """Each slot's stream id; -1 (TrueWorld's "no stream": the average host) where a request has none,
    row by row, so one stream-less request does not take the host effect from all the others."""
    import numpy as np
    import pandas as pd

    ids = (
        pd.to_numeric(requests["stream_id"], errors="coerce").fillna(-1).to_numpy(np.float64).astype(np.int64)
    )
    return np.broadcast_to(ids[:, None], shape)[filled]


def _ts_us(requests: Any) -> Any:
    """Each request's time in microseconds since the epoch."""
    import numpy as np
    import pandas as pd

    return pd.to_datetime(requests["ts"], utc=True).to_numpy("datetime64[us]").astype(np.int64)


def _around(world: Any, requests: Any) -> Any:
    """1 where the request's user had not churned by the request's day, else 0."""
    import numpy as np

    from pipelines.simulator.config import DAY_US

    day = (_ts_us(requests) - world.start_us) // DAY_US
    return (world.churn_day(requests["user_id"].to_numpy(np.int64)) > day).astype(np.float64)
