"""The online store suite: the same tests against SQLite and a real redis-server."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.live import ingest_live_events
from features.privacy import DeletionLedger, delete_user_online
from features.retrieval import NO_USER, FeastFeatureReader, feature_names
from features.settings import FeatureSettings
from tests.features.conftest import AS_OF
from tests.features.world import day


def test_online_rows_follow_the_service_order(built_store: FeatureSettings) -> None:
    reader = FeastFeatureReader(built_store)
    df = reader.online(1, [12, 10, 11], stream_id=100, at=AS_OF)  # the session is live then
    assert list(df.index) == [12, 10, 11]
    assert list(df.columns) == feature_names("ranker_v1")
    assert (df["monetary_90d"] == 60.0).all() and (df["avg_order_value"] == 20.0).all()
    assert df.loc[10, "price"] == 20.0 and df.loc[11, "price"] == 50.0
    assert df.loc[10, "category_affinity_30d"] == pytest.approx(1.0)
    assert df.loc[11, "price_vs_user_aov"] == pytest.approx(2.5)  # on-demand: 50 / 20
    assert df.loc[10, "live_watch_seconds"] == 600.0


def test_unknown_user_and_product_are_nan_not_errors(built_store: FeatureSettings) -> None:
    reader = FeastFeatureReader(built_store)
    df = reader.online(987654, [10, 424242])
    assert df.loc[10, "price"] == 20.0
    assert np.isnan(df.loc[424242, "price"])
    assert df[["recency_days", "monetary_90d"]].isna().all().all()
    assert reader.segment(987654) is None


def test_segment_lookup(built_store: FeatureSettings) -> None:
    reader = FeastFeatureReader(built_store)
    assert reader.segment(2) == "engaged_viewer"
    ctx = reader.online(1, [10], service="serving_context_v1")
    assert ctx.loc[10, "segment"] == "potential" and ctx.loc[10, "product_category"] == "beauty"


def test_a_pushed_live_event_is_visible_at_the_next_read(built_store: FeatureSettings) -> None:
    """The push is synchronous: the very next lookup sees the new totals (no wait, no poll). How
    fast that is belongs in a benchmark, not here."""
    from features.online_fast import FastOnlineReader

    reader = FastOnlineReader(built_store)  # serving's reader
    cols = ["live_clicks", "live_carts", "live_watch_seconds"]
    before = reader.online(3, [12], stream_id=100).loc[12, cols].astype(float).fillna(0.0)
    n = ingest_live_events(
        reader,
        [
            {"user_id": 3, "stream_id": 100, "type": "product_click", "ts": datetime.now(UTC)},
            {"user_id": 3, "stream_id": 100, "type": "product_click", "ts": datetime.now(UTC)},
            {"user_id": 3, "stream_id": 100, "type": "stream_view", "watch_seconds": 30.0},
            {"user_id": 3, "stream_id": None, "type": "product_click"},  # not in a stream: ignored
        ],
    )
    after = reader.online(3, [12], stream_id=100).loc[12]
    assert n == 1
    assert after[cols].tolist() == (before + [2.0, 0.0, 30.0]).tolist()
    ingest_live_events(reader, [{"user_id": 3, "stream_id": 100, "type": "add_to_cart"}])
    again = reader.online(3, [12], stream_id=100).loc[12, cols]
    assert again.tolist() == (before + [2.0, 1.0, 30.0]).tolist()  # totals accumulate
    # Feast's own lookup sees the same totals
    assert (
        FeastFeatureReader(built_store).online(3, [12], stream_id=100).loc[12, cols].tolist()
        == again.tolist()
    )


def _click(settings: FeatureSettings, user: int, stream: int, threads: int, each: int, start: Any) -> None:
    """One serving worker: ``threads`` request threads sharing its reader, ``each`` clicks apiece."""
    from features.online_fast import FastOnlineReader

    reader = FastOnlineReader(settings)
    start.wait()

    def send() -> None:
        for _ in range(each):
            ingest_live_events(reader, [{"user_id": user, "stream_id": stream, "type": "product_click"}])

    pool = [threading.Thread(target=send) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_concurrent_live_events_from_several_workers_all_count(built_store: FeatureSettings) -> None:
    """Two worker processes of three threads each push clicks on one (user, stream) at once: the
    total counts every one. The read-modify-write was unlocked: 40 clicks sent at once through two
    BentoML workers sharing Redis left live_clicks at 6."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    workers = [ctx.Process(target=_click, args=(built_store, 5, 104, 3, 5, start)) for _ in range(2)]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0, "a worker process failed"
    df = FeastFeatureReader(built_store).online(5, [12], stream_id=104)
    assert df.loc[12, "live_clicks"] == 2 * 3 * 5


