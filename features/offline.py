"""Compute the offline feature tables from the canonical tables with DuckDB.

``compute_offline_features(data_dir, settings, as_of=None)`` reads the canonical tables through
``features.data_model.read_table``, runs the SQL of ``features.offline_sql`` and writes one parquet
file per table under ``$STATE/features/offline/`` (the Feast file sources), then ``inputs.json``,
what they were computed from (features.offline_inputs). Everything is set-based SQL: no per-user
or per-event Python.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from features import offline_sql as q
from features.data_model import read_table
from features.offline_inputs import forget_inputs, write_inputs
from features.segments import SegmentRules, load_segment_rules
from features.settings import FeatureSettings

log = logging.getLogger(__name__)

# table name -> file name under the offline dir; the Feast sources point at these files.
# table -> its entity key columns (each key also gets a null sentinel row, see offline_sql).
KEYS: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "product": ("product_id",),
    "stream": ("stream_id",),
    "user_category": ("user_id", "category"),
    "user_product": ("user_id", "product_id"),
    "live_session": ("user_id", "stream_id"),
}
SENTINEL_TS = "TIMESTAMPTZ '1970-01-02 00:00:00+00'"
OFFLINE_TABLES: dict[str, str] = {
    "user": "user_features.parquet",
    "product": "product_features.parquet",
    "stream": "stream_features.parquet",
    "user_category": "user_category_features.parquet",
    "user_product": "user_product_features.parquet",
    "live_session": "live_session_features.parquet",
}


@dataclass
class OfflineResult:
    as_of: datetime
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    events_used: int = 0


def _ts_literal(ts: datetime) -> str:
    return f"TIMESTAMPTZ '{ts.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def compute_offline_features(
    data_dir: str | Path,
    settings: FeatureSettings,
    as_of: datetime | None = None,
    rules: SegmentRules | None = None,
    excluded_users: set[int] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> OfflineResult:
    """Write all offline feature tables as of ``as_of`` (default: the last event); return row counts.

    The last daily snapshot is the day containing ``as_of``, built from events strictly before
    ``as_of``. Users in ``excluded_users`` (the deletion ledger) are left out of every table.
    """
    import duckdb
    import pyarrow as pa

    rules = rules or load_segment_rules()
    out_dir = settings.offline_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    forget_inputs(settings)  # written again once every table is
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # the CLI draws its own
    try:
        events = read_table(
            data_dir,
            "events",
            ["user_id", "ts", "type", "product_id", "stream_id", "watch_seconds", "amount"],
        )
        users = read_table(data_dir, "users", ["user_id", "signup_ts"])
        if excluded_users:
            import pyarrow.compute as pc

            gone = pa.array(sorted(excluded_users), pa.int64())
            events = events.filter(pc.invert(pc.is_in(events["user_id"], gone)))
            users = users.filter(pc.invert(pc.is_in(users["user_id"], gone)))
        con.register("events_t", events)
        con.register("users_t", users)
        con.register("products_t", read_table(data_dir, "products"))
        con.register("streams_t", read_table(data_dir, "streams"))
        first, last = con.execute("SELECT min(ts), max(ts) FROM events_t").fetchone() or (None, None)
        if last is None:
            raise ValueError(f"{data_dir}: events table is empty; nothing to compute features from")
        if as_of is None:
            # Just after the last event, so the last event is inside the final snapshot.
            as_of = last.astimezone(UTC) + _one_us()
        as_of = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        if as_of <= first:  # features from no event at all: was an empty store and exit 0
            raise ValueError(
                f"as of {as_of.isoformat()} is not after the first event in {data_dir} "
                f"({first.astimezone(UTC).isoformat()}); nothing to compute features from"
            )
        # The last snapshot is the day holding the instant just before as_of (a midnight as_of
        # closes the previous day).
        asof_dn = int((as_of - _one_us()).timestamp() // 86400)
        # The final daily snapshot of day asof_dn is stamped at the following midnight, so it may
        # only hold events up to then; events after as_of are excluded as well.
        cutoff = _ts_literal(as_of)
        params = {
            "cutoff": cutoff,
            "asof_dn": asof_dn,
            "horizon": settings.user_horizon_days,
            "snap": q.SNAP,
            "days": q.DAYS,
            "k": float(settings.prior_strength),
            "segment_case": rules.case_sql(),
        }
        result = OfflineResult(as_of=as_of)
        steps: list[tuple[str, str]] = [
            ("events", q.EVENTS),
            ("user_daily", q.USER_DAILY),
            ("user_grid", q.USER_GRID),
            ("user_streams", q.USER_STREAMS_7D),
            ("user", q.USER_FEATURES),
            ("product", q.PRODUCT_FEATURES),
            ("stream", q.STREAM_FEATURES),
            ("user_category", q.USER_CATEGORY_FEATURES),
            ("user_product", q.USER_PRODUCT_FEATURES),
            ("live_session", q.LIVE_SESSION_FEATURES),
        ]
        for name, sql in steps:
            t0 = time.perf_counter()
            out = out_dir / OFFLINE_TABLES[name] if name in OFFLINE_TABLES else None
            tmp = out.with_suffix(".parquet.tmp") if out else None
            if out is None or tmp is None:
                con.execute(sql.format(**params))
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE out_t AS {sql.format(**params)}")
                keys = ", ".join(KEYS[name])
                con.execute(
                    f"COPY (SELECT * FROM out_t UNION ALL BY NAME "
                    f"SELECT DISTINCT {keys}, {SENTINEL_TS} AS event_timestamp FROM out_t) "
                    f"TO {q.sql_path(tmp)} (FORMAT parquet, COMPRESSION zstd)"
                )
                tmp.replace(out)  # readers never see a half-written file
                result.rows[name] = int(_scalar(con, f"SELECT count(*) FROM read_parquet({q.sql_path(out)})"))
            result.seconds[name] = time.perf_counter() - t0
            if on_step:
                on_step(name)
        result.events_used = int(_scalar(con, "SELECT count(*) FROM ev"))
        write_inputs(settings, data_dir, as_of, rules, excluded_users or ())  # for training.rerun
        log.info(
            "offline features as of %s: %s rows in %.1f s",
            as_of.isoformat(),
            result.rows,
            sum(result.seconds.values()),
        )
        return result
    finally:
        con.close()


def _scalar(con: Any, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def _one_us() -> timedelta:
    return timedelta(microseconds=1)


STEP_NAMES = (
    "events",
    "user_daily",
    "user_grid",
    "user_streams",
    "user",
    "product",
    "stream",
    "user_category",
    "user_product",
    "live_session",
)
