"""The fast path's in-memory product tables reload after a build, not on every TTL: a reload
costs about half a second of CPU and holds the GIL in long stretches (features.online_fast)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from features.online_fast import FastOnlineReader
from features.settings import FeatureSettings

PRODUCTS = [10, 11, 12, 424242]


def test_the_tables_reload_after_a_build_and_only_then(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sqlite_store.model_copy(update={"product_cache_ttl_s": 0.0})  # a check per lookup
    assert settings.materialized_stamp.exists()  # the build wrote it once every view was written
    reader = FastOnlineReader(settings)
    loads: list[float] = []
    real = reader._load

    def counted() -> object:
        loads.append(time.monotonic())
        return real()

    monkeypatch.setattr(reader, "_load", counted)
    first = reader.online(1, PRODUCTS, stream_id=100)
    for _ in range(5):  # the TTL has passed every time, but no build has finished since
        again = reader.online(1, PRODUCTS, stream_id=100)
    assert len(loads) == 1
    cols = ["price", "popularity_7d"]
    pd.testing.assert_frame_equal(first[cols], again[cols])

    stamp = settings.materialized_stamp
    stamp.write_text(stamp.read_text() + "another build\n")  # what the end of a materialization does
    reader.online(1, PRODUCTS, stream_id=100)  # answers from the old tables, reloads behind
    deadline = time.monotonic() + 30
    while (len(loads) < 2 or reader._refreshing.locked()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loads) == 2
    reader.online(1, PRODUCTS, stream_id=100)
    assert len(loads) == 2  # the new stamp is the loaded one: no third load


def test_without_a_stamp_every_ttl_reloads(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store materialized by other means (no stamp): the tables cannot know, so they reload."""
    settings = sqlite_store.model_copy(update={"product_cache_ttl_s": 0.0})
    reader = FastOnlineReader(settings)
    monkeypatch.setattr(reader, "_build_stamp", lambda: None)
    loads: list[int] = []
    real = reader._load
    monkeypatch.setattr(reader, "_load", lambda: (loads.append(1), real())[1])
    reader.online(1, PRODUCTS, stream_id=100)
    reader.online(1, PRODUCTS, stream_id=100)
    deadline = time.monotonic() + 30
    while (len(loads) < 2 or reader._refreshing.locked()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loads) == 2


def test_tables_older_than_the_max_age_reload_without_a_new_stamp(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A materialization that writes no stamp (`feast materialize` run by hand) is picked up after
    ``product_cache_max_age_s`` at the latest; the stamp is unchanged throughout."""
    settings = sqlite_store.model_copy(update={"product_cache_ttl_s": 0.0, "product_cache_max_age_s": 0.0})
    reader = FastOnlineReader(settings)
    loads: list[int] = []
    real = reader._load
    monkeypatch.setattr(reader, "_load", lambda: (loads.append(1), real())[1])
    stamp = settings.materialized_stamp.read_bytes()
    reader.online(1, PRODUCTS, stream_id=100)
    reader.online(1, PRODUCTS, stream_id=100)
    deadline = time.monotonic() + 30
    while (len(loads) < 2 or reader._refreshing.locked()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(loads) == 2 and settings.materialized_stamp.read_bytes() == stamp
