"""A user the model holds has the events they send since training folded into their factors, on top
of their training history (the bundle's ``als/history.npz``): their next carousel and their push
score follow what they do now. Before, a known user kept their trained factors until the next run.

The demo world's user u likes category u % 6; here known users turn to another category and click
its products. Events older than the model's history are not counted twice, and a bundle without
history (``keep_history`` off) leaves its known users as trained (their events are not kept)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import serving.shared_events as shared_events
from models.bundle import Bundle
from serving.catalog import Catalog
from serving.demo import N_CATEGORIES, demo_tables
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest, EventsRequest
from tests.serving.conftest import TOKEN, fit_bundle
from tests.serving.test_fold_in import WEIGHTS, _app
from tests.serving.test_push_fold_in import _service, _users

K = 6
# The products on air in stream 0 of the demo world the serving tests share (tests/serving/conftest.py).
_SP = demo_tables(n_users=600, n_products=120, n_streams=3, per_stream=60, seed=1)["stream_products"]
STREAM0 = np.asarray(_SP.filter(pc.equal(_SP["stream_id"], 0))["product_id"].to_numpy(), np.int64)
PRODUCT = 4  # of category c4


def _turn(user: int) -> int:
    """The category a user turns to: not theirs."""
    return (user % N_CATEGORIES + 3) % N_CATEGORIES


def _clicks(user: int, category: int, ts: datetime | None = None, rounds: int = 3) -> EventsRequest:
    """Clicks and carts on eight products of ``category``, on air in stream 0 first, ``rounds`` times."""
    on_air = STREAM0[category == STREAM0 % N_CATEGORIES]
    products = [*on_air, *(p for p in range(category, 120, N_CATEGORIES) if p not in on_air)][:8]
    events = [
        {"user_id": user, "type": t, "product_id": int(p), **({"ts": ts} if ts else {})}
        for _ in range(rounds)
        for p in products
        for t in ("product_click", "add_to_cart")
    ]
    return EventsRequest(events=events)


def _share(app: SlotcastApp, user: int, category: int) -> tuple[float, str | None]:
    """(share of the carousel's k slots in ``category``, the answer's fallback), in stream 0."""
    r = app.carousel(CarouselRequest(user_id=user, stream_id=0, k=K))
    return float(np.mean([s.product_id % N_CATEGORIES == category for s in r.slots])), r.fallback


@pytest.fixture(scope="module")
def known(tables: dict[str, pa.Table]) -> list[int]:
    """Users with events in the tables (so the bundle holds them) and both consents."""
    catalog = Catalog(tables)
    users = np.unique(tables["events"].column("user_id").to_numpy())
    return [int(u) for u in users if catalog.consent(int(u)) == (True, True)][:60]


@pytest.fixture(scope="module")
def bundle(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fit_bundle(tables, tmp_path_factory.mktemp("bundle"), (), {"event_weights": WEIGHTS})


def _with(bundle: Path, out: Path, **change: object) -> Path:
    """A copy of ``bundle`` with its ALS's history changed (``until_us``) or gone (``history=None``)."""
    b = Bundle.load(bundle)
    if "until_us" in change:
        assert b.als.history is not None
        b.als.history.until_us = int(change["until_us"])  # type: ignore[call-overload]
    if "history" in change:
        b.als.history = None
    b.save(out)
    return out


def test_a_known_users_new_events_turn_their_carousel(
    tables: dict[str, pa.Table],
    bundle: Path,
    known: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)
    a, b = _app(tables, tmp_path, bundle), _app(tables, tmp_path, bundle)
    models = a._current()[0]
    assert models.als.history is not None and all(models.als.users.index_of(u) >= 0 for u in known)
    before = [_share(a, u, _turn(u)) for u in known]
    assert {f for _, f in before} == {None}  # personal, from the trained factors
    for u in known:
        a.events(_clicks(u, _turn(u)))
    after = [_share(b, u, _turn(u)) for u in known]  # worker b, through the shared files
    assert {f for _, f in after} == {None}
    share_before, share_after = np.mean([s for s, _ in before]), np.mean([s for s, _ in after])
    assert share_after >= share_before + 0.2, (share_before, share_after)
    # Their history still counts: the factors are not those of the new events alone.
    u = known[0]
    own = np.arange(u % N_CATEGORIES, 120, N_CATEGORIES)
    with_history = b.folded_in(models, u)
    assert with_history is not None
    alone = models.als.user_vector(*_weighted(b, u), user_id=None)
    assert models.als.score_vector(with_history, own).mean() > models.als.score_vector(alone, own).mean()


def _weighted(app: SlotcastApp, user: int) -> tuple[np.ndarray, np.ndarray]:
    from serving.fold_in import confidences

    held = app.fold_ins.events_of(user)
    conf = confidences([e["type"] for e in held], np.zeros(len(held)), WEIGHTS)
    return np.array([e["product_id"] for e in held]), conf


