"""The app ``slotcast serve`` runs, on a built state of a simulated world, with the world's truth:
what the benchmarks that judge serving's answers by the truth start from."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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
