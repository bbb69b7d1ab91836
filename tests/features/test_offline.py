"""Offline feature tables on the hand-built world: values known by hand (no Feast involved)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.offline import OFFLINE_TABLES, compute_offline_features
from features.segments import SegmentConfigError, load_segment_rules
from features.settings import FeatureSettings
from tests.features.world import build_world, day


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> FeatureSettings:
    root = tmp_path_factory.mktemp("offline")
    build_world(root / "data")
    settings = FeatureSettings(state_dir=root / "state")
    compute_offline_features(root / "data", settings, as_of=day(31, 0))
    return settings


def table(settings: FeatureSettings, name: str) -> pd.DataFrame:
    df = pd.read_parquet(settings.offline_dir / OFFLINE_TABLES[name])
    return df[df["event_timestamp"] > pd.Timestamp("1971-01-01", tz="UTC")]  # drop the sentinel rows


def latest(settings: FeatureSettings, name: str, key: str = "user_id") -> pd.DataFrame:
    df = table(settings, name)
    return df.sort_values("event_timestamp").groupby(key).tail(1).set_index(key)


def test_rfm_of_a_user_with_purchases_of_10_20_30(offline: FeatureSettings) -> None:
    u = latest(offline, "user").loc[1]
    assert u["event_timestamp"] == pd.Timestamp("2026-02-01", tz="UTC")
    assert u["frequency_90d"] == 3
    assert u["monetary_90d"] == pytest.approx(60.0)
    assert u["avg_order_value"] == pytest.approx(20.0)
    # last purchase 2026-01-31 11:30, snapshot at midnight: 12.5 hours
    assert u["days_since_last_purchase"] == pytest.approx(12.5 / 24)
    assert u["push_open_rate_30d"] == pytest.approx(1.0)


def test_engagement_of_a_viewer_who_never_buys(offline: FeatureSettings) -> None:
    u = latest(offline, "user").loc[2]
    assert u["watch_minutes_7d"] == pytest.approx(40.0)
    assert u["streams_watched_7d"] == 1
    assert u["product_clicks_7d"] == 2 and u["carts_7d"] == 1
    assert u["push_open_rate_30d"] == 0.0
    assert pd.isna(u["avg_order_value"]) and pd.isna(u["days_since_last_purchase"])


def test_segments_as_of_the_build_date(offline: FeatureSettings) -> None:
    seg = latest(offline, "user")["segment"].to_dict()
    assert seg == {1: "potential", 2: "engaged_viewer", 3: "new", 4: "promising"}


def test_users_move_between_segments_as_time_passes(tmp_path: Path) -> None:
    build_world(tmp_path / "data")
    settings = FeatureSettings(state_dir=tmp_path / "state")
    compute_offline_features(tmp_path / "data", settings, as_of=day(78, 0))
    seg = latest(settings, "user")["segment"].to_dict()
    assert seg[4] == "sleeping"  # one purchase on day 1, nothing since
    assert seg[1] == "at_risk"  # three purchases, the last 47.5 days ago
    u2 = latest(settings, "user").loc[2]
    assert u2["watch_minutes_7d"] == 0 and u2["product_clicks_7d"] == 0  # windows rolled off


def test_a_daily_snapshot_never_holds_an_event_at_or_after_its_timestamp(offline: FeatureSettings) -> None:
    u1 = table(offline, "user").set_index(["user_id", "event_timestamp"]).loc[1]
    # purchases on days 10, 20 (noon): the snapshot at midnight of day 20 holds only the first
    assert u1.loc[pd.Timestamp("2026-01-21", tz="UTC"), "monetary_90d"] == 10.0
    assert u1.loc[pd.Timestamp("2026-01-22", tz="UTC"), "monetary_90d"] == 30.0


def test_product_features(offline: FeatureSettings) -> None:
    p = latest(offline, "product", "product_id")
    assert p.loc[10, "price"] == 20.0 and p.loc[10, "product_category"] == "beauty"
    assert p.loc[12, "days_since_launch"] == pytest.approx(11.0)
    assert p.loc[11, "clicks_30d"] == 2
    assert ((p["conversion_rate"] > 0) & (p["conversion_rate"] <= 1)).all()


def test_features_as_of_years_after_the_data_hold_no_row_per_idle_day(tmp_path: Path) -> None:
    """`features build --as-of` far past the last event: the windows have all rolled off, so the
    as-of rows equal those of a build 31 days after the last event (age features aside), and the
    days in between hold no product rows (one per product per day made 54M rows, 15 GB, for the
    demo world as of 2099)."""
    build_world(tmp_path / "data")
    near, far = (FeatureSettings(state_dir=tmp_path / name) for name in ("near", "far"))
    compute_offline_features(tmp_path / "data", near, as_of=day(63, 0))  # last event day 31 + 32
    compute_offline_features(tmp_path / "data", far, as_of=day(63 + 3650, 0))
    p_near, p_far = latest(near, "product", "product_id"), latest(far, "product", "product_id")
    assert (p_far["event_timestamp"] == pd.Timestamp(day(63 + 3650, 0))).all()
    assert (p_far["days_since_launch"] - p_near["days_since_launch"]).round(9).eq(3650).all()
    pd.testing.assert_frame_equal(
        p_far.drop(columns=["event_timestamp", "days_since_launch"]),
        p_near.drop(columns=["event_timestamp", "days_since_launch"]),
    )
    assert (p_near[["popularity_7d", "clicks_30d"]] == 0).all().all()  # the windows did roll off
    # Both: the days until the windows rolled off (day 31 + 30), then the as-of day; not 3,650 more.
    assert (
        table(far, "product")["event_timestamp"].nunique()
        == table(near, "product")["event_timestamp"].nunique()
    )
    u_far = latest(far, "user")  # users were bounded already: a row a day for the horizon only
    assert (u_far["segment"] == "sleeping").all() and (u_far["watch_minutes_7d"] == 0).all()


def test_category_affinity_is_a_share(offline: FeatureSettings) -> None:
    uc = table(offline, "user_category")
    last = uc[uc["event_timestamp"] == uc["event_timestamp"].max()]
    a = last.set_index(["user_id", "category"])["category_affinity_30d"]
    assert a.loc[(2, "food")] == pytest.approx(5 / 5.5)  # 2 clicks + a cart vs half a stream view
    sums = last.groupby("user_id")["category_affinity_30d"].sum()
    assert sums[sums > 0].round(9).eq(1.0).all()


def test_stream_and_live_session(offline: FeatureSettings) -> None:
    s = table(offline, "stream").set_index("event_timestamp")["live_viewers"]
    assert s.loc[pd.Timestamp("2026-01-31 11:00", tz="UTC")] == 2
    assert s.iloc[-1] == 0  # closing row after the stream ended
    live = table(offline, "live_session")
    u2 = live[live["user_id"] == 2].sort_values("event_timestamp").iloc[-1]
    assert (u2["live_clicks"], u2["live_carts"], u2["live_watch_seconds"]) == (2, 1, 2400)


def test_deleted_users_are_left_out(tmp_path: Path) -> None:
    build_world(tmp_path / "data")
    settings = FeatureSettings(state_dir=tmp_path / "state")
    compute_offline_features(tmp_path / "data", settings, as_of=day(31, 0), excluded_users={1})
    for name in OFFLINE_TABLES:
        df = pd.read_parquet(settings.offline_dir / OFFLINE_TABLES[name])
        if "user_id" in df.columns:
            assert 1 not in set(df["user_id"]), name


def test_missing_events_table_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="events"):
        compute_offline_features(tmp_path, FeatureSettings(state_dir=tmp_path / "s"))


def test_segment_rules_errors_name_file_and_rule(tmp_path: Path) -> None:
    bad = tmp_path / "seg.yaml"
    bad.write_text("rules:\n  - name: vip\n    when: {monetary_365d: '> 5'}\n")
    with pytest.raises(
        SegmentConfigError, match=r"seg.yaml: rule 1 \(vip\): unknown feature 'monetary_365d'"
    ):
        load_segment_rules(bad)
    bad.write_text("rules:\n  - name: vip\n    when: {monetary_90d: 'lots'}\n")
    with pytest.raises(SegmentConfigError, match="condition 'lots'"):
        load_segment_rules(bad)
    assert "engaged_viewer" in load_segment_rules().names


def _add_rows(data: Path, name: str, rows: list[dict]) -> None:
    import pyarrow as pa

    from features.data_model import read_table, write_table

    old = read_table(data, name)
    write_table(data, name, pa.concat_tables([old, pa.Table.from_pylist(rows, schema=old.schema)]))


def test_an_as_of_build_holds_no_user_or_product_from_after_it(tmp_path: Path) -> None:
    """A build --as-of a date must not see the future: a user who signs up after it had a row
    in the as-of snapshot with a negative tenure (-9.5 days for one signing up on day 40 as of
    day 31), and a product launched after a snapshot had rows with a negative days_since_launch
    (and was served as if it existed)."""
    data = build_world(tmp_path / "data")
    _add_rows(
        data,
        "users",
        [
            {"user_id": 5, "signup_ts": day(40), "consent_personalization": True, "consent_marketing": True},
            # signup_ts after the user's first event (a data error): tenure counts from the event
            {"user_id": 6, "signup_ts": day(40), "consent_personalization": True, "consent_marketing": True},
        ],
    )
    _add_rows(data, "products", [{"product_id": 13, "category": "food", "launch_ts": day(35, 0)}])
    _add_rows(
        data,
        "events",
        [{"event_id": 99, "ts": day(5), "user_id": 6, "type": "product_click", "product_id": 10}],
    )
    settings = FeatureSettings(state_dir=tmp_path / "state")
    compute_offline_features(data, settings, as_of=day(31, 0))
    users, products = table(settings, "user"), table(settings, "product")
    assert 5 not in set(users["user_id"]) and 13 not in set(products["product_id"])
    assert latest(settings, "user").loc[6, "tenure_days"] == pytest.approx(25.5)
    assert (users["tenure_days"] >= 0).all() and (products["days_since_launch"] >= 0).all()

    # As of day 15: user 3 signs up on day 29, product 12 launches on day 20.
    early = FeatureSettings(state_dir=tmp_path / "early")
    compute_offline_features(data, early, as_of=day(15, 0))
    assert set(latest(early, "user").index) == {1, 2, 4, 6}
    assert set(table(early, "product")["product_id"]) == {10, 11}
    p12 = table(settings, "product").query("product_id == 12")
    assert p12["event_timestamp"].min() == pd.Timestamp(day(21, 0))  # its first snapshot: launch day's
    assert p12["days_since_launch"].min() == pytest.approx(1.0)


@pytest.mark.parametrize("horizon", [7, 30, 90, 120])
def test_user_rows_past_the_horizon_hold_no_purchase_from_over_90_days_ago(
    tmp_path: Path, horizon: int
) -> None:
    """After a user's last event the daily rows stop `user_horizon_days` later, and a point-in-time
    read until the as-of day takes that last row. With a horizon under the longest window (90 days,
    the settings allowed 7) that row still counted user 4's day-1 purchase: read on day 150, it had
    frequency_90d 1 and monetary_90d 50 and was no 'sleeping' user. Such a horizon is refused now."""
    try:
        settings = FeatureSettings(state_dir=tmp_path / "state", user_horizon_days=horizon)
    except ValueError as err:
        assert horizon < 90 and "greater than or equal to 90" in str(err)
        return
    compute_offline_features(build_world(tmp_path / "data"), settings, as_of=day(200, 0))
    rows = table(settings, "user").query("user_id == 4").sort_values("event_timestamp")
    at_150 = rows[rows["event_timestamp"] <= pd.Timestamp(day(150))].iloc[-1]
    assert (at_150["frequency_90d"], at_150["monetary_90d"], at_150["segment"]) == (0, 0, "sleeping")
    assert at_150["recency_days"] == pytest.approx(horizon + 0.5)  # frozen there: a lower bound
    as_of = rows.iloc[-1]  # the as-of row, which the online store gets, is exact
    assert as_of["event_timestamp"] == pd.Timestamp(day(200, 0)) and as_of["recency_days"] == 198.5
