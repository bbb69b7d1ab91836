"""The app ``slotcast serve`` runs, on a built state of a simulated world, with the world's truth:
what the benchmarks that judge serving's answers by the truth start from."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any


@contextmanager
def served_world(state: Path) -> Iterator[tuple[Any, Any]]:
    """(the serving app on ``state``, its data directory's ``TrueWorld``), warnings and logs quiet."""
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from pipelines.simulator.truth import TrueWorld
    from serving.runtime import SlotcastApp
    from serving.settings import ServingSettings

    app = SlotcastApp.from_settings(ServingSettings(state_dir=state))
    try:
        yield app, TrueWorld.load(app.settings.data_dir)
    finally:
        app.close()


def true_push_prob(truth: Any, users: Any, products: Any, at: datetime) -> Any:
    """The world's P(purchase | pushed) of pushing ``products`` to ``users`` at ``at``: by their
    tastes on that day, and 0 for a user who had churned by then (such a push is sent but never
    opened: pipelines/simulator/pushes.py). ``TrueWorld.push_purchase_prob`` alone assumes the
    user is still around."""
    import numpy as np

    from pipelines.simulator.config import DAY_US

    ts = int(at.timestamp() * 1_000_000)
    users = np.asarray(users, np.int64)
    p = truth.push_purchase_prob(users, np.asarray(products, np.int64), np.full(len(users), ts))
    return p * (truth.churn_day(users) > (ts - truth.start_us) // DAY_US)
