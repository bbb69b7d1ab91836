"""The row rules behind ``features.validation``: parsing raw columns and the per-table checks.

Everything here works on whole pyarrow arrays (no Python loop per row) so that a 10M-row events
table validates in seconds. A rule yields a boolean mask ("this row breaks me") and a reason; the
caller keeps the first reason per row. Reasons name the column so that a person reading
``quarantine.parquet`` knows where to look; the row's original values sit beside the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.data_model import (
    EVENT_TYPES,
    EVENTS_NEEDING_COMMUNITY,
    EVENTS_NEEDING_PRODUCT,
    PRIMARY_KEYS,
    SCHEMAS,
    TS,
    floor_timestamps,
)

# Which id columns of which table must name a row of another table (column -> referenced table).
REFERENCES: dict[str, dict[str, str]] = {
    "events": {
        "user_id": "users",
        "product_id": "products",
        "stream_id": "streams",
        "community_id": "communities",
    },
    "stream_products": {"stream_id": "streams", "product_id": "products"},
    "memberships": {"community_id": "communities", "user_id": "users"},
    "impressions": {"user_id": "users", "product_id": "products", "stream_id": "streams"},
    "pushes": {"user_id": "users", "product_id": "products", "community_id": "communities"},
}

# Columns where a negative number is a data error, not a business fact (a margin may be negative).
# User and stream ids too: the service answers only for ids >= 0 (its API refuses others), and the
# feature store reads -1 as "no user" / "no stream" (features.retrieval.NO_USER, NO_STREAM): a row
# holding it would otherwise be served to every anonymous or stream-less lookup.
NON_NEGATIVE = frozenset(
    {"price", "amount", "watch_seconds", "stock", "slot", "pinned_slot", "user_id", "stream_id"}
)

# Closing time must not come before opening time: (table, start column, end column).
ORDERED_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("streams", "start_ts", "end_ts"),
    ("stream_products", "on_air_from", "on_air_to"),
)

_INT_RE = r"^[+-]?\d{1,19}$"
_FLOAT_RE = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)$"
_ISO_RE = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$"
_ZONE_RE = r"(Z|[+-]\d{2}:?\d{2})$"
_BOOL_WORDS = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "t": True,
    "f": False,
    "yes": True,
    "no": False,
}


@dataclass(frozen=True)
class ValidationRules:
    """The tunable bounds. ``now`` is fixed at construction so one run judges every row alike."""

    min_ts: dt.datetime = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    max_future: dt.timedelta = dt.timedelta(days=1)
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def max_ts(self) -> dt.datetime:
        return self.now + self.max_future

    def describe_ts_range(self) -> str:
        hours = self.max_future.total_seconds() / 3600
        ahead = f"{hours / 24:g} day(s)" if hours % 24 == 0 else f"{hours:g} hour(s)"
        return f"before {self.min_ts:%Y-%m-%d} or more than {ahead} in the future"


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def safe_cast(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """Cast ``arr`` to ``typ``; values that cannot be cast become null.

    Arrow casts a whole array or fails; splitting the failing half until single values remain
    finds the k bad values in O(k log n) casts, so a clean array costs one cast.
    """
    try:
        return pc.cast(arr, typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        if len(arr) <= 1:
            return pa.nulls(len(arr), type=typ)
        mid = len(arr) // 2
        left, right = safe_cast(arr.slice(0, mid), typ), safe_cast(arr.slice(mid), typ)
        return pa.concat_arrays([left, right])


def _keep_where(arr: pa.Array, mask: pa.Array) -> pa.Array:
    return pc.if_else(mask, arr, pa.nulls(len(arr), type=arr.type))


def _parse_strings(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """The slow path for string columns that did not cast in one go: trim, pre-filter, bisect."""
    s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    s = _keep_where(s, pc.not_equal(s, ""))  # an empty field is a missing value, not a garbled one
    if pa.types.is_integer(typ):
        # Arrow's integer cast refuses the '+' its float cast accepts: drop it once the text is
        # known to be one signed integer, so '+5' reads as 5 in every numeric column alike.
        s = _keep_where(s, pc.match_substring_regex(s, _INT_RE))
        return safe_cast(pc.replace_substring_regex(s, r"^\+", ""), typ)
    if pa.types.is_floating(typ):
        return safe_cast(_keep_where(s, pc.match_substring_regex(s, _FLOAT_RE, ignore_case=True)), typ)
    if pa.types.is_boolean(typ):
        low = pc.utf8_lower(s)
        known = pc.is_in(low, value_set=pa.array(list(_BOOL_WORDS)))
        truthy = pc.is_in(low, value_set=pa.array([w for w, v in _BOOL_WORDS.items() if v]))
        return _keep_where(truthy, known)
    if pa.types.is_timestamp(typ):
        s = _keep_where(s, pc.match_substring_regex(s, _ISO_RE))
        if typ.unit == "us":  # nine fractional digits (Java, Go, pandas): keep the microseconds
            s = pc.replace_substring_regex(s, r"(\.\d{6})\d+", r"\1")
        zoned = pc.match_substring_regex(s, _ZONE_RE)
        with_zone = safe_cast(_keep_where(s, zoned), typ)
        # A timestamp without a zone is read as UTC, the house convention for every table.
        naive = safe_cast(_keep_where(s, pc.invert(zoned)), pa.timestamp(typ.unit))
        return pc.coalesce(with_zone, pc.cast(naive, typ))
    return safe_cast(s, typ)


def parse_column(arr: pa.Array | pa.ChunkedArray, typ: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Turn ``arr`` into ``typ``. Returns (values, bad): bad is true where a present value did not parse.

    Strings are parsed (ints, floats, ``true``/``false``/``1``/``0``, ISO-8601 timestamps, a
    missing zone meaning UTC); numbers are cast when the cast is lossless; an empty string is a
    missing value. Integers are never guessed to be epoch timestamps: importers convert those.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    if arr.type == typ:
        return arr, pa.array(np.zeros(len(arr), dtype=bool))
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), type=typ), pc.is_valid(pa.nulls(len(arr)))
    present = pc.is_valid(arr)
    if _is_string(arr.type):
        try:
            values = pc.cast(arr, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = _parse_strings(arr, typ)
            present = pc.and_(present, pc.not_equal(pc.utf8_trim_whitespace(arr.cast(pa.string())), ""))
    elif pa.types.is_timestamp(arr.type) and pa.types.is_timestamp(typ):
        zoned = arr if arr.type.tz else pc.assume_timezone(arr, "UTC")
        # A finer unit (pandas' nanoseconds) is floored to the microsecond, not refused as lossy.
        values = pc.cast(floor_timestamps(zoned, typ.unit), typ)
    else:
        try:
            values = pc.cast(arr, typ)  # safe cast: rejects 1.5 -> int and overflow as a whole
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = safe_cast(arr, typ)
    bad = pc.fill_null(pc.and_(present, pc.is_null(values)), False)
    return values, bad


def _in_range_mask(col: pa.Array, rules: ValidationRules) -> pa.Array:
    lo = pa.scalar(rules.min_ts, type=TS)
    hi = pa.scalar(rules.max_ts, type=TS)
    return pc.or_(pc.less(col, lo), pc.greater(col, hi))


def rule_masks(
    table: str, cols: dict[str, pa.Array], rules: ValidationRules
) -> Iterator[tuple[pa.Array, str]]:
    """Yield (mask, reason) for every content rule of ``table`` over its parsed columns.

    Masks may hold nulls (a null value breaks no rule here; missing required values are caught
    before). Order matters: the first reason that applies to a row is the one recorded.
    """
    schema = SCHEMAS[table]
    for f in schema:
        col = cols[f.name]
        if pa.types.is_floating(f.type):
            yield pc.invert(pc.is_finite(col)), f"{f.name} is not a finite number"
        if f.name in NON_NEGATIVE:
            yield pc.less(col, pa.scalar(0, type=f.type)), f"negative {f.name}"
        if pa.types.is_timestamp(f.type):
            yield _in_range_mask(col, rules), f"{f.name} out of range ({rules.describe_ts_range()})"
    for name, start, end in ORDERED_PAIRS:
        if name == table:
            yield pc.less(cols[end], cols[start]), f"{end} before {start}"
    if table == "events":
        types = cols["type"]
        yield pc.invert(pc.is_in(types, value_set=pa.array(EVENT_TYPES))), "unknown event type"
        needs_product = pc.is_in(types, value_set=pa.array(sorted(EVENTS_NEEDING_PRODUCT)))
        yield pc.and_(needs_product, pc.is_null(cols["product_id"])), "event type requires product_id"
        needs_community = pc.is_in(types, value_set=pa.array(sorted(EVENTS_NEEDING_COMMUNITY)))
        yield pc.and_(needs_community, pc.is_null(cols["community_id"])), "event type requires community_id"
    if table in ("impressions", "pushes"):
        p = cols["propensity"]
        # Off-policy estimators divide by the logged propensity: it must be a probability above 0.
        yield pc.or_(pc.less_equal(p, 0.0), pc.greater(p, 1.0)), "propensity outside (0, 1]"


# Below this many rows, a Python set lookup beats building pyarrow's hash table of the known ids.
_SMALL = 64


def reference_masks(
    table: str, cols: dict[str, pa.Array], refs: Mapping[str, pa.Array | AbstractSet[int] | None]
) -> Iterator[tuple[pa.Array, str]]:
    """Yield (mask, reason) for ids that name no known row; a reference set of None is not checked.

    Known ids may be a pyarrow array (bulk loads) or a Python set (serving's single rows, where
    the set is built once and reused across requests).
    """
    for col, _target in REFERENCES.get(table, {}).items():
        known = refs.get(col)
        if known is None:
            continue
        values = cols[col]
        if isinstance(known, AbstractSet) and len(values) <= _SMALL:
            yield pa.array([v is not None and v not in known for v in values.to_pylist()]), f"unknown {col}"
            continue
        if isinstance(known, AbstractSet):
            known = pa.array(sorted(known), pa.int64())
        elif isinstance(known, pa.ChunkedArray):
            known = known.combine_chunks()
        yield pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=known))), f"unknown {col}"


class Reasons:
    """The first reason per row, kept as small integer codes (numpy) and turned into text only for bad rows.

    Code 0 is "fine so far", -1 "a reason given by the caller" (``_reason``), k > 0 ``texts[k - 1]``.
    """

    def __init__(self, n: int, prior: pa.Array | None) -> None:
        self.codes = np.zeros(n, dtype=np.int32)
        self.texts: list[str] = []
        self.prior = prior
        if prior is not None:
            self.codes[np_mask(pc.is_valid(prior))] = -1

    def add(self, mask: pa.Array | np.ndarray, text: str) -> None:
        m = mask if isinstance(mask, np.ndarray) else np_mask(mask)
        hit = m & (self.codes == 0)
        if hit.any():
            self.texts.append(text)
            self.codes[hit] = len(self.texts)

    @property
    def ok(self) -> np.ndarray:
        return self.codes == 0

    def text_for(self, bad: np.ndarray) -> pa.Array:
        codes = self.codes[bad]
        table = pa.array(["", *self.texts], pa.string())
        from_codes = pc.take(table, pa.array(np.maximum(codes, 0)))
        if self.prior is None:
            return from_codes
        return pc.if_else(pa.array(codes < 0), pc.filter(self.prior, pa.array(bad)), from_codes)


def np_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A pyarrow boolean mask as numpy, null counting as false."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    if mask.null_count:
        mask = pc.fill_null(mask, False)
    return mask.to_numpy(zero_copy_only=False)


def duplicate_mask(name: str, cols: dict[str, pa.Array], ok: np.ndarray) -> np.ndarray:
    """True for a row whose primary key an earlier still-valid row already holds (the first one wins)."""
    keys = PRIMARY_KEYS[name]
    n = len(ok)
    dup = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return dup
    if len(keys) == 1 and pa.types.is_integer(cols[keys[0]].type):
        # One integer key (event_id, user_id ...): sorting beats hashing, and ids usually arrive sorted.
        k = cols[keys[0]].to_numpy(zero_copy_only=False)[idx]
        if np.all(k[1:] > k[:-1]):
            return dup
        order = np.argsort(k, kind="stable")  # stable: equal keys keep row order, so the first stays first
        sk = k[order]
        dup[idx[order[1:][sk[1:] == sk[:-1]]]] = True
        return dup
    sub = pa.table({**{c: cols[c] for c in keys}, "__i": pa.array(np.arange(n, dtype=np.int64))}).filter(
        pa.array(ok)
    )
    first = sub.group_by(list(keys), use_threads=False).aggregate([("__i", "min")]).column("__i_min")
    if len(first) == sub.num_rows:
        return dup
    dup[idx] = True
    dup[first.to_numpy()] = False
    return dup
