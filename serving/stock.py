"""Stock levels from the brand's inventory system (``POST /products/stock``), in force in every
worker and replica within a second.

The catalogue's stock came from the products table, read once at the start: in a live stream a
product sold out within minutes, and the carousel went on offering it and pushes went on targeting
it until a restart. An update is an absolute level per product (sent again, it changes nothing).
The worker that takes it appends it, fsynced before the answer, to
``$STATE/serving/shared_events/stock_level/<YYYYMMDD>.jsonl`` (serving/shared_events.py, in lines of
their own fields; the UTC day it was taken), applies it at once, and every other worker reads it at
most a second later; a worker (re)started later reads the lines before it serves. A level holds
until a newer one for the same product, and wins over the products table's stock unless that table
was written after the service took the level (a restart on a newer table, e.g. restocked products,
serves the table's stock; the file's modification time says when). Newer means taken later by the
service: each update carries the id the worker gave it then (serving/event_ids.py: the microsecond
clock, then the worker's tag), so whichever worker reads the lines, in whatever order and however
often, the same level wins.

The lines are kept until the products table supersedes them: a worker starting deletes the files of
the days that ended before the table was written, but never today's, which workers may still append
to (``drop_superseded``). Every line of such a file was taken that day (the file is named for the day
its levels were taken, not the day they were written), so before the table: no worker on that table
or a newer one would apply it. So a starting worker reads the levels taken since the start of the
table's day, not every level ever set. Another worker reading a file while it goes loses nothing it
needs (serving/shared_events.py). What deleting can take from a worker still running on an older
products table: the lines of a day it has not read yet (it reads at most once a second, but only
when a request looks at stock: an idle worker does not), whose levels it would have applied; it
serves an older table than the new workers' anyway, until it is restarted.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import NotFoundError, ServingError, listed
from serving.shared_events import EPOCH, SharedEvents

log = logging.getLogger(__name__)
STOCK_TYPE = "stock_level"
STOCK_FIELDS = ("event_id", "type", "product_id", "stock", "ts_us")


class StockLogUnavailableError(ServingError):
    """The stock level could not be written for the other workers: refused, nothing applied."""

    http_status = 503


class UnknownProductsError(NotFoundError):
    """Products the catalogue does not know; the body lists every one (``product_ids``)."""

    def __init__(self, message: str, field: str, product_ids: list[int]) -> None:
        super().__init__(message, field=field)
        self.product_ids = product_ids

    def body(self) -> dict[str, object]:
        return {**super().body(), "product_ids": self.product_ids}


class StockLevels:
    """The levels set since the products table was loaded, applied to ``catalog``
    (``Catalog.replace_stock``) in this worker and read from the others."""

    def __init__(self, catalog: Any, directory: Path, writer: str) -> None:
        """``writer``: this process's tag (its own lines are applied when taken, not read back)."""
        self.catalog = catalog
        self.shared = SharedEvents(
            directory, writer, {}, np.empty(0, np.int64), types=(STOCK_TYPE,), fields=STOCK_FIELDS,
            durable=(STOCK_TYPE,),
        )  # fmt: skip
        self._lock = threading.Lock()
        self._order: dict[int, int] = {}  # product -> the id of the level in force
        dropped = drop_superseded(directory / STOCK_TYPE, catalog.products_written_us, datetime.now(UTC))
        if dropped:
            log.info("deleted %d stock level file(s) of days before the products table was written", dropped)
        self.shared.sync(self._apply, force=True)  # a (re)started worker serves them from the start

    def set(self, items: list[tuple[int, int]], order: int, ts_us: int) -> int:
        """Set the levels of (product id, stock) ``items`` (a product twice: its last), taken with
        id ``order``: written for the other workers, then applied here. Returns how many products.
        Unknown products refuse them all (404 listing them); a failed write refuses them (503)."""
        levels = dict(items)
        pids = np.fromiter(levels, np.int64, len(levels))
        unknown = pids[self.catalog.product_rows(pids) < 0].tolist()
        if unknown:
            first = next(i for i, (pid, _) in enumerate(items) if pid == unknown[0])
            raise UnknownProductsError(
                f"unknown product{'s' if len(unknown) > 1 else ''} {listed(unknown)}: no level was set",
                f"items.{first}.product_id", unknown,
            )  # fmt: skip
        lines = [
            {"event_id": order, "type": STOCK_TYPE, "product_id": pid, "stock": level, "ts_us": ts_us}
            for pid, level in levels.items()
        ]
        try:
            self.shared.record(lines, taken_us=ts_us)  # in the file of the day it was taken
        except OSError as exc:
            raise StockLogUnavailableError(f"stock levels not recorded, none set: {exc}") from exc
        self._apply(lines)
        return len(lines)

    def sync(self) -> None:
        """Take in the levels other workers set (at most once a second)."""
        self.shared.sync(self._apply)

    def _apply(self, lines: list[dict[str, Any]]) -> None:
        """The newest level per product, where newer than the one in force: applying a line again
        (or an older one read late) changes nothing."""
        newest: dict[int, tuple[int, int]] = {}
        table_us = self.catalog.products_written_us
        for e in lines:
            pid, level, order = e.get("product_id"), e.get("stock"), e.get("event_id")
            if not (isinstance(pid, int) and isinstance(level, int) and isinstance(order, int)):
                log.warning("skipped a stock line without a product, level or id")
                continue
            taken = e.get("ts_us")
            if table_us is not None and isinstance(taken, int) and taken < table_us:
                continue  # the products table was written after it: the table's stock holds
            if order > newest.get(pid, (-1, 0))[0]:
                newest[pid] = (order, level)
        with self._lock:
            fresh = {p: ol for p, ol in newest.items() if ol[0] > self._order.get(p, -1)}
            if not fresh:
                return
            pids = np.fromiter(fresh, np.int64, len(fresh))
            rows = self.catalog.product_rows(pids)
            known = rows >= 0  # another replica's newer products table may list more products
            levels = np.array([fresh[p][1] for p in fresh], float)
            self.catalog.replace_stock(rows[known], levels[known])
            self._order.update((p, o) for p, (o, _) in fresh.items())


def drop_superseded(directory: Path, table_us: int | None, now: datetime) -> int:
    """Delete the day files under ``directory`` whose levels the products table written at
    ``table_us`` supersedes: those of days that ended by then, other than ``now``'s day (a worker
    may still append to it; a table written ahead of this clock would otherwise take it). Every
    line of such a file was taken before the table was written (``StockLevels._apply`` skips it).
    No table time (the demo world): nothing is deleted. Returns how many files were."""
    if table_us is None:
        return 0
    today, dropped = now.strftime("%Y%m%d"), 0
    for path in sorted(directory.glob("*.jsonl")):
        try:
            day = datetime.strptime(path.stem, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            continue  # not a day's file: not ours to delete
        ended_us = (day + timedelta(days=1) - EPOCH) // timedelta(microseconds=1)
        if ended_us <= table_us and path.stem < today:
            with contextlib.suppress(FileNotFoundError):  # another worker starting deleted it first
                path.unlink()
                dropped += 1
    return dropped
