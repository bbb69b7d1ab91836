"""validate_dir on a small data directory: cascades, rewrites, quarantine file, threshold, idempotence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.data_model import read_table, write_table
from features.validation import QuarantineThresholdError, ValidationRules, validate_dir

RULES = ValidationRules(now=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def make_dir(d: Path, n_events: int = 40) -> Path:
    write_table(
        d,
        "users",
        pa.table(
            {"user_id": [1, 2, 3], "consent_personalization": [True] * 3, "consent_marketing": [False] * 3}
        ),
    )
    # Product 3 has a negative price: it is quarantined, and so is every event naming it.
    write_table(
        d,
        "products",
        pa.table({"product_id": [1, 2, 3], "price": [1.0, 2.0, -3.0], "category": ["a", "b", "c"]}),
    )
    n = n_events
    write_table(
        d,
        "events",
        pa.table(
            {
                "event_id": list(range(1, n + 1)),
                "ts": [T0 + dt.timedelta(minutes=i) for i in range(n)],
                "user_id": [1 + i % 3 for i in range(n)],
                "type": ["product_click"] * n,
                "product_id": [1 + i % 2 for i in range(n - 2)]
                + [3, 9],  # the last two: a quarantined and an unknown product
            }
        ),
    )
    return d


def test_bad_rows_cascade_and_are_written_to_quarantine(tmp_path: Path) -> None:
    d = make_dir(tmp_path)
    report = validate_dir(d, max_quarantine_share=0.5, rules=RULES)
    assert report.ok and report.written
    assert {t: (c.read, c.accepted, c.quarantined) for t, c in report.tables.items()} == {
        "users": (3, 3, 0),
        "products": (3, 2, 1),
        "events": (40, 38, 2),
    }
    assert read_table(d, "events").num_rows == 38
    assert read_table(d, "products").column("product_id").to_pylist() == [1, 2]
    q = pq.read_table(d / "quarantine.parquet").to_pylist()
    assert {(r["table"], r["row"], r["reason"]) for r in q} == {
        ("products", 3, "negative price"),
        ("events", 39, "unknown product_id"),
        ("events", 40, "unknown product_id"),
    }
    assert all(r["source"].endswith(".parquet") for r in q)
    # Running again finds nothing new and leaves the quarantine as it is.
    again = validate_dir(d, max_quarantine_share=0.5, rules=RULES)
    assert all(c.quarantined == 0 for c in again.tables.values())
    assert pq.read_table(d / "quarantine.parquet").num_rows == 3


def test_over_the_threshold_nothing_is_rewritten(tmp_path: Path) -> None:
    d = make_dir(tmp_path)
    before = (d / "products.parquet").read_bytes()
    report = validate_dir(d, max_quarantine_share=0.05, rules=RULES)
    assert not report.ok and not report.written
    assert report.over_threshold == ["products"]  # 1 of 3; events lost 2 of 40 = 5%, not above
    assert (d / "products.parquet").read_bytes() == before
    assert not (d / "quarantine.parquet").exists()
    assert pq.read_table(d / "quarantine.rejected.parquet").num_rows == 3
    with pytest.raises(QuarantineThresholdError, match="products 33.3%") as err:
        report.raise_for_threshold()
    assert err.value.exit_code == 1


def test_a_missing_required_table_is_named(tmp_path: Path) -> None:
    d = make_dir(tmp_path)
    (d / "events.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="events"):
        validate_dir(d, rules=RULES)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    d = make_dir(tmp_path)
    (d / "users.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="users.parquet") as err:
        validate_dir(d, rules=RULES)
    assert getattr(err.value, "exit_code", None) == 2


def test_a_table_pandas_wrote_in_nanoseconds_validates_and_then_reads(tmp_path: Path) -> None:
    """A user's events.parquet from pandas (datetime64[ns], sub-microsecond parts): validation
    accepts every row, and the features build's read of the table (read_table) must not then refuse
    it as lossy ("column 'ts' is not timestamp[us, tz=UTC]")."""
    d = make_dir(tmp_path)
    ns = int(T0.timestamp()) * 10**9 + 987_654_321
    events = pq.read_table(d / "events.parquet").slice(0, 38)  # no bad product: nothing to rewrite
    n = events.num_rows
    ts = pa.array([ns + i * 60 * 10**9 for i in range(n)], pa.timestamp("ns", "UTC"))
    pq.write_table(events.set_column(events.schema.get_field_index("ts"), "ts", ts), d / "events.parquet")
    report = validate_dir(d, max_quarantine_share=0.5, rules=RULES)
    assert report.tables["events"].quarantined == 0
    got = read_table(d, "events").column("ts").to_pylist()
    assert got[0] == T0 + dt.timedelta(microseconds=987_654)
    assert got[1] - got[0] == dt.timedelta(minutes=1)
