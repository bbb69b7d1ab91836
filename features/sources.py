"""Feast data sources: one parquet file source per offline table, and the live-session push source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.offline import OFFLINE_TABLES

LIVE_PUSH_SOURCE = "live_session_push"


def make_sources(offline_dir: Path) -> dict[str, Any]:
    """Name -> source; the file sources point at absolute paths under ``offline_dir``."""
    from feast import FileSource, PushSource

    sources: dict[str, Any] = {
        name: FileSource(
            name=f"{name}_source",
            path=str(Path(offline_dir) / file),
            timestamp_field="event_timestamp",
            description=f"offline {name} features computed by features.offline",
        )
        for name, file in OFFLINE_TABLES.items()
    }
    # Serving pushes running live-session totals here (features.live); the batch source holds the
    # same totals computed from past events, for training.
    sources["live_push"] = PushSource(name=LIVE_PUSH_SOURCE, batch_source=sources["live_session"])
    return sources
