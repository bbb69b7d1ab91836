"""The run's data_digest changes with anything training reads from an event: it hashed ids and
times only, so a log re-imported with another event type (a click read as a purchase), stream or
watch time kept the digest of the data the model never saw."""

from __future__ import annotations

import pandas as pd
import pytest

from training.interactions import data_digest


def _events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [1, 2, 3],
            "ts": pd.to_datetime(["2026-01-01 10:00", "2026-01-01 10:05", "2026-01-01 10:09"], utc=True),
            "user_id": [7, 7, 8],
            "type": ["stream_view", "product_click", "purchase"],
            "product_id": pd.array([None, 101, 101], dtype="Int64"),
            "stream_id": pd.array([3, 3, None], dtype="Int64"),
            "watch_seconds": [600.0, None, None],
            "amount": [None, None, 19.9],
        }
    )


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [("type", 1, "purchase"), ("stream_id", 2, 3), ("watch_seconds", 0, 60.0), ("amount", 2, 5.0)],
)
def test_the_digest_follows_every_column_training_reads(column: str, row: int, value: object) -> None:
    a = _events()
    b = _events()
    b.loc[row, column] = value
    assert data_digest(a) == data_digest(_events())  # stable
    assert data_digest(a) != data_digest(b)
