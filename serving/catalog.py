"""What serving knows about the world besides the models: products, streams on air, users' consent,
communities, segments, recent purchases and push history. Loaded once from the canonical tables
(``$STATE/data``) and kept current by ``POST /events``; plain numpy/pandas so that audience
ranking over a million users stays vectorised. Segments' rules and sizes: serving/segments.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving.memberships import Memberships
from serving.purchases import US as US
from serving.purchases import index_purchases, latest_before, purchase_flags, record
from serving.push_history import PushHistory
from serving.segments import (
    NO_HISTORY_SEGMENT,
    SEGMENT_RULES,
    activity_segments,
    segment_members,
    segment_sizes,
)
from serving.shared_events import COUNTED_TYPES, MEMBERSHIP_TYPES, SHARED_TYPES

log = logging.getLogger(__name__)
# The data directory's tables the catalogue is built from (``Catalog.from_data_dir``).
CATALOG_TABLES = ("users", "products", "events", "streams", "stream_products", "communities", "memberships")
_PRODUCTS_READS = 3  # reads of the products table before giving up on a writer replacing it meanwhile


@dataclass
class StreamProducts:
    product_ids: np.ndarray
    pinned_slot: np.ndarray  # float, NaN when not pinned
    on_air_from: np.ndarray  # int64 us
    on_air_to: np.ndarray  # int64 us, max int when open
    # ``Catalog.product_frame(product_ids)``, taken at load: a carousel reads its stream's prices,
    # stock and categories without a lookup. Only stock changes while serving (POST
    # /products/stock): ``Catalog.replace_stock`` then puts in a new dict. None: ask product_frame.
    attributes: dict[str, np.ndarray] | None = None


def _ts_us(col: pa.ChunkedArray | pa.Array, fill: int) -> np.ndarray:
    arr = pa.compute.cast(col, pa.int64()) if len(col) else pa.array([], pa.int64())
    return np.asarray(pa.compute.fill_null(arr, fill).to_numpy(zero_copy_only=False), dtype=np.int64)


def _sorted_lookup(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    return ids[order], order


def _rows(sorted_ids: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    if not len(sorted_ids):
        return np.full(len(query), -1, np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, query), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == query, rows[pos], -1)


class Catalog:
    def __init__(self, tables: dict[str, pa.Table], segments: dict[int, str] | None = None) -> None:
        import pyarrow.compute  # noqa: F401 - registers pa.compute

        self._lock = threading.Lock()
        # serving.consents.ConsentChanges (set by the app): consent changed after the users table.
        self.consent_changes: Any = None
        # serving.stock.StockLevels (set by the app): stock set since the products table, and when
        # that table was written (epoch us; None: unknown): a level taken before it is superseded.
        self.stock_levels: Any = None
        self.products_written_us: int | None = None
        p = tables["products"].to_pandas()
        self.products = p.set_index("product_id")[
            ["category", "price", "margin", "stock", "repurchase_cycle_days"]
        ]
        u = tables["users"].to_pandas()
        self.users = u.set_index("user_id")[["region", "consent_personalization", "consent_marketing"]]
        self.user_ids = self.users.index.to_numpy(np.int64)
        # Hot-path lookups are sorted numpy arrays + searchsorted: faster than pandas indexing and
        # safe under concurrent requests (pandas builds its index engine lazily, not thread-safely).
        self._pid_sorted, self._pid_rows = _sorted_lookup(self.products.index.to_numpy(np.int64))
        self._p_price = self.products["price"].to_numpy(float)
        self._p_margin = self.products["margin"].to_numpy(float)
        self._p_stock = self.products["stock"].to_numpy(float)
        self._p_cycle = self.products["repurchase_cycle_days"].to_numpy(float)
        self._p_category = self.products["category"].fillna("unknown").to_numpy(object)
        self._p_num = np.column_stack([self._p_price, self._p_margin, self._p_stock, self._p_cycle])
        # Launch time (us; none given: launched), in the products' row order: not offered before it.
        names = tables["products"].column_names
        self._p_launch = _ts_us(
            tables["products"].column("launch_ts") if "launch_ts" in names else pa.nulls(len(p), pa.int64()),
            np.iinfo(np.int64).min,
        )
        self._uid_sorted, self._uid_rows = _sorted_lookup(self.user_ids)
        self._u_pers = self.users["consent_personalization"].fillna(False).to_numpy(bool)
        self._u_mark = self.users["consent_marketing"].fillna(False).to_numpy(bool)
        self.streams: set[int] = (
            set(tables["streams"].column("stream_id").to_pylist()) if "streams" in tables else set()
        )
        self.on_air: dict[int, StreamProducts] = {}
        # Every stream's products, (product ids, stream ids): which streams a stock change touches.
        self._shown_in: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int64), np.empty(0, np.int64))
        sp = tables.get("stream_products")
        if sp is not None and sp.num_rows:
            # Each stream's rows in table order, by one stable sort (a pandas group per stream cost
            # 3.6 s for 25,200 streams).
            sids = sp.column("stream_id").to_numpy()
            order = np.argsort(sids, kind="stable")
            sids = sids[order]
            by_stream = (
                sp.column("product_id").to_numpy().astype(np.int64)[order],
                sp.column("pinned_slot").to_pandas().astype("float64").to_numpy()[order],
                _ts_us(sp.column("on_air_from"), 0)[order],
                _ts_us(sp.column("on_air_to"), np.iinfo(np.int64).max)[order],
            )
            starts = np.flatnonzero(np.r_[True, sids[1:] != sids[:-1]])
            for a, b in zip(starts.tolist(), [*starts[1:].tolist(), len(sids)], strict=True):
                pids, pinned, on_from, on_to = (c[a:b].copy() for c in by_stream)
                attributes = {k: np.ascontiguousarray(v) for k, v in self.product_frame(pids).items()}
                for arr in attributes.values():
                    arr.flags.writeable = False  # shared by every request for this stream
                self.on_air[int(sids[a])] = StreamProducts(pids, pinned, on_from, on_to, attributes)
            self.streams.update(self.on_air)
            self._shown_in = (by_stream[0], sids.astype(np.int64))
        m = tables.get("memberships")
        if m is None:
            m = pa.table({"community_id": pa.array([], pa.int64()), "user_id": pa.array([], pa.int64())})
        listed = tables["communities"].column("community_id").to_pylist() if "communities" in tables else []
        # Community members now and as of a past moment (serving/memberships.py).
        self.memberships = Memberships(
            m.column("community_id").to_numpy().astype(np.int64),
            m.column("user_id").to_numpy().astype(np.int64),
            _ts_us(m.column("joined_ts") if "joined_ts" in m.column_names else pa.nulls(m.num_rows, pa.int64()),
                   np.iinfo(np.int64).min),
            listed,
        )  # fmt: skip
        self.communities = self.memberships.current  # the members now, per community

        events = tables["events"]
        with_ids = "event_id" in events.column_names
        cols = ["ts", "user_id", "type", "product_id"] + (["event_id"] if with_ids else [])
        # Only the purchases and pushes come into pandas, picked by arrow (which lets go of the
        # GIL): the whole history as Python strings held it for seconds, and every request waited
        # meanwhile on a catalogue reload (benchmarks/results/serving.md).
        counted = pc.is_in(events.column("type"), value_set=pa.array(COUNTED_TYPES))
        picked = events.filter(counted).select(cols)
        kinds = picked.column_names.index("type")  # as categories: a comparison per code, not per string
        ev = picked.set_column(kinds, "type", pc.dictionary_encode(picked.column("type"))).to_pandas()
        # The purchases' and pushes' ids, so those shared by the workers since are not counted twice.
        self.history_event_ids = (
            np.sort(ev["event_id"].to_numpy(np.int64)) if with_ids else np.empty(0, np.int64)
        )
        # serving.shared_events.SharedEvents (set by the app): purchases and pushes of other workers.
        self.shared_events: Any = None
        # Microseconds whatever the column's unit: pandas 2 keeps arrow's timestamp[us] as
        # datetime64[us] (an int64 view is already microseconds; dividing by 1000 gave ms).
        ev["ts_us"] = ev["ts"].dt.as_unit("us").astype("int64") if ev["ts"].dtype.kind == "M" else ev["ts"]
        buys = ev[ev["type"] == "purchase"]
        # Per (user, product) the last purchase, and every one of those bought more than once
        # (serving/purchases.py), for the bought-recently / repurchase-due rules.
        self.last_purchase, self.repeat_purchases = index_purchases(buys)
        # Pushes sent, for the frequency cap (serving/push_history.py).
        self.pushes = PushHistory(ev[ev["type"] == "push_sent"], with_ids)
        # The built-in activity rule's descriptions; segments given by the feature store carry their own names.
        self.segment_descriptions: dict[str, str] = dict(SEGMENT_RULES) if segments is None else {}
        if segments is None:
            active = pc.unique(events.column("user_id").drop_null()).to_numpy()
            segments = activity_segments(self.user_ids, active, buys)
        self.segment_of_user = segments
        self.segment_members: dict[str, np.ndarray] = segment_members(segments)

    @classmethod
    def from_data_dir(cls, data_dir: Path, segments: dict[int, str] | None = None) -> Catalog:
        from features.data_model import read_table, table_path

        tables = {n: read_table(data_dir, n) for n in CATALOG_TABLES if n != "products"}
        # The products table's write time decides which stock levels it supersedes (serving/stock.py),
        # so it must be the time of the table read: taken before and after the read, read again if
        # a writer replaced the table in between (a time taken after a read of the older table would
        # set aside the levels sent between the two writes).
        path = table_path(data_dir, "products")
        for _ in range(_PRODUCTS_READS):
            written_ns = path.stat().st_mtime_ns
            tables["products"] = read_table(data_dir, "products")
            if path.stat().st_mtime_ns == written_ns:
                break
        else:
            raise OSError(f"{path}: replaced during each of {_PRODUCTS_READS} reads; try again")
        catalog = cls(tables, segments)
        catalog.products_written_us = written_ns // 1000
        return catalog

    # --- lookups -----------------------------------------------------------------------------
    def _user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        return _rows(self._uid_sorted, self._uid_rows, user_ids)

    def product_rows(self, product_ids: np.ndarray) -> np.ndarray:
        """Row of each product in the catalogue arrays, -1 when unknown."""
        return _rows(self._pid_sorted, self._pid_rows, product_ids)

    def user_row(self, user_id: int) -> int:
        """One user's row, -1 when unknown: a scalar search (the array path costs ~15 us a call)."""
        i = int(np.searchsorted(self._uid_sorted, user_id))
        if i < len(self._uid_sorted) and self._uid_sorted[i] == user_id:
            return int(self._uid_rows[i])
        return -1

    def knows_user(self, user_id: int) -> bool:
        return self.user_row(user_id) >= 0

    def holds_user(self, user_id: int) -> bool:
        """Whether anything about the user is held here (what GET /users/{id}/data shows): a user
        row, a community membership, a consent change, or purchases or pushes from the history or
        from live events, which may name users the catalogue has no row for."""
        self.sync_shared()
        if self.knows_user(user_id) or user_id in self.last_purchase:
            return True
        if self.consent_changes is not None and self.consent_changes.of(user_id) != (None, None):
            return True  # a consent change recorded for them (PUT /users/{id}/consent)
        return bool(np.any(self.pushes.users == user_id)) or bool(self.user_communities(user_id))

    def consent(self, user_id: int) -> tuple[bool, bool]:
        """(personalization, marketing): the users table's, changed by ``consent_changes``."""
        r = self.user_row(user_id)
        pers, mark = (True, False) if r < 0 else (bool(self._u_pers[r]), bool(self._u_mark[r]))
        if self.consent_changes is not None:
            p, m = self.consent_changes.of(user_id)
            pers, mark = pers if p is None else p, mark if m is None else m
        return pers, mark

    def stream_products(self, stream_id: int) -> StreamProducts | None:
        self.sync_stock()
        if stream_id not in self.streams:
            return None
        sp = self.on_air.get(stream_id)
        if sp is None:  # a stream with nothing on it
            empty = np.empty(0, np.int64)
            sp = StreamProducts(empty, np.empty(0, float), empty, empty)
        return sp

    def product_frame(self, product_ids: np.ndarray) -> dict[str, np.ndarray]:
        """price, margin, stock, category, repurchase_cycle_days, launch_us per product (NaN/"unknown"
        when unknown; launch_us: the minimum int64, launched, when unknown or not given)."""
        self.sync_stock()
        r = self.product_rows(np.asarray(product_ids, np.int64))
        ok = r >= 0
        every = bool(ok.all())
        # One fancy-index take of the four numeric columns (a row each) instead of one per column.
        if len(self._p_num):
            num = self._p_num[r if every else np.where(ok, r, 0)]
            cat = self._p_category[r if every else np.where(ok, r, 0)]
            if not every:
                num[~ok] = np.nan
                cat[~ok] = "unknown"
        else:
            num = np.full((len(r), 4), np.nan)
            cat = np.full(len(r), "unknown", dtype=object)
        launch = self._p_launch[np.where(ok, r, 0)] if len(self._p_launch) else np.zeros(len(r), np.int64)
        return {
            "price": num[:, 0], "margin": num[:, 1], "stock": num[:, 2], "category": cat,
            "repurchase_cycle_days": num[:, 3], "launch_us": np.where(ok, launch, np.iinfo(np.int64).min),
        }  # fmt: skip

    def offered(self, now_us: int) -> np.ndarray:
        """Ids of the products in stock (or of unknown stock) and launched by ``now_us``."""
        self.sync_stock()
        ok = (np.isnan(self._p_stock) | (self._p_stock > 0)) & (self._p_launch <= now_us)
        return self.products.index.to_numpy(np.int64)[ok]

    def sync_stock(self) -> None:
        """Take in the stock levels other workers were given (serving/stock.py)."""
        if self.stock_levels is not None:
            self.stock_levels.sync()

    def replace_stock(self, rows: np.ndarray, levels: np.ndarray) -> None:
        """New stock of the products at ``rows``, copy-on-write: a request holding the old arrays
        reads them whole; the streams showing them get new ``attributes``."""
        with self._lock:
            stock, num = self._p_stock.copy(), self._p_num.copy()
            stock[rows] = num[rows, 2] = levels
            self._p_stock, self._p_num = stock, num
            changed = self.products.index.to_numpy(np.int64)[rows]
            shown, streams = self._shown_in
            for sid in np.unique(streams[np.isin(shown, changed)]).tolist():  # only those showing them
                sp = self.on_air[sid]
                if sp.attributes is not None:
                    r = self.product_rows(sp.product_ids)
                    new = np.where(r >= 0, stock[np.where(r >= 0, r, 0)], np.nan)
                    new.flags.writeable = False
                    sp.attributes = {**sp.attributes, "stock": new}

    def purchase_flags(
        self,
        user_id: int,
        product_ids: np.ndarray,
        now_us: int,
        recent_days: float,
        cycle: np.ndarray | None = None,
        before_us: int | None = None,
    ) -> tuple[np.ndarray, ...]:
        """(bought_recently, consumable_due, is_consumable) per product for one user. ``cycle``:
        the products' repurchase_cycle_days when the caller has them (``product_frame``).
        ``before_us``: only purchases strictly before it count (an answer ``at`` a past moment)."""
        if cycle is None:
            cycle = self.product_frame(product_ids)["repurchase_cycle_days"]
        self.sync_shared()
        last = self.last_purchase.get(user_id)
        if last and before_us is not None:
            last = latest_before(last, self.repeat_purchases.get(user_id, {}), before_us)
        return purchase_flags(last, product_ids, now_us, recent_days, cycle)

    def forget_purchases(self, user_id: int) -> None:
        """A deleted user's purchases, gone from the rules and from what the service shows."""
        with self._lock:
            self.last_purchase.pop(user_id, None)
            self.repeat_purchases.pop(user_id, None)

    def push_counts(self, user_ids: np.ndarray, since_us: int, before_us: int | None = None) -> np.ndarray:
        """push_sent events per user since ``since_us`` (before ``before_us``, when given: a
        replay), every worker's, each event id once (serving/push_history.py)."""
        self.sync_shared()
        return self.pushes.counts(user_ids, since_us, before_us)

    def recent_pushes(self, user_id: int, since_us: int) -> int:
        return int(self.push_counts(np.array([user_id], np.int64), since_us)[0])

    def user_communities(self, user_id: int) -> list[int]:
        self.sync_shared()
        return sorted(c for c, members in self.communities.items() if np.any(members == user_id))

    def segment(self, user_id: int) -> str:
        return self.segment_of_user.get(user_id, NO_HISTORY_SEGMENT)

    def segments(self, deleted: Callable[[np.ndarray], np.ndarray] | None = None) -> list[dict[str, Any]]:
        """Each segment's size, less its users ``deleted`` (which of many) says are (it counted them)."""
        return segment_sizes(self.segment_members, self.segment_descriptions, deleted)

    def audience(
        self, segment: str | None, community_id: int | None, before_us: int | None = None
    ) -> np.ndarray | None:
        """The segment's users, or the community's members (as of ``before_us``, when given);
        None: unknown. Segments are the latest snapshot's, whatever ``before_us``."""
        if community_id is not None:
            self.sync_shared()
            return self.memberships.members(community_id, before_us)
        known = segment in self.segment_members or segment in self.segment_descriptions
        return self.segment_members.get(str(segment), np.empty(0, np.int64)) if known else None

    def marketing_consent(self, user_ids: np.ndarray) -> np.ndarray:
        """Per user, as ``consent`` says one at a time (a user the table does not list: no)."""
        return self._consents(user_ids, self._u_mark, False, "marketing")

    def personalization_consent(self, user_ids: np.ndarray) -> np.ndarray:
        """Per user, as ``consent`` says one at a time (a user the table does not list: yes)."""
        return self._consents(user_ids, self._u_pers, True, "personalization")

    def _consents(self, user_ids: np.ndarray, column: np.ndarray, unlisted: bool, kind: str) -> np.ndarray:
        r = self._user_rows(np.asarray(user_ids, np.int64))
        ok = np.where(r >= 0, column[np.where(r >= 0, r, 0)] if len(column) else unlisted, unlisted)
        if self.consent_changes is not None:
            changed, flag = getattr(self.consent_changes, kind)(user_ids)
            ok = np.where(changed, flag, ok)
        return ok

    # --- live updates from POST /events -------------------------------------------------------
    def apply_events(self, events: Iterable[dict[str, Any]]) -> None:
        events = list(events)
        if self.shared_events is not None and any(e["type"] in SHARED_TYPES for e in events):
            try:
                self.shared_events.record(events)  # the other workers read them within a second
            except OSError as exc:  # they are in the event log; this worker counts them at least
                log.warning("purchases, pushes, joins and leaves kept in this worker only: %s", exc)
        self._apply_history(events)

    def sync_shared(self) -> None:
        """Take in the purchases, pushes, joins and leaves other workers took
        (serving/shared_events.py)."""
        if self.shared_events is not None:
            self.shared_events.sync(self._apply_history)

    def _apply_history(self, events: list[dict[str, Any]]) -> None:
        """Purchases (the latest per user and product), pushes sent, joins and leaves, into what
        the rules and audiences read."""
        new_push_u, new_push_t, new_push_i = [], [], []
        with self._lock:
            for e in events:
                if e["type"] in MEMBERSHIP_TYPES:
                    self.memberships.apply(e)
                elif e["type"] == "purchase" and e.get("product_id") is not None:
                    record(self.last_purchase, self.repeat_purchases, int(e["user_id"]),
                           int(e["product_id"]), int(e["ts_us"]))  # fmt: skip
                elif e["type"] == "push_sent":
                    new_push_u.append(int(e["user_id"]))
                    new_push_t.append(int(e["ts_us"]))
                    new_push_i.append(-1 if e.get("event_id") is None else int(e["event_id"]))
            if new_push_u:
                self.pushes.add(new_push_u, new_push_t, new_push_i)


# Per catalogue table (name, modification time ns, size, inode), None when missing (``data_stamp``).
Stamp = tuple[tuple[str, int, int, int] | None, ...]


def data_stamp(data_dir: Path) -> Stamp:
    """What tells one state of the catalogue's tables from another (each file's modification time,
    size and inode; None for a missing one): a catalogue is read again when it changes. The tables
    are written by replacing them (``features.data_model.write_table``), so a rewrite changes it."""
    from features.data_model import table_path

    out: list[tuple[str, int, int, int] | None] = []
    for name in CATALOG_TABLES:
        try:
            st = table_path(data_dir, name).stat()
        except OSError:
            out.append(None)
            continue
        out.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)
