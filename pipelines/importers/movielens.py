"""MovieLens ratings: ``u.data`` (tab), ``ratings.dat`` (``::``), ``ratings.csv`` (comma, header
``userId,movieId,rating,timestamp``: MovieLens 20M, 25M, 32M and ml-latest; read by name, so in
any column order, case or spacing) or RecBole's ``.inter`` (typed header).

Every rating is a product_click (the user chose to watch the film); a rating of 4 or more is also
a purchase, the strongest implicit signal, so that a conversion ranker has positives to learn
from. The variant is sniffed from the first line, not from the file name. Timestamps are epoch
seconds (RecBole writes them as floats); MovieLens 100k dates from 1997, hence the earlier bound.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from features.validation_rules import parse_column
from pipelines.importers.mapping import (
    FileSpec,
    LogFormat,
    Mapped,
    epoch_to_ts,
    find_in_dir,
    first_reason,
    reason_where,
)
from pipelines.importers.reading import InputFormatError, first_line

PURCHASE_RATING = 4.0
MAX_RATING = 5.0
_PLAIN_FIELDS = ["user_id", "item_id", "rating", "timestamp"]
# ratings.csv's header names (compared trimmed and lower-cased, in any order) -> field names.
_CSV_NAMES = {"userid": "user_id", "movieid": "item_id", "rating": "rating", "timestamp": "timestamp"}


def _to_events(f: pa.Table) -> Mapped:
    ts, ts_reason = epoch_to_ts(f.column("timestamp"), "s", "timestamp", allow_fraction=True)
    n = f.num_rows
    if "rating" in f.column_names:
        rating, bad = parse_column(f.column("rating"), pa.float64())
        out = pc.or_(pc.less(rating, 0.0), pc.greater(rating, MAX_RATING))
        rating_reason = first_reason(
            reason_where(bad, "unparseable rating"), reason_where(out, "rating outside 0-5")
        )
        also = pc.fill_null(pc.greater_equal(rating, PURCHASE_RATING), False)
    else:  # a RecBole file without ratings: every row is just a click
        rating_reason, also = None, pa.array([False] * n)
    return Mapped(
        events={
            "ts": ts,
            "user_id": f.column("user_id"),
            "type": pa.array(["product_click"] * n, pa.string()),
            "product_id": f.column("item_id"),
        },
        reason=first_reason(rating_reason, ts_reason),
        also_purchase=also,
    )


def _spec_for(path: Path) -> FileSpec:
    line = first_line(path)
    if "::" in line:
        return FileSpec("ratings.dat", "::", _PLAIN_FIELDS, 0, _to_events)
    header = [c.strip().lower() for c in line.split(",")]
    if "userid" in header and "movieid" in header:
        return _csv_spec(path, header)
    cells = line.split("\t")
    if any(":" in c for c in cells):  # RecBole: name:type per column, e.g. user_id:token
        names = [c.split(":", 1)[0].strip().lower() for c in cells]
        missing = [c for c in ("user_id", "item_id", "timestamp") if c not in names]
        if missing:
            raise InputFormatError(
                path,
                1,
                f"a RecBole .inter header must name user_id, item_id and timestamp; missing {', '.join(missing)}",
            )
        return FileSpec(".inter", "\t", names, 1, _to_events)
    if len(cells) == 4:
        return FileSpec("u.data", "\t", _PLAIN_FIELDS, 0, _to_events)
    raise InputFormatError(
        path,
        1,
        f"not a MovieLens ratings file: expected user, item, rating, timestamp separated by a tab or '::' "
        f"(or ratings.csv's header userId,movieId,rating,timestamp), found {line[:120]!r}",
    )


def _csv_spec(path: Path, header: list[str]) -> FileSpec:
    """ratings.csv read by its header's names, like RetailRocket's events.csv: a file re-saved by
    pandas or a spreadsheet may order the columns differently or add one."""
    missing = [name for name in _CSV_NAMES if name not in header]
    if missing or len(set(header)) != len(header):
        raise InputFormatError(
            path,
            1,
            "a ratings.csv header must name userId, movieId, rating and timestamp once each (any order); "
            f"missing {', '.join(missing) or 'none'}, found {','.join(header)[:200]!r}",
        )
    return FileSpec("ratings.csv", ",", [_CSV_NAMES.get(c, c) for c in header], 1, _to_events)


def _find(path: Path) -> list[Path]:
    if path.is_dir():
        inter = sorted(path.glob("*.inter"))
        if inter and not (path / "u.data").exists() and not (path / "ratings.dat").exists():
            return inter[:1]
    return find_in_dir(path, ["u.data", "ratings.dat", "ratings.csv"], "movielens")


FORMAT = LogFormat(
    name="movielens",
    find_files=_find,
    spec_for=_spec_for,
    min_ts=dt.datetime(1995, 1, 1, tzinfo=dt.UTC),
    description="MovieLens u.data (tab), ratings.dat ('::'), ratings.csv (header) or RecBole .inter",
)
