"""Hypothesis: on any mix of good and garbled rows, every row is accounted for, once, with a reason."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.data_model import EVENT_TYPES
from features.validation import ValidationRules, validate_table

RULES = ValidationRules(now=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))
COLUMNS = ("event_id", "ts", "user_id", "type", "product_id", "amount")

garbage = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=8),
    st.sampled_from(
        [
            "-1",
            "nan",
            "1e400",
            "99999999999999999999",
            "2024-02-30T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "  7  ",
        ]
    ),
)
good_row = st.fixed_dictionaries(
    {
        "event_id": st.integers(1, 50).map(str),
        "ts": st.datetimes(dt.datetime(2001, 1, 1), dt.datetime(2024, 5, 31)).map(
            lambda d: d.isoformat() + "Z"
        ),
        "user_id": st.integers(0, 10**12).map(str),
        "type": st.sampled_from(EVENT_TYPES),
        "product_id": st.integers(0, 30).map(str),
        "amount": st.floats(0, 1e6).map(repr),
    }
)


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, str | None]]:
    out = []
    for row in draw(st.lists(good_row, max_size=40)):
        for col in COLUMNS:
            if draw(st.integers(0, 9)) == 0:
                row[col] = draw(garbage)
        out.append(row)
    return out


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows(), st.booleans())
def test_every_row_is_accepted_or_quarantined_with_a_reason(data: list[dict], check_products: bool) -> None:
    table = pa.table({c: pa.array([r[c] for r in data], pa.string()) for c in COLUMNS})
    refs = {"product_id": pa.array(range(0, 30, 2), pa.int64())} if check_products else None
    res = validate_table("events", table, refs, rules=RULES)

    assert res.read == table.num_rows == res.accepted.num_rows + res.quarantined.num_rows
    reasons = res.quarantined.column("reason").to_pylist()
    assert all(isinstance(r, str) and r for r in reasons)
    # Rows are numbered 1..n; accepted and quarantined rows split them without overlap.
    q_rows = res.quarantined.column("row").to_pylist()
    accepted_rows = [i + 1 for i, ok in enumerate(res.mask.to_pylist()) if ok]
    assert sorted(q_rows + accepted_rows) == list(range(1, table.num_rows + 1))
    # The original text of a quarantined row survives as it was.
    for r, eid in zip(q_rows, res.quarantined.column("event_id").to_pylist(), strict=True):
        assert eid == data[r - 1]["event_id"]
    # Accepted rows are clean: validating them again quarantines nothing (and keys are unique).
    again = validate_table("events", res.accepted, refs, rules=RULES)
    assert again.quarantined.num_rows == 0
    assert len(set(res.accepted.column("event_id").to_pylist())) == res.accepted.num_rows