def test_deleting_a_user_removes_their_online_rows(built_store: FeatureSettings) -> None:
    reader = FeastFeatureReader(built_store)
    ingest_live_events(reader, [{"user_id": 4, "stream_id": 100, "type": "product_click"}])
    assert reader.online(4, [11], stream_id=100).loc[11, "monetary_90d"] == 50.0
    removed = delete_user_online(reader.store, 4)
    assert removed >= 4  # rfm/engagement/segment, category, product history, live session
    gone = reader.online(4, [11], stream_id=100).loc[11]
    assert (
        np.isnan(gone["monetary_90d"])
        and np.isnan(gone["live_clicks"])
        and np.isnan(gone["repurchase_due_ratio"])
    )
    assert reader.online(1, [10]).loc[10, "monetary_90d"] == 60.0  # others untouched
    ledger = DeletionLedger(built_store.state_dir)
    ledger.add(4)
    assert (
        ingest_live_events(reader, [{"user_id": 4, "stream_id": 100, "type": "product_click"}], ledger=ledger)
        == 0
    )


def test_the_fast_path_returns_what_feast_returns(built_store: FeatureSettings) -> None:
    from features.online_fast import FastOnlineReader

    slow, fast = FeastFeatureReader(built_store), FastOnlineReader(built_store)
    for user, stream in ((1, 100), (2, 100), (3, None), (987654, 5), (NO_USER, 100), (NO_USER, None)):
        a = slow.online(user, [10, 11, 12, 424242], stream_id=stream)
        b = fast.online(user, [10, 11, 12, 424242], stream_id=stream)
        assert list(b.columns) == list(a.columns) and list(b.index) == list(a.index)
        # repurchase_due_ratio uses "now", read a few microseconds apart
        pd.testing.assert_frame_equal(a, b, check_dtype=False, rtol=1e-6)
        # serving's hot path: the same values as a bare matrix in the order asked
        values, names = fast.online_matrix(user, [10, 11, 12, 424242], stream_id=stream)
        assert list(names) == list(a.columns) and values.dtype == np.float64
        np.testing.assert_allclose(values, a.to_numpy(dtype=float), rtol=1e-6)
    assert fast.online(1, []).shape == (0, len(feature_names("ranker_v1")))
    assert fast.online_matrix(1, [])[0].shape == (0, len(feature_names("ranker_v1")))
    # a pushed event shows in the fast path at once too (live views are read per request); the
    # build's session of day 30 has expired by now (NaN: none live), so the event may start one
    before = fast.online(2, [11], stream_id=100).loc[11, "live_clicks"]
    ingest_live_events(fast, [{"user_id": 2, "stream_id": 100, "type": "product_click"}])
    assert fast.online(2, [11], stream_id=100).loc[11, "live_clicks"] == np.nan_to_num(before) + 1


