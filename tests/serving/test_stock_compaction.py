"""The stock level lines are deleted once the products table supersedes them: a worker starting
deletes the files of the days that ended before the table was written (today's never), so it no
longer reads every level ever set. Before, every file was kept for good. A level taken after the
table was written is never lost, and a worker reading while another deletes goes on unharmed."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from serving.catalog import Catalog
from serving.stock import STOCK_TYPE, StockLevels

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
TABLE = TODAY - timedelta(hours=12)  # the products table written yesterday at noon (UTC)


@pytest.fixture(autouse=True)
def _as_of_the_test() -> None:
    """TODAY and TABLE taken again as each test starts: a run may cross midnight (UTC)."""
    global TODAY, TABLE
    TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    TABLE = TODAY - timedelta(hours=12)


TABLES = ("users", "products", "events", "streams", "stream_products", "communities", "memberships")


def _us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000


def _catalog(tables: dict[str, pa.Table], tmp_path: Path, written: datetime) -> Catalog:
    """The catalogue a worker loads from a data directory whose products table was written at ``written``."""
    from features.data_model import table_path, write_table

    data = tmp_path / "data"
    if not data.exists():
        for name in TABLES:
            write_table(data, name, tables[name])
    os.utime(table_path(data, "products"), (written.timestamp(), written.timestamp()))
    return Catalog.from_data_dir(data)


def _write_levels(directory: Path, day: datetime, *levels: tuple[int, int, datetime]) -> Path:
    """A day's file of another worker's (product, stock, taken at) levels, their ids in that order."""
    path = directory / STOCK_TYPE / f"{day:%Y%m%d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for pid, stock, taken in levels:
            line = {"w": "other", "type": STOCK_TYPE, "event_id": _us(taken) << 10, "product_id": pid}
            f.write(json.dumps({**line, "stock": stock, "ts_us": _us(taken)}) + "\n")
    return path


def _stock(catalog: Catalog, pid: int) -> float:
    return float(catalog.product_frame(np.array([pid]))["stock"][0])


@pytest.fixture()
def products(tables: dict[str, pa.Table]) -> list[int]:
    """Three products in stock in the table (a level of 0 shows)."""
    p = tables["products"].to_pandas()
    return [int(x) for x in p.loc[p["stock"] > 0, "product_id"][:3]]


def test_days_before_the_table_are_deleted_at_the_start_and_later_levels_hold(
    tables: dict[str, pa.Table], tmp_path: Path, products: list[int]
) -> None:
    a, b, c = products
    directory = tmp_path / "shared_events"
    two_days_ago = _write_levels(directory, TODAY - timedelta(days=2), (a, 0, TODAY - timedelta(hours=40)))
    yesterday = _write_levels(
        directory, TODAY - timedelta(days=1),
        (b, 0, TABLE - timedelta(hours=3)),  # taken before the table: the table's stock holds
        (c, 0, TABLE + timedelta(hours=1)),  # taken after it: holds over the table
    )  # fmt: skip
    catalog = _catalog(tables, tmp_path, TABLE)
    in_table = {p: _stock(catalog, p) for p in products}
    StockLevels(catalog, directory, "me")
    assert not two_days_ago.exists()  # its day ended before the table was written
    assert yesterday.exists()  # the table's own day: it holds a later level
    assert _stock(catalog, a) == in_table[a] and _stock(catalog, b) == in_table[b]
    assert _stock(catalog, c) == 0
    # A worker started later on the same table: the deleted level does not come back, the later one holds.
    again = _catalog(tables, tmp_path, TABLE)
    StockLevels(again, directory, "me-again")
    assert [_stock(again, p) for p in products] == [in_table[a], in_table[b], 0]


def test_a_level_set_before_midnight_is_filed_under_its_day_and_kept_with_it(
    tables: dict[str, pa.Table], tmp_path: Path, products: list[int]
) -> None:
    """A level is filed under the day it was taken, not the day it was written: one taken a
    microsecond before the table was written goes with its day; one taken after stays."""
    directory = tmp_path / "shared_events"
    catalog = _catalog(tables, tmp_path, TODAY)  # the table written at midnight
    levels = StockLevels(catalog, directory, "me")
    levels.set([(products[0], 0)], 1, _us(TODAY) - 1)
    levels.set([(products[1], 0)], 2, _us(TODAY))
    yesterday = directory / STOCK_TYPE / f"{TODAY - timedelta(days=1):%Y%m%d}.jsonl"
    assert [json.loads(x)["product_id"] for x in yesterday.read_text().splitlines()] == [products[0]]
    restarted = _catalog(tables, tmp_path, TODAY)
    StockLevels(restarted, directory, "me-again")
    assert not yesterday.exists()
    assert _stock(restarted, products[0]) > 0 and _stock(restarted, products[1]) == 0


def test_todays_file_is_kept_even_under_a_table_written_ahead_of_the_clock(
    tables: dict[str, pa.Table], tmp_path: Path, products: list[int]
) -> None:
    directory = tmp_path / "shared_events"
    today = _write_levels(directory, TODAY, (products[0], 0, TODAY))
    catalog = _catalog(tables, tmp_path, TODAY + timedelta(days=2))  # another host's clock, ahead
    StockLevels(catalog, directory, "me")
    assert today.exists()  # workers may still append to it


def test_a_worker_reading_while_another_deletes_goes_on(
    tables: dict[str, pa.Table], tmp_path: Path, products: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker still on an older products table has read a day's levels; a worker starting on a
    newer table deletes that day's file. The first keeps its levels, and both go on sharing new ones."""
    import serving.shared_events as shared_events

    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)
    a, b, _ = products
    directory = tmp_path / "shared_events"
    two_days_ago = _write_levels(directory, TODAY - timedelta(days=2), (a, 0, TODAY - timedelta(hours=40)))
    old = _catalog(tables, tmp_path, TODAY - timedelta(days=3))
    old_levels = StockLevels(old, directory, "old")
    assert _stock(old, a) == 0
    new = _catalog(tables, tmp_path, TABLE)
    new_levels = StockLevels(new, directory, "new")
    assert not two_days_ago.exists() and _stock(new, a) > 0
    old_levels.sync()  # its file gone: nothing raised, nothing changed
    assert _stock(old, a) == 0
    new_levels.set([(b, 0)], _us(datetime.now(UTC)) << 10, _us(datetime.now(UTC)))
    old_levels.sync()
    assert _stock(old, b) == 0


