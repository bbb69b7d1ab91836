"""The app behind the shell: reload safety, readiness, and refusing events the disk cannot keep."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from features.privacy import DeletionLedger
from models.errors import IncompatibleBundleError
from serving.catalog import Catalog
from serving.demo import DemoFeatureSource, DemoModelSource
from serving.errors import EventLogUnavailableError, ModelUnavailableError
from serving.event_log import EventLog, read_all
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest, Event, EventsRequest
from serving.settings import ServingSettings
from serving.sources import Models


class FlakySource:
    """Good bundles until ``broken`` is set, then an incompatible one."""

    def __init__(self) -> None:
        self.inner = DemoModelSource(600, 120, 0.1, 3, seed=1)
        self.broken = False
        self.fail_with: Exception | None = None

    def load(self, alias: str) -> Models:
        if self.fail_with is not None:
            raise self.fail_with
        if self.broken:
            raise IncompatibleBundleError("manifest says lightgbm 9.9, this is 4.7")
        return self.inner.load(alias)


def make_app(tables, tmp_path: Path, source=None) -> SlotcastApp:
    settings = ServingSettings(state_dir=tmp_path, model_source="demo", feature_source="demo")
    app = SlotcastApp(
        settings,
        source or FlakySource(),
        DemoFeatureSource(tables),
        Catalog(tables),
        DeletionLedger(tmp_path),
    )
    with contextlib.suppress(ModelUnavailableError):  # as at the service's start: not ready
        app.reload()
    return app


def test_a_bad_bundle_is_refused_and_the_old_model_keeps_serving(tables, tmp_path: Path) -> None:
    source = FlakySource()
    app = make_app(tables, tmp_path, source)
    good = app.carousel(CarouselRequest(user_id=1, stream_id=0)).model_version
    source.broken = True
    with pytest.raises(ModelUnavailableError, match="old model keeps serving"):
        app.reload()
    assert app.carousel(CarouselRequest(user_id=1, stream_id=0)).model_version == good
    assert app.ready() == (True, "ready")


def test_unreachable_registry_at_start_means_not_ready(tables, tmp_path: Path) -> None:
    source = FlakySource()
    source.fail_with = ModelUnavailableError("no model slotcast@champion in sqlite:///nowhere")
    app = make_app(tables, tmp_path, source)
    ok, why = app.ready()
    assert not ok and "slotcast@champion" in why
    with pytest.raises(ModelUnavailableError):
        app.carousel(CarouselRequest(user_id=1, stream_id=0))
    with pytest.raises(ModelUnavailableError, match="no model loaded, and none can be: .*slotcast@champion"):
        app.reload()  # a 503 with the reason, not {"reloaded": false}
    source.fail_with = None
    assert app.reload().reloaded and app.ready() == (True, "ready")


def test_online_store_down_means_not_ready_but_still_answering(tables, tmp_path: Path) -> None:
    app = make_app(tables, tmp_path)
    app.features.fail = True  # type: ignore[attr-defined]
    assert app.ready()[0] is False
    assert app.carousel(CarouselRequest(user_id=1, stream_id=0)).degraded


def test_reload_under_concurrent_requests_fails_none(tables, tmp_path: Path) -> None:
    app = make_app(tables, tmp_path)
    errors: list[BaseException] = []
    versions: set[str] = set()
    done: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                versions.add(app.carousel(CarouselRequest(user_id=5, stream_id=0, k=4)).model_version)
                done.append(1)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    import time

    for _ in range(5):
        seen = len(done)
        deadline = time.monotonic() + 10
        while len(done) < seen + 3 and time.monotonic() < deadline:  # let requests overlap the swap
            time.sleep(0.005)
        app.reload()
    stop.set()
    for t in threads:
        t.join()
    assert not errors and len(versions) >= 2


def test_events_the_disk_refuses_are_not_acknowledged(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tables, tmp_path)
    ok = EventsRequest(events=[Event(user_id=1, type="purchase", product_id=7)])
    assert app.events(ok).accepted == 1

    def full_disk(self: EventLog) -> None:
        self._fd = os.open("/dev/full", os.O_WRONLY)
        self._size = 0

    monkeypatch.setattr(EventLog, "_open_segment", full_disk)
    app.event_log._size = app.event_log.rotate_bytes
    before = dict(app.catalog.last_purchase.get(2, {}))  # type: ignore[union-attr]
    with pytest.raises(EventLogUnavailableError):
        app.events(EventsRequest(events=[Event(user_id=2, type="purchase", product_id=9)]))
    assert app.catalog.last_purchase.get(2, {}) == before  # type: ignore[union-attr]
    assert [e["user_id"] for e in read_all(app.settings.events_dir)] == [1]


def test_admin_token_is_required(tables, tmp_path: Path) -> None:
    from serving.errors import UnauthorizedError

    app = make_app(tables, tmp_path)
    with pytest.raises(UnauthorizedError, match="not set"):
        app.check_token("Bearer anything")
    app.settings = ServingSettings(state_dir=tmp_path, admin_token="s3")
    app.check_token("Bearer s3")
    for bad in (None, "", "s3", "Bearer s4", "Basic s3"):
        with pytest.raises(UnauthorizedError):
            app.check_token(bad)


def test_a_deletion_through_one_replica_is_honoured_by_another(tables, tmp_path: Path, monkeypatch) -> None:
    """Workers and replicas share the state directory: the ledger, not a process's memory, decides."""
    import serving.deletions as deletions

    a, b = make_app(tables, tmp_path), make_app(tables, tmp_path)
    user = int(next(iter(a.catalog.users.index)))
    assert a.carousel(CarouselRequest(user_id=user, candidates=[1, 2, 3, 4], k=3)).personalized
    assert not b.is_deleted(user)
    a.delete_user(user)  # through replica a only
    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 0.0)  # b's next look at the shared ledger
    assert b.is_deleted(user) and b.user_data(user).deleted
    answer = b.carousel(CarouselRequest(user_id=user, candidates=[1, 2, 3, 4], k=3))
    assert not answer.personalized
    # Push audiences ask for many users at once: the same ledger decides.
    assert b.deleted_mask(np.array([user + 1, user], np.int64)).tolist() == [False, True]


