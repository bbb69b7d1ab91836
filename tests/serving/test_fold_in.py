"""A user the model does not hold is folded in from the events they send: their next carousel is
personal, in every worker, and follows their taste (the demo world's user u prefers category
u % 6). Before, such a user got popularity (``cold_start``) until the next training run.

Not kept: the events of users without personalization consent, and of deleted users (dropped at once, and erased from the shared files by `slotcast privacy purge`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import serving.consents as consents
import serving.deletions as deletions
import serving.shared_events as shared_events
from features.privacy import DeletionLedger
from serving.adapters import DirModelSource, make_policy
from serving.catalog import Catalog
from serving.demo import N_CATEGORIES, DemoFeatureSource
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest, ConsentRequest, EventsRequest
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN, fit_bundle, in_process_service

WEIGHTS = {"product_click": 1.0, "add_to_cart": 3.0, "purchase": 8.0, "watch_log_scale": 0.5}
NEW = range(60)  # users of the users table the bundle's ALS was not fitted on
K = 6


@pytest.fixture(scope="module")
def new_users_bundle(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle fitted on the demo events of every user but ``NEW``, with training's weights."""
    return fit_bundle(tables, tmp_path_factory.mktemp("bundle"), NEW, {"event_weights": WEIGHTS})


def _app(tables: dict[str, pa.Table], state: Path, bundle: Path) -> SlotcastApp:
    settings = ServingSettings(
        state_dir=state, model_source="dir", bundle_dir=bundle, feature_source="demo", epsilon=0.0
    )
    app = SlotcastApp(settings, DirModelSource(bundle, make_policy(settings)), DemoFeatureSource(tables),
                      Catalog(tables), DeletionLedger(state))  # fmt: skip
    app.reload()
    return app


def _clicks(user: int, n: int = 4) -> EventsRequest:
    """``n`` clicks on products of the user's category (products off every stream too)."""
    products = [user % N_CATEGORIES + N_CATEGORIES * j for j in range(n)]
    return EventsRequest(
        events=[{"user_id": user, "type": "product_click", "product_id": p} for p in products]
    )


def _taste(app: SlotcastApp, user: int) -> tuple[float, str | None]:
    """(share of the k slots in the user's category, the answer's fallback) in stream 0."""
    r = app.carousel(CarouselRequest(user_id=user, stream_id=0, k=K))
    ids = [s.product_id for s in r.slots]
    return float(np.mean([p % N_CATEGORIES == user % N_CATEGORIES for p in ids])), r.fallback


