"""Row rules of features.validation on small tables whose right answer is known."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from features.data_model import SCHEMAS
from features.validation import (
    QUARANTINE_SCHEMA,
    TableFormatError,
    ValidationRules,
    validate_events,
    validate_table,
)

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
RULES = ValidationRules(now=NOW)
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def events(**overrides: list) -> pa.Table:
    """Three good events; ``overrides`` replaces whole columns."""
    cols = {
        "event_id": [1, 2, 3],
        "ts": [T0, T0, T0],
        "user_id": [10, 11, 12],
        "type": ["product_click", "purchase", "stream_view"],
        "product_id": [100, 101, None],
        "stream_id": [None, None, 7],
        "amount": [None, 9.5, None],
    }
    cols.update(overrides)
    return pa.table(cols)


def test_good_rows_pass_untouched() -> None:
    res = validate_table("events", events(), rules=RULES)
    assert res.quarantined.num_rows == 0
    assert res.accepted.schema == SCHEMAS["events"]
    assert res.accepted.column("event_id").to_pylist() == [1, 2, 3]
    assert res.accepted.column("amount").to_pylist() == [None, 9.5, None]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("type", "teleport", "unknown event type"),
        ("user_id", None, "missing user_id"),
        ("event_id", None, "missing event_id"),
        ("amount", -1.0, "negative amount"),
        ("user_id", -1, "negative user_id"),  # -1 is the feature store's "no user"
        ("stream_id", -1, "negative stream_id"),
        ("amount", float("nan"), "amount is not a finite number"),
        ("amount", float("inf"), "amount is not a finite number"),
        ("ts", dt.datetime(1999, 12, 31, tzinfo=dt.UTC), "ts out of range"),
        ("ts", NOW + dt.timedelta(days=2), "ts out of range"),
        ("product_id", None, "event type requires product_id"),
    ],
)
def test_each_rule_quarantines_the_bad_row_with_its_reason(column: str, value: object, reason: str) -> None:
    t = events()
    col = t.column(column).to_pylist()
    col[1] = value  # row 2 is a purchase, which needs a product
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(col, t.schema.field(column).type))
    res = validate_table("events", t, rules=RULES)
    assert res.accepted.num_rows == 2
    assert res.quarantined.column("row").to_pylist() == [2]
    assert res.quarantined.column("reason")[0].as_py().startswith(reason)
    assert res.quarantined.schema == QUARANTINE_SCHEMA


def test_community_events_need_a_community() -> None:
    t = events(
        type=["community_join", "community_leave", "like"],
        product_id=[None, None, None],
        community_id=[5, None, None],
    )
    res = validate_table("events", t, rules=RULES)
    assert res.quarantined.column("row").to_pylist() == [2]
    assert res.quarantined.column("reason").to_pylist() == ["event type requires community_id"]


def test_duplicate_key_keeps_the_first_valid_row() -> None:
    t = events(
        event_id=[1, 1, 1],
        amount=[-5.0, 1.0, 2.0],
        type=["purchase", "purchase", "purchase"],
        product_id=[1, 1, 1],
    )
    res = validate_table("events", t, rules=RULES)
    # Row 1 is bad for its own reason, so row 2 is the first valid holder of event_id 1.
    assert res.accepted.column("amount").to_pylist() == [1.0]
    assert dict(
        zip(
            res.quarantined.column("row").to_pylist(),
            res.quarantined.column("reason").to_pylist(),
            strict=True,
        )
    ) == {
        1: "negative amount",
        3: "duplicate event_id",
    }


def test_composite_primary_key_duplicates() -> None:
    t = pa.table({"community_id": [1, 1, 2], "user_id": [5, 5, 5]})
    res = validate_table("memberships", t, rules=RULES)
    assert res.accepted.num_rows == 2
    assert res.quarantined.column("reason").to_pylist() == ["duplicate community_id, user_id"]


def test_unknown_references_are_quarantined_only_when_known_ids_are_given() -> None:
    known = {"product_id": pa.array([100], pa.int64()), "user_id": pa.array([10, 11, 12], pa.int64())}
    res = validate_table("events", events(), known, rules=RULES)
    assert res.quarantined.column("reason").to_pylist() == ["unknown product_id"]
    assert res.quarantined.column("product_id").to_pylist() == ["101"]
    assert validate_table("events", events(), {"product_id": None}, rules=RULES).quarantined.num_rows == 0


def test_raw_strings_are_parsed_and_garbage_is_kept_as_text() -> None:
    t = pa.table(
        {
            "event_id": ["1", " 2 ", "x3", "4"],
            "ts": ["2024-05-01T12:00:00Z", "2024-05-01 12:00:00", "2024-05-01", "2024-13-01T00:00:00Z"],
            "user_id": ["10", "11", "12", "13"],
            "type": ["like", "like", "like", "like"],
        }
    )
    res = validate_table("events", t, rules=RULES)
    assert res.accepted.column("event_id").to_pylist() == [1, 2]
    assert res.accepted.column("ts").to_pylist() == [T0, T0]
    q = {
        r: (reason, eid, ts)
        for r, reason, eid, ts in zip(
            *(res.quarantined.column(c).to_pylist() for c in ("row", "reason", "event_id", "ts")), strict=True
        )
    }
    assert q == {
        3: ("unparseable event_id", "x3", "2024-05-01"),
        4: ("unparseable ts", "4", "2024-13-01T00:00:00Z"),
    }


def test_missing_required_column_is_a_table_error_naming_it() -> None:
    with pytest.raises(TableFormatError, match="user_id"):
        validate_table("events", events().drop_columns(["user_id"]), rules=RULES, source="events.parquet")


@pytest.mark.parametrize(
    ("table", "rows", "reason"),
    [
        ("products", {"product_id": [1, 2], "price": [3.0, -1.0]}, "negative price"),
        (
            "streams",
            {"stream_id": [1, 2], "start_ts": [T0, T0], "end_ts": [T0, T0 - dt.timedelta(hours=1)]},
            "end_ts before start_ts",
        ),
        (
            "impressions",
            {
                "ts": [T0, T0],
                "request_id": ["a", "b"],
                "user_id": [1, 1],
                "product_id": [1, 1],
                "slot": [0, 1],
                "policy": ["p", "p"],
                "propensity": [0.5, 0.0],
                "clicked": [True, False],
                "purchased": [False, False],
            },
            "propensity outside (0, 1]",
        ),
        (
            "users",
            {
                "user_id": [1, 2],
                "consent_personalization": ["true", "perhaps"],
                "consent_marketing": ["0", "1"],
            },
            "unparseable consent_personalization",
        ),
    ],
)
def test_other_tables(table: str, rows: dict, reason: str) -> None:
    res = validate_table(table, pa.table(rows), rules=RULES)
    assert res.accepted.num_rows == 1
    assert res.quarantined.column("row").to_pylist() == [2]
    assert res.quarantined.column("reason").to_pylist() == [reason]


def test_validate_events_for_a_single_served_row() -> None:
    row = pa.table({"event_id": [9], "ts": [T0], "user_id": [1], "type": ["add_to_cart"], "product_id": [77]})
    assert validate_events(row, known_products=[77], rules=RULES).accepted.num_rows == 1
    res = validate_events(row, known_products=[1, 2], rules=RULES)
    assert res.accepted.num_rows == 0
    assert res.quarantined.column("reason").to_pylist() == ["unknown product_id"]
    assert validate_events(row, rules=RULES).accepted.num_rows == 1


def test_known_ids_as_a_python_set_agree_with_an_arrow_array() -> None:
    n = 100  # above the small-input cut-off, so both the set path and the arrow path run
    t = pa.table(
        {
            "event_id": range(n),
            "ts": [T0] * n,
            "user_id": [1] * n,
            "type": ["purchase"] * n,
            "product_id": range(n),
        }
    )
    known = set(range(0, n, 3))
    for rows in (t.slice(0, 10), t):
        by_set = validate_events(rows, known_products=known, rules=RULES)
        by_array = validate_events(rows, known_products=pa.array(sorted(known)), rules=RULES)
        by_list = validate_events(rows, known_products=sorted(known), rules=RULES)
        assert by_set.accepted.column("product_id").to_pylist() == [
            p for p in range(rows.num_rows) if p % 3 == 0
        ]
        assert by_set.accepted.equals(by_array.accepted) and by_set.accepted.equals(by_list.accepted)


def test_nanosecond_timestamps_are_read_to_the_microsecond() -> None:
    """pandas writes datetime64[ns]; Java, Spark and Go logs print nine fractional digits. Both are
    good rows: the parquet column crashed the whole validation (ArrowInvalid, "would lose data"),
    the text was quarantined as an unparseable ts."""
    ns = int(T0.timestamp()) * 10**9 + 123_456_789
    typed = events(ts=pa.array([ns, ns, ns - 123_456_789], pa.timestamp("ns", "UTC")))
    naive = events(ts=pa.array([ns] * 3, pa.timestamp("ns")))
    text = events(
        ts=[
            "2024-05-01T12:00:00.123456789Z",
            "2024-05-01 12:00:00.1234567",
            "2024-05-01T14:00:00.123456789+02:00",
        ]
    )
    want = T0 + dt.timedelta(microseconds=123_456)
    for table in (typed, naive, text):
        res = validate_table("events", table, rules=RULES)
        assert res.quarantined.num_rows == 0, res.quarantined.column("reason").to_pylist()
        assert res.accepted.column("ts").to_pylist()[:2] == [want, want]
    assert validate_table("events", text, rules=RULES).accepted.column("ts").to_pylist()[2] == want


def test_a_leading_plus_sign_reads_as_a_number_in_every_numeric_column() -> None:
    """'+5' was an unparseable integer (Arrow's cast refuses the sign that _INT_RE lets through)
    but a good float: a MovieLens line '+186<TAB>+302<TAB>+5<TAB>+891717742' was quarantined for its
    user id while its rating and timestamp were read. Now both read it; a doubled sign does not."""
    t = events(
        event_id=["+1", "2", "3"],
        user_id=["+10", " +11 ", "++12"],
        amount=[None, "+9.5", None],
    )
    res = validate_table("events", t, rules=RULES)
    assert res.accepted.column("event_id").to_pylist() == [1, 2]
    assert res.accepted.column("user_id").to_pylist() == [10, 11]
    assert res.accepted.column("amount").to_pylist() == [None, 9.5]
    assert res.quarantined.column("reason").to_pylist() == ["unparseable user_id"]
    assert res.quarantined.column("user_id").to_pylist() == ["++12"]
