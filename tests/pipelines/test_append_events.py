"""`slotcast data append-events`: what the service accepted reaches the training data, once, and
never for a deleted user."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.data_model import read_table, write_table
from features.privacy import DeletionLedger
from features.validation import validate_dir
from pipelines.cli import main
from serving.catalog import Catalog
from serving.demo import DemoFeatureSource, DemoModelSource, demo_tables
from serving.runtime import SlotcastApp
from serving.schemas import Event, EventsRequest
from serving.settings import ServingSettings


def _served_state(tmp_path: Path) -> tuple[SlotcastApp, Path]:
    """A state dir whose data directory holds a demo world, and the app serving it."""
    tables = demo_tables(n_users=60, n_products=40, n_streams=2, per_stream=20, seed=3)
    data = tmp_path / "data"
    for name, table in tables.items():
        write_table(data, name, table)
    settings = ServingSettings(state_dir=tmp_path, model_source="demo", feature_source="demo")
    app = SlotcastApp(
        settings,
        DemoModelSource(60, 40, 0.0, 2, seed=3),
        DemoFeatureSource(tables),
        Catalog(tables),
        DeletionLedger(tmp_path),
    )
    app.reload()
    return app, data


def test_served_events_reach_the_data_directory_once_and_never_for_deleted_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app, data = _served_state(tmp_path)
    before = read_table(data, "events").num_rows
    kept = [
        Event(user_id=5, type="product_click", product_id=3, stream_id=0),
        Event(user_id=6, type="add_to_cart", product_id=4, stream_id=1),
        Event(user_id=7, type="purchase", product_id=5, amount=12.5),
    ]
    app.events(EventsRequest(events=kept))
    app.events(EventsRequest(events=[Event(user_id=9, type="product_click", product_id=3, stream_id=0)]))
    app.delete_user(9)  # accepted before the deletion: must not reach training all the same
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))

    assert main(["data", "append-events"]) == 0
    assert "4 events in the log: 3 appended" in capsys.readouterr().out
    events = read_table(data, "events").to_pandas()
    assert len(events) == before + 3
    served = events.iloc[before:]
    assert sorted(zip(served["user_id"], served["type"], served["product_id"], strict=True)) == [
        (5, "product_click", 3),
        (6, "add_to_cart", 4),
        (7, "purchase", 5),
    ]
    assert served.loc[served["type"] == "purchase", "amount"].tolist() == [12.5]
    assert 9 not in set(served["user_id"])
    assert served["event_id"].is_unique and not set(served["event_id"]) & set(
        events["event_id"].iloc[:before]
    )

    # Again: nothing new, nothing doubled.
    assert main(["data", "append-events"]) == 0
    again = capsys.readouterr().out
    assert "0 appended, 3 already in" in again and "warning" not in again  # repeats are no clash
    assert read_table(data, "events").num_rows == before + 3
    # An event whose id another event already has is left out, and said so (a client's reused id,
    # or an old log's: two workers in the same microsecond); the same event twice is a repeat.
    taken = int(served["event_id"].iloc[0])
    app.event_log.append(
        [{"event_id": taken, "ts": "2025-01-02T03:04:05+00:00", "user_id": 8, "type": "product_click",
          "product_id": 2, "stream_id": 0}]
    )  # fmt: skip
    assert main(["data", "append-events"]) == 0
    out = capsys.readouterr().out
    assert "0 appended, 3 already in" in out and "warning: 1 logged events were left out" in out
    assert read_table(data, "events").num_rows == before + 3
    # The appended rows are canonical: validation keeps them (known users, products, streams).
    report = validate_dir(data, 0.5)
    assert report.ok and report.tables["events"].accepted == before + 3


def test_no_log_or_no_events_table_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    assert main(["data", "append-events", "--data", str(tmp_path / "nothing")]) == 2
    assert "--data" in capsys.readouterr().err
    _, data = _served_state(tmp_path)
    assert main(["data", "append-events", "--data", str(data), "--log", str(tmp_path / "no-log")]) == 2
    assert "--log" in capsys.readouterr().err


def test_an_append_waits_for_a_purge_holding_the_directory(tmp_path: Path) -> None:
    """Both rewrite the events table: an append that read the table before a purge replaced it
    would write the purged user's rows back. The append waits for the data directory's lock."""
    import threading

    from features.data_model import data_lock, table_path
    from features.erasure import erase_parquet
    from pipelines.commands.data_events import append_served_events

    app, data = _served_state(tmp_path)
    app.events(EventsRequest(events=[Event(user_id=5, type="product_click", product_id=3, stream_id=0)]))
    app.close()
    gone = next(u for u in read_table(data, "events").column("user_id").to_pylist() if u != 5)
    appended: list[int] = []
    with data_lock(data):  # a purge at work
        t = threading.Thread(target=lambda: appended.append(
            append_served_events(tmp_path / "serving" / "events", data, set()).appended))  # fmt: skip
        t.start()
        t.join(1.0)
        assert t.is_alive() and not appended, "the append did not wait for the lock"
        assert erase_parquet(table_path(data, "events"), {gone}) > 0
    t.join(30)
    assert appended == [1]
    users = read_table(data, "events").column("user_id").to_pylist()
    assert gone not in users and 5 in users


def test_no_event_log_yet_at_the_default_place_appends_nothing_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service that never accepted an event has written no log: nothing to append, not a usage
    error naming --log (the README's `slotcast data append-events` on a fresh state dir exited 2)."""
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path))
    data = tmp_path / "data"
    for name, table in demo_tables(n_users=20, n_products=10, n_streams=1, per_stream=5, seed=1).items():
        write_table(data, name, table)
    before = read_table(data, "events").num_rows
    assert main(["data", "append-events"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no event log" in out and "nothing appended" in out, out
    assert read_table(data, "events").num_rows == before