def test_a_new_user_is_folded_in_from_their_events_in_every_worker(
    tables: dict[str, pa.Table], new_users_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)
    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 0.0)
    monkeypatch.setattr(consents, "CONSENT_REFRESH_S", 0.0)
    a, b = _app(tables, tmp_path, new_users_bundle), _app(tables, tmp_path, new_users_bundle)
    users = [u for u in NEW if u % 7 != 3][:30]  # every 7th user has no personalization consent
    before = [_taste(a, u) for u in users]
    assert {f for _, f in before} == {"cold_start"}
    for u in users:
        a.events(_clicks(u))  # through worker a
    after = [_taste(b, u) for u in users]  # answered by worker b
    assert {f for _, f in after} == {None}, after  # personal now, in the other worker too
    # Their factors rank their own category first: the top 10 of all 120 products.
    models = b._current()[0]
    top = [np.argsort(-models.als.score_vector(b.folded_in(models, u), np.arange(120)))[:10] for u in users]
    assert (
        np.mean([np.mean(t % N_CATEGORIES == u % N_CATEGORIES) for t, u in zip(top, users, strict=True)])
        >= 0.9
    )
    # The slots (after the slot policy's pinned slot and category spread) as a known user's are.
    known_share = np.mean([_taste(b, u)[0] for u in range(100, 160) if u % 7 != 3])
    share_before, share_after = np.mean([s for s, _ in before]), np.mean([s for s, _ in after])
    assert share_after >= max(known_share - 0.05, share_before + 0.15), (
        share_before,
        share_after,
        known_share,
    )

    # Not kept: a user without personalization consent (a user the model holds is kept:
    # tests/serving/test_fold_in_known.py).
    no_consent = next(u for u in NEW if u % 7 == 3)
    a.events(_clicks(no_consent))
    assert not a.fold_ins.events_of(no_consent) and not b.fold_ins.events_of(no_consent)
    assert _taste(b, no_consent)[1] == "no_consent"

    # A deletion drops the user's events in every worker; a withdrawal of consent ends the fold-in.
    gone, withdrew = users[0], users[1]
    assert len(a.fold_ins.events_of(gone)) == len(b.fold_ins.events_of(gone)) == 4
    assert len(a.fold_ins.events_of(withdrew)) == 4
    a.delete_user(gone)
    assert b.is_deleted(gone) and not a.fold_ins.events_of(gone) and not b.fold_ins.events_of(gone)
    assert _taste(b, gone)[1] == "deleted"
    assert len(b.fold_ins.events_of(withdrew)) == 4
    a.set_consent(withdrew, ConsentRequest(personalization=False))
    assert not a.fold_ins.events_of(withdrew) and _taste(b, withdrew)[1] == "no_consent"
    assert not b.fold_ins.events_of(withdrew)  # the other worker let them go too
    # Consent given back: what they sent before the withdrawal stays unused, in every worker (b kept
    # them in memory, and a new worker would have read them back from the shared files).
    a.set_consent(withdrew, ConsentRequest(personalization=True))
    fresh = _app(tables, tmp_path, new_users_bundle)
    for w in (a, b, fresh):
        assert not w.fold_ins.events_of(withdrew) and _taste(w, withdrew)[1] == "cold_start"
    a.events(_clicks(withdrew, n=2))  # sent after consent came back: folded in again
    assert len(b.fold_ins.events_of(withdrew)) == 2 and _taste(b, withdrew)[1] is None

    # A worker started later reads the events kept so far.
    c = _app(tables, tmp_path, new_users_bundle)
    assert _taste(c, users[2]) == after[2]


def test_over_http_and_erased_by_the_purge(
    tables: dict[str, pa.Table], new_users_bundle: Path, tmp_path: Path
) -> None:
    from features.data_model import write_table
    from pipelines.cli import main

    state = tmp_path / "state"
    for name, table in tables.items():  # the data directory a bundle-serving service reads
        write_table(state / "data", name, table)
    user = 8  # in NEW, consenting
    env = {
        "SLOTCAST_MODEL_SOURCE": "dir",
        "SLOTCAST_BUNDLE_DIR": str(new_users_bundle),
        "SLOTCAST_EPSILON": "0",
    }
    with in_process_service(state, **env) as client:
        ask = {"user_id": user, "stream_id": 0, "k": K}
        first = client.post("/carousel", json=ask).json()
        assert first["fallback"] == "cold_start" and first["personalized"] is False
        events = [e.model_dump(mode="json", exclude_none=True) for e in _clicks(user).events]
        assert client.post("/events", json={"events": events}).json()["accepted"] == 4
        second = client.post("/carousel", json=ask).json()
        assert second["personalized"] is True and second["fallback"] is None, second
        assert {s["reason"] for s in second["slots"]} <= {"ranked", "pinned"}

        auth = {"Authorization": f"Bearer {TOKEN}"}
        held = client.get(f"/users/{user}/data", headers=auth).json()["fold_in_events"]  # the right of access
        assert [(e["product_id"], e["type"]) for e in held] == [
            (e["product_id"], "product_click") for e in events
        ]
        files = sorted((state / "serving" / "fold_in").rglob("*.jsonl"))
        lines = [json.loads(x) for f in files for x in f.read_text().splitlines() if x.strip()]
        assert [x["user_id"] for x in lines] == [user] * 4
        r = client.delete(f"/users/{user}", headers=auth)
        assert r.status_code == 200, r.text
        assert main(["privacy", "purge"]) == 0
        assert not [x for f in files for x in f.read_text().splitlines() if x.strip()]
        assert client.post("/carousel", json=ask).json()["fallback"] == "deleted"
        assert client.get(f"/users/{user}/data", headers=auth).json()["fold_in_events"] == []