def test_no_request_answers_from_the_old_deletion_set_while_another_refreshes_it(
    tables, tmp_path: Path, monkeypatch
) -> None:
    """A deletion is honoured by every request thread once the refresh interval has passed, also by
    those that arrive while another thread is still re-reading the ledger (it used to record the
    refresh before reading, and they answered from the old set: personalized, after the second)."""
    import serving.deletions as deletions

    a, b = make_app(tables, tmp_path), make_app(tables, tmp_path)
    user = int(next(iter(a.catalog.users.index)))
    assert not b.is_deleted(user)
    a.delete_user(user)
    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 5.0)
    b.deleted._checked -= 10.0  # b last looked at the ledger longer ago than the interval

    reading, release = threading.Event(), threading.Event()
    read_ledger = b.ledger.user_ids

    def slow_read() -> set[int]:
        reading.set()
        assert release.wait(10)
        return read_ledger()

    monkeypatch.setattr(b.ledger, "user_ids", slow_read)
    answers: dict[str, bool] = {}
    first = threading.Thread(target=lambda: answers.update(first=b.is_deleted(user)))
    first.start()
    assert reading.wait(10)  # the first thread is inside the ledger read; a second caller comes
    second = threading.Thread(target=lambda: answers.update(second=b.is_deleted(user)))
    second.start()
    second.join(0.3)
    release.set()
    first.join(10)
    second.join(10)
    assert answers == {"first": True, "second": True}  # it waited for the read, not the old set


