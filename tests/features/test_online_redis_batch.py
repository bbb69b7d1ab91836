"""The fast path on Redis: one network round trip per lookup, and exactly the values of the
per-view ``online_read`` path it replaced (features.online_reads.RedisBatch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import redis
from redis.connection import AbstractConnection

from features.online_fast import FastOnlineReader
from features.online_reads import RedisBatch
from features.settings import FeatureSettings
from tests.features.batch_reads import assert_batch_matches_feast, assert_same_lookups

pytestmark = pytest.mark.integration

PRODUCTS = [10, 11, 12, 424242]  # two categories and an unknown product


class PerViewReader(FastOnlineReader):
    """The fast path as it was before the batch: one ``online_read`` (one pipeline) per view."""

    def _batch_reader(self) -> RedisBatch | None:
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
    assert batched._batch_reader() is not None

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
    assert_same_lookups(per_view, batched, PRODUCTS)


def test_the_script_and_the_pipeline_read_the_same_values(settings: FeatureSettings) -> None:
    """On one node the batch is one EVALSHA (HMGET_ALL); elsewhere Feast's pipeline. Same rows."""
    scripted, piped = FastOnlineReader(settings), FastOnlineReader(settings)
    batch = piped._batch_reader()
    assert (
        isinstance(batch, RedisBatch) and batch._script is not None and scripted._batch_reader() is not None
    )
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
    online = reader.store._get_provider().online_store
    assert_batch_matches_feast(
        reader.store,
        batch,
        batch.redis_key,
        lambda protos: online._generate_redis_keys_for_entities(reader.store.config, protos),
    )
