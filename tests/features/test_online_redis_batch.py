"""The fast path on Redis: one network round trip per lookup, and exactly the values of the
per-view ``online_read`` path it replaced (features.online_reads.RedisBatch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from redis.connection import AbstractConnection

from features.online_fast import AFFINITY, LIVE_FEATURES, USER_FEATURES, FastOnlineReader
from features.online_reads import RedisBatch, ViewRead, entity_keys, read_rows
from features.settings import FeatureSettings

pytestmark = pytest.mark.integration

PRODUCTS = [10, 11, 12, 424242]  # two categories and an unknown product


class PerViewReader(FastOnlineReader):
    """The fast path as it was before the batch: one ``online_read`` (one pipeline) per view."""

    def _redis_batch(self) -> RedisBatch | None:
        return None


@pytest.fixture
def settings(redis_store: FeatureSettings) -> FeatureSettings:
    # no background refresh of the product table may add trips while they are counted
    return redis_store.model_copy(update={"product_cache_ttl_s": 3600.0})


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts requests written to any redis-py connection in this process (a pipeline writes all
    its commands in one ``send_packed_command``, then reads every reply: one round trip)."""
    sent: list[int] = []
    real = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(1)
        real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    yield sent


def _hmget_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


def test_a_redis_lookup_is_one_round_trip(settings: FeatureSettings, sends: list[int]) -> None:
    batched, per_view = FastOnlineReader(settings), PerViewReader(settings)
    for reader in (batched, per_view):
        reader.online(1, PRODUCTS, stream_id=100)  # warm: registry, product table, connection
    assert batched._redis_batch() is not None

    hmgets = _hmget_calls(settings.redis_url)  # its own connection: counted, so read it first
    before = len(sends)
    batched.online(1, PRODUCTS, stream_id=100)
    assert len(sends) - before == 1
    # that one request carried every key: profile, stream, live session, and one per category
    # (beauty, food, and "unknown" for the unknown product)
    assert _hmget_calls(settings.redis_url) - hmgets == 6

    before = len(sends)
    per_view.online(1, PRODUCTS, stream_id=100)
    assert len(sends) - before == 4  # the counter sees every trip: the old path made four


def test_the_batch_returns_what_the_per_view_path_returns(settings: FeatureSettings) -> None:
    batched, per_view = FastOnlineReader(settings), PerViewReader(settings)
    for user, stream in ((1, 100), (2, 100), (3, None), (4, 100), (987654, 5), (-1, None)):
        a = per_view.online(user, PRODUCTS, stream_id=stream)
        b = batched.online(user, PRODUCTS, stream_id=stream)
        now = ["repurchase_due_ratio"]  # uses "now", read microseconds apart
        pd.testing.assert_frame_equal(a.drop(columns=now), b.drop(columns=now), check_exact=True)
        pd.testing.assert_series_equal(a[now[0]], b[now[0]], rtol=1e-6)


def test_the_script_and_the_pipeline_read_the_same_values(settings: FeatureSettings) -> None:
    """On one node the batch is one EVALSHA (HMGET_ALL); elsewhere Feast's pipeline. Same rows."""
    scripted, piped = FastOnlineReader(settings), FastOnlineReader(settings)
    batch = piped._redis_batch()
    assert batch is not None and batch._script is not None and scripted._redis_batch() is not None
    batch._script = None  # as on a cluster: Feast's pipeline
    for user, stream in ((1, 100), (2, 100), (3, None), (987654, 5), (-1, None)):
        a = piped.online(user, PRODUCTS, stream_id=stream)
        b = scripted.online(user, PRODUCTS, stream_id=stream)
        now = ["repurchase_due_ratio"]
        pd.testing.assert_frame_equal(a.drop(columns=now), b.drop(columns=now), check_exact=True)
    redis.Redis.from_url(settings.redis_url).script_flush()  # a restarted server forgets scripts
    c = scripted.online(1, PRODUCTS, stream_id=100)
    pd.testing.assert_frame_equal(
        c.drop(columns=["repurchase_due_ratio"]),
        piped.online(1, PRODUCTS, stream_id=100).drop(columns=["repurchase_due_ratio"]),
        check_exact=True,
    )


def test_batch_rows_and_keys_match_feasts_own(settings: FeatureSettings) -> None:
    reader = FastOnlineReader(settings)
    batch = RedisBatch.for_store(reader.store)
    assert batch is not None
    view = reader.store.get_feature_view
    reads = [
        ViewRead(view("user_profile"), [{"user_id": u} for u in (1, 2, 987654, -1)], USER_FEATURES),
        ViewRead(
            view("user_category_affinity"),
            [{"user_id": 1, "category": c} for c in ("beauty", "food", "bébé ✓", "")],
            AFFINITY,
        ),  # fmt: skip
        ViewRead(
            view("live_session"),
            [{"user_id": 2, "stream_id": 100}, {"stream_id": -1, "user_id": 2}],
            LIVE_FEATURES,
        ),  # fmt: skip
    ]
    got = batch.read(reads)
    online = reader.store._get_provider().online_store
    for r, rows in zip(reads, got, strict=True):
        want = read_rows(reader.store, r.view, r.keys, r.feats)
        assert [list(row) for row in rows] == [list(row) for row in want]  # same features, in order
        np.testing.assert_array_equal(
            np.array([list(row.values()) for row in rows], dtype=object).astype("float64"),
            np.array([list(row.values()) for row in want], dtype=object).astype("float64"),
        )
        feast_keys = online._generate_redis_keys_for_entities(reader.store.config, entity_keys(r.keys))
        assert [batch.redis_key(k) for k in r.keys] == feast_keys
    assert got[0][0]["monetary_90d"] == 60.0 and np.isnan(got[0][2]["monetary_90d"])  # user 1; unknown
    assert batch.read([]) == []