def test_event_ids_the_service_gives_are_unique_within_a_process(
    tables, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serving numbers events without an id as clock-microseconds * 1000 + index: two requests in
    the same microsecond (request threads), or a batch of more than 1000 followed within a few
    microseconds by another, were given the same ids (event_id is the events table's key)."""
    import serving.runtime as runtime

    app = make_app(tables, tmp_path)
    frozen = 1_800_000_000_000_000_000  # ns: every request in the same microsecond
    monkeypatch.setattr(runtime.time, "time_ns", lambda: frozen)
    batch = EventsRequest(events=[Event(user_id=1, type="like")] * 1500)
    app.events(batch)
    app.events(batch)
    monkeypatch.setattr(runtime.time, "time_ns", lambda: frozen + 1000)  # one microsecond later
    app.events(batch)
    ids = [e["event_id"] for e in read_all(app.settings.events_dir)]
    assert len(ids) == 4500 and len(set(ids)) == 4500


def test_how_far_ahead_a_time_may_lie_is_a_setting(tables, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from serving.errors import BadRequestError

    app = make_app(tables, tmp_path)
    app.settings = app.settings.model_copy(update={"max_clock_skew_s": 3600.0})
    soon, later = (datetime.now(UTC) + timedelta(minutes=m) for m in (30, 90))
    assert app.events(EventsRequest(events=[Event(user_id=1, type="like", ts=soon)])).accepted == 1
    with pytest.raises(BadRequestError) as err:
        app.events(EventsRequest(events=[Event(user_id=1, type="like", ts=later)]))
    assert err.value.http_status == 422 and err.value.field == "events.0.ts"
    assert app.carousel(CarouselRequest(user_id=1, stream_id=0, at=soon)).model_version
    with pytest.raises(BadRequestError, match="SLOTCAST_MAX_CLOCK_SKEW_S") as err:
        app.carousel(CarouselRequest(user_id=1, stream_id=0, at=later))
    assert err.value.field == "at"


def test_a_deleted_users_factors_are_zeroed_in_every_loaded_model(
    tables, tmp_path: Path, bundle_dir: Path, monkeypatch
) -> None:
    """Answers already ignore a deleted user; nothing learnt from them stays in serving's memory
    either: not in the worker that deleted, another worker (after its ledger refresh), nor a model
    loaded later (a restart, a reload)."""
    import serving.deletions as deletions
    from serving.adapters import DirModelSource, make_policy

    def app() -> SlotcastApp:
        return make_app(tables, tmp_path, DirModelSource(bundle_dir, make_policy(ServingSettings())))

    a, b = app(), app()
    als_ids = a._current()[0].als.users.ids
    gone, kept = (int(u) for u in als_ids[np.isin(als_ids, a.catalog.users.index)][:2])

    def row(x: SlotcastApp, user: int) -> np.ndarray:
        als = x._current()[0].als
        return als.user_factors[als.users.index_of(user)]

    kept_row = row(a, kept).copy()
    assert np.abs(row(a, gone)).max() > 0 and np.abs(row(b, gone)).max() > 0
    a.delete_user(gone)
    assert not row(a, gone).any()
    np.testing.assert_array_equal(row(a, kept), kept_row)
    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 0.0)
    assert b.is_deleted(gone) and not row(b, gone).any()
    assert not row(app(), gone).any()  # loaded after the deletion


class VersionedSource(FlakySource):
    """The registry: its champion's version is whatever ``version`` says now."""

    def __init__(self) -> None:
        super().__init__()
        self.version = "slotcast/1"

    def load(self, alias: str) -> Models:
        return dataclasses.replace(super().load(alias), version=self.version)


class CountingRegistry(FlakySource):
    """A registry that names an alias's version without loading it (as MLflow's does), and counts
    the bundles loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.current, self.loads, self.down = "slotcast/1", 0, False

    def version(self, alias: str) -> str:
        if self.down:
            raise ConnectionError("the registry does not answer")
        if alias != "champion":
            raise ModelUnavailableError(f"no model slotcast@{alias}")
        return self.current

    def load(self, alias: str) -> Models:
        self.loads += 1
        return dataclasses.replace(super().load(alias), version=self.current)


def test_a_reload_to_the_versions_serving_loads_no_bundle(tables, tmp_path: Path) -> None:
    """Every worker reloads on an announcement; each loaded the whole bundle even when the aliases
    still named the versions it served."""
    registry = CountingRegistry()
    app = make_app(tables, tmp_path, registry)
    assert registry.loads == 1
    r = app.reload()
    assert (r.model_version, r.reloaded, registry.loads) == ("slotcast/1", False, 1)
    registry.current = "slotcast/2"
    r = app.reload()
    assert (r.model_version, r.reloaded, registry.loads) == ("slotcast/2", True, 2)
    registry.down = True  # cannot tell the versions: load, and let the load say what is wrong
    r = app.reload()
    assert (r.model_version, r.reloaded, registry.loads) == ("slotcast/2", False, 3)


def test_a_reload_through_one_worker_reaches_the_others(tables, tmp_path: Path, monkeypatch) -> None:
    """Two workers share the state directory (and one port: a POST /admin/reload reaches only one
    of them). With two workers, four reloads all reached worker 1 and worker 2 kept serving the
    old champion; now the other worker follows within a second of its next request."""
    monkeypatch.setattr("serving.reload_signal.RELOAD_CHECK_S", 0.05)
    registry = VersionedSource()
    one, two = make_app(tables, tmp_path, registry), make_app(tables, tmp_path, registry)
    req = CarouselRequest(user_id=1, stream_id=0)
    assert one.carousel(req).model_version == two.carousel(req).model_version == "slotcast/1"
    registry.version = "slotcast/2"  # a second promotion
    assert one.admin_reload().model_version == "slotcast/2"
    deadline = time.monotonic() + 10
    while two.carousel(req).model_version != "slotcast/2":
        assert time.monotonic() < deadline, "the other worker never followed the reload"
        time.sleep(0.05)
    assert one.carousel(req).model_version == "slotcast/2"
    # A worker started later does not reload for an announcement made before it started.
    three = make_app(tables, tmp_path, registry)
    time.sleep(0.1)
    three.carousel(req)
    time.sleep(0.1)
    assert not three.reload_signal._running


def test_a_deletion_the_online_store_refuses_is_left_to_the_next_build(tables, tmp_path: Path) -> None:
    """The store down: the deletion is still answered (the ledger has it) and the user is written
    down for `features build`, which removes their rows (tests/features/test_privacy_ledger.py)."""
    from features.privacy import pending_online_deletions

    app = make_app(tables, tmp_path)

    def refuse(user_ids: list[int]) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    app.features.delete_users = refuse  # type: ignore[attr-defined]
    assert app.delete_user(3) == {"user_id": 3, "deleted": True}
    assert pending_online_deletions(tmp_path).user_ids() == {3}
    assert app.delete_users([4, 123456789, 5, 4]) == {"deleted": [4, 5], "unknown": [123456789]}
    assert pending_online_deletions(tmp_path).user_ids() == {3, 4, 5}
    assert DeletionLedger(tmp_path).user_ids() == {3, 4, 5}


def test_a_deletion_during_a_reload_is_forgotten_by_the_new_models(
    tables, tmp_path: Path, bundle_dir: Path, monkeypatch
) -> None:
    """A reload makes the new pair forget the deleted users, then swaps it in; a deletion recorded
    between the two made only the old pair forget (this worker's own deletion, so no ledger
    refresh would catch it later)."""
    import serving.model_reload as model_reload
    from serving.adapters import DirModelSource, make_policy

    class Versions:
        def __init__(self) -> None:
            self.inner, self.n = DirModelSource(bundle_dir, make_policy(ServingSettings())), 0

        def load(self, alias: str) -> Models:
            self.n += 1
            return Models(**{**self.inner.load(alias).__dict__, "version": f"v{self.n}"})

    app = make_app(tables, tmp_path, Versions())
    als_ids = app._current()[0].als.users.ids
    gone = int(als_ids[np.isin(als_ids, app.catalog.users.index)][0])
    forget, armed = model_reload.forget_users, [True]

    def forget_then_delete(models, ids):  # the reload's first call: a DELETE lands right after it
        forget(models, ids)
        if armed and ids == app.deleted.current() and len(models) == 2 and models[0] is not app._models[0]:
            armed.clear()
            app.delete_user(gone)

    monkeypatch.setattr(model_reload, "forget_users", forget_then_delete)
    assert app.reload().reloaded and not armed
    als = app._current()[0].als
    assert not als.user_factors[als.users.index_of(gone)].any()
