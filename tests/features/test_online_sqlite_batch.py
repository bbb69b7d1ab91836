"""The fast path on SQLite: one statement per lookup, and exactly the values of the per-view
``online_read`` path it replaced (features.online_sqlite.SqliteBatch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key

from features.online_fast import FastOnlineReader
from features.online_sqlite import SqliteBatch
from features.settings import FeatureSettings
from tests.features.batch_reads import assert_batch_matches_feast, assert_same_lookups

PRODUCTS = [10, 11, 12, 424242]  # two categories and an unknown product


class PerViewReader(FastOnlineReader):
    """The fast path as it was before the batch: one ``online_read`` (one statement) per view."""

    def _batch_reader(self) -> None:
        return None


@pytest.fixture
def settings(sqlite_store: FeatureSettings) -> FeatureSettings:
    # no background refresh of the product table may add statements while they are counted
    return sqlite_store.model_copy(update={"product_cache_ttl_s": 3600.0})


@pytest.fixture
def statements(settings: FeatureSettings) -> Iterator[tuple[FastOnlineReader, list[str]]]:
    """A warm reader and every SELECT its SQLite connection runs from now on."""
    reader = FastOnlineReader(settings)
    reader.online(1, PRODUCTS, stream_id=100)  # warm: registry, product table, connection
    seen: list[str] = []
    conn = reader.store._get_provider().online_store._get_conn(reader.store.config)
    conn.set_trace_callback(
        lambda sql: seen.append(sql) if sql.lstrip().upper().startswith("SELECT") else None
    )
    yield reader, seen
    conn.set_trace_callback(None)


def test_a_sqlite_lookup_is_one_statement(statements: tuple[FastOnlineReader, list[str]]) -> None:
    reader, seen = statements
    assert isinstance(reader._batch_reader(), SqliteBatch)
    reader.online(1, PRODUCTS, stream_id=100)
    assert len(seen) == 1
    # it read the four request-dependent views, and only the features asked for
    assert seen[0].count("UNION ALL") == 3 and "feature_name IN" in seen[0]


def test_the_batch_returns_what_the_per_view_path_returns(settings: FeatureSettings) -> None:
    batched, per_view = FastOnlineReader(settings), PerViewReader(settings)
    assert isinstance(batched._batch_reader(), SqliteBatch)
    assert_same_lookups(per_view, batched, PRODUCTS)


def test_batch_rows_and_keys_match_feasts_own(settings: FeatureSettings) -> None:
    reader = FastOnlineReader(settings)
    batch = SqliteBatch.for_store(reader.store)
    assert batch is not None
    version = reader.store.config.entity_key_serialization_version
    assert_batch_matches_feast(
        reader.store,
        batch,
        batch.sqlite_key,
        lambda protos: [serialize_entity_key(k, entity_key_serialization_version=version) for k in protos],
    )


def test_other_stores_get_no_sqlite_batch(settings: FeatureSettings) -> None:
    reader = FastOnlineReader(settings)
    assert SqliteBatch.for_store(reader.store) is not None
    reader.store.config.online_store.type = "redis"  # what for_store looks at; this reader is thrown away
    assert SqliteBatch.for_store(reader.store) is None