def test_events_the_model_was_fitted_on_are_not_counted_twice(
    tables: dict[str, pa.Table], bundle: Path, known: list[int], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    fitted_until = _with(
        bundle, tmp_path / "until", until_us=int((now - timedelta(hours=1)).timestamp() * 1e6)
    )
    app = _app(tables, tmp_path / "state", fitted_until)
    u = known[1]
    before = app.carousel(CarouselRequest(user_id=u, stream_id=0, k=K)).slots
    app.events(_clicks(u, _turn(u), ts=now - timedelta(hours=2)))  # older than the model's history
    assert app.fold_ins.events_of(u)  # kept (a later model may be older) but not folded in
    assert app.folded_in(app._current()[0], u) is None
    assert app.carousel(CarouselRequest(user_id=u, stream_id=0, k=K)).slots == before
    app.events(_clicks(u, _turn(u)))  # now: newer than the history
    assert app.folded_in(app._current()[0], u) is not None
    assert _share(app, u, _turn(u))[0] > np.mean([s.product_id % N_CATEGORIES == _turn(u) for s in before])


def test_a_bundle_without_history_keeps_known_users_as_trained(
    tables: dict[str, pa.Table], bundle: Path, known: list[int], tmp_path: Path
) -> None:
    bare = _with(bundle, tmp_path / "bare", history=None)
    app = _app(tables, tmp_path / "state", bare)
    u = known[2]
    before = app.carousel(CarouselRequest(user_id=u, stream_id=0, k=K)).slots
    app.events(_clicks(u, _turn(u)))
    assert not app.fold_ins.events_of(u)
    assert app.carousel(CarouselRequest(user_id=u, stream_id=0, k=K)).slots == before


def test_over_http_the_carousel_and_push_follow_a_known_user(
    tables: dict[str, pa.Table], bundle: Path, known: list[int], tmp_path: Path
) -> None:
    # Members of community 1 (users u % 3 == 1) who do not like PRODUCT's category turn to it.
    turners = [u for u in known if u % 3 == 1 and u % N_CATEGORIES != PRODUCT % N_CATEGORIES][:12]
    with _service(tables, tmp_path, bundle) as client:
        ask = {"stream_id": 0, "k": K}
        first = {u: client.post("/carousel", json={"user_id": u, **ask}).json() for u in turners}
        push_before = _users(client, product_id=PRODUCT)
        p0 = dict(zip(push_before["user_id"], push_before["p_convert"], strict=True))
        events = [
            e.model_dump(mode="json", exclude_none=True)
            for u in turners
            for e in _clicks(u, PRODUCT % N_CATEGORIES).events
        ]
        r = client.post("/events", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
        second = {u: client.post("/carousel", json={"user_id": u, **ask}).json() for u in turners}
        assert all(s["personalized"] and s["fallback"] is None for s in second.values())

        def share(answers: dict[int, dict[str, object]]) -> float:
            return float(np.mean([
                s["product_id"] % N_CATEGORIES == PRODUCT % N_CATEGORIES  # type: ignore[index]
                for a in answers.values() for s in a["slots"]  # type: ignore[attr-defined]
            ]))  # fmt: skip

        assert share(second) >= share(first) + 0.2, (share(first), share(second))
        # Push to PRODUCT's buyers: every one of them moved up.
        push_after = _users(client, product_id=PRODUCT)
        p1 = dict(zip(push_after["user_id"], push_after["p_convert"], strict=True))
        assert all(p1[u] > p0[u] for u in turners), [(p0[u], p1[u]) for u in turners]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        held = client.get(f"/users/{turners[0]}/data", headers=auth).json()["fold_in_events"]
        assert len(held) == len(_clicks(turners[0], 0).events)


def test_a_user_keeps_their_latest_events_and_the_factors_follow_them(bundle: Path, known: list[int]) -> None:
    from serving.fold_in import FoldIns

    als = Bundle.load(bundle).als
    store = FoldIns(None, max_users=10, max_events=4)
    u = known[0]
    products = [0, 6, 12, 18, 1, 7, 13, 19]  # four of category c0, then four of c1
    events = [
        {"event_id": i + 1, "type": "product_click", "user_id": u, "product_id": p, "ts_us": 1}
        for i, p in enumerate(products)
    ]
    store.take(events[:4], lambda _u: True)
    first = store.vector(als, WEIGHTS, u)
    store.take(events[4:], lambda _u: True)
    assert [e["product_id"] for e in store.events_of(u)] == products[4:]  # the latest four
    latest = store.vector(als, WEIGHTS, u)  # computed again, not the cached one
    assert first is not None and latest is not None and not np.allclose(first, latest)
    expect = als.user_vector(products[4:], np.ones(4), user_id=u, history_weight=store.history_weight)
    np.testing.assert_allclose(latest, expect, rtol=1e-5)  # type: ignore[arg-type]


def test_which_users_have_events_kept_follows_takes_drops_and_evictions() -> None:
    from serving.fold_in import FoldIns

    store = FoldIns(None, max_users=50, max_events=2)
    rng = np.random.default_rng(3)
    users = rng.choice(10_000, 80, replace=False)
    ask = np.concatenate([users, rng.integers(0, 10_000, 200)])

    def take(us: np.ndarray) -> None:
        store.take(
            [{"user_id": int(u), "type": "product_click", "product_id": 1} for u in us], lambda _u: True
        )

    take(users[:30])
    assert (store.held(ask) == np.isin(ask, users[:30])).all()
    store.drop(users[:5])
    assert (store.held(ask) == np.isin(ask, users[5:30])).all()
    take(users[30:])  # 75 users for 50 places: the 25 least recently active go
    assert (store.held(ask) == np.isin(ask, users[30:])).all()
    assert not FoldIns(None).held(ask).any()