def test_the_table_time_is_that_of_the_table_read_when_a_writer_replaces_it_meanwhile(
    tables: dict[str, pa.Table], tmp_path: Path, products: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The features build rewrites the products table (stock 0 for product a) while a worker reads
    the older one (stock > 0). Before, the worker kept the older table's stock with the newer
    table's time: levels sent between the two writes (b set to 0) were set aside as superseded, and
    a kept the older table's stock. Now the worker reads the table again: the newer one, its time."""
    import features.data_model as data_model

    a, b, _ = products
    data = tmp_path / "data"
    _catalog(tables, tmp_path, TABLE)  # the older table, written at TABLE
    directory = tmp_path / "shared_events"
    _write_levels(directory, TODAY, (b, 0, TODAY + timedelta(seconds=1)))
    newer_written = TODAY + timedelta(seconds=2)
    p = tables["products"].to_pandas()
    p.loc[p["product_id"] == a, "stock"] = 0
    newer = pa.Table.from_pandas(p, preserve_index=False)
    real_read, replaced = data_model.read_table, []

    def read_while_a_writer_replaces(data_dir: Path, table: str, *args: object) -> pa.Table:
        out = real_read(data_dir, table, *args)  # type: ignore[arg-type]
        if table == "products" and not replaced:  # the writer finishes just after this read
            path = data_model.write_table(data, "products", newer)
            os.utime(path, (newer_written.timestamp(), newer_written.timestamp()))
            replaced.append(path)
        return out

    monkeypatch.setattr(data_model, "read_table", read_while_a_writer_replaces)
    catalog = Catalog.from_data_dir(data)
    assert replaced
    assert catalog.products_written_us == _us(newer_written)
    StockLevels(catalog, directory, "me")
    assert _stock(catalog, a) == 0  # the newer table's stock
    assert _stock(catalog, b) > 0  # the newer table holds over the level taken before it