def test_request_time_features_are_computed_at_the_requests_time(built_store: FeatureSettings) -> None:
    """``at`` is the request's time for the request-time features (a carousel asked ``at`` a past
    moment, a replay), in Feast's lookup and the fast path alike, as training takes the label time;
    None is now. User 1 last bought product 10 (repurchase cycle 30 days) at day 30, 11:30."""
    from features.online_fast import FastOnlineReader

    at = day(40)
    due = (at - day(30, 11.5)).total_seconds() / 86400.0 / 30.0
    now_due = (datetime.now(UTC) - day(30, 11.5)).total_seconds() / 86400.0 / 30.0
    for reader in (FeastFeatureReader(built_store), FastOnlineReader(built_store)):
        assert reader.online(1, [10], stream_id=100, at=at).loc[10, "repurchase_due_ratio"] == pytest.approx(
            due, rel=1e-12
        )
        assert reader.online(1, [10], stream_id=100).loc[10, "repurchase_due_ratio"] == pytest.approx(
            now_due, abs=1e-3
        )
    values, names = FastOnlineReader(built_store).online_matrix(1, [10], stream_id=100, at=at)
    assert values[0, list(names).index("repurchase_due_ratio")] == pytest.approx(due, rel=1e-12)


def test_distinct_codes_is_numpys_unique_with_inverse() -> None:
    from features.online_fast import _distinct_codes

    rng = np.random.default_rng(5)
    for n in (1, 3, 40):
        codes = rng.integers(0, n, rng.integers(1, 60))
        want = np.unique(codes, return_inverse=True)
        got = _distinct_codes(codes, n)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


def test_the_fast_path_reads_only_keys_that_can_exist(
    built_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No row has NO_USER or NO_STREAM: an anonymous lookup reads no user-keyed view, a stream-less
    one no stream-keyed view, and one with neither touches the store not at all (its personal,
    stream and live features are NaN, as the Feast path's sentinel reads give: test above)."""
    from features.online_fast import FastOnlineReader

    fast = FastOnlineReader(built_store)
    fast.online(1, [10], stream_id=100)  # loads the product tables
    asked: list[list[str]] = []
    real = fast._read_views

    def spy(reads):  # type: ignore[no-untyped-def]
        asked.append([view for view, _, _ in reads])
        return real(reads)

    monkeypatch.setattr(fast, "_read_views", spy)
    frames = {
        (user, stream): fast.online(user, [10, 11], stream_id=stream)
        for user, stream in ((1, 100), (NO_USER, 100), (1, None), (NO_USER, None))
    }
    assert asked == [
        ["user_profile", "user_category_affinity", "stream_live", "live_session"],
        ["stream_live"],
        ["user_profile", "user_category_affinity"],
    ]
    anonymous = frames[(NO_USER, None)]
    personal = [
        c
        for c in anonymous.columns
        if c in ("recency_days", "watch_minutes_7d", "live_clicks", "live_viewers")
    ]
    assert len(personal) == 4 and anonymous[personal].isna().all().all()
    assert anonymous["price"].notna().all()  # product features still come from the in-memory tables


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_build_as_of_an_earlier_date_replaces_a_later_builds_rows(
    backend: str, world_dir: Any, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """A build as of ten years on (a mistaken --as-of), then one as of the data's end: serving must
    read the second. Feast's Redis store kept the later-dated rows (it writes only newer rows), so
    days_since_launch stayed ten years ahead and every windowed count at zero."""
    import warnings

    from features.store import build_feature_store
    from tests.features.conftest import AS_OF, own_settings

    settings = own_settings(backend, tmp_path, request, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(world_dir, settings, as_of=day(31 + 3650, 0))
        build_feature_store(world_dir, settings, as_of=AS_OF)
    off = pd.read_parquet(settings.offline_dir / "product_features.parquet")
    last = off.sort_values("event_timestamp").groupby("product_id").tail(1).set_index("product_id")
    online = FeastFeatureReader(settings).online(1, [int(p) for p in last.index], stream_id=100)
    assert len(last) >= 3
    np.testing.assert_allclose(online["days_since_launch"], last["days_since_launch"].loc[online.index])
    np.testing.assert_allclose(online["conversion_rate"], last["conversion_rate"].loc[online.index])
    assert (online["monetary_90d"] == 60.0).all()  # user 1 as of the data's end, not ten years on
