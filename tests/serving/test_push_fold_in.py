"""Push folds in users the model does not hold, as the carousel does (tests/serving/test_fold_in.py).

Users of the demo world's segment "new" had no event when the bundle was fitted, so its ALS does
not hold them. Once they send events, the users direction ranks them by the factors folded in from
those events (the demo world's user u likes category u % 6), and the products direction counts
them in their audience's mean affinity. Before, both directions scored them as unknown (p_convert
0) until the next training run. A deleted user, or one who withdrew personalization consent, is
never scored by their own factors, also in a worker that still holds their events."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from starlette.testclient import TestClient

import serving.consents as consents
import serving.deletions as deletions
import serving.shared_events as shared_events
from serving.catalog import Catalog
from serving.demo import N_CATEGORIES
from serving.schemas import ConsentRequest, PushRequest
from tests.serving.conftest import TOKEN, fit_bundle, in_process_service
from tests.serving.test_fold_in import WEIGHTS, _app, _clicks

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRODUCT = 4  # category c4, in stock, known to the model
CAMPAIGN = [6, 1, 2, 3, 4, 5]  # one product per category; CAMPAIGN[c] is of category c


@pytest.fixture(scope="module")
def bundle(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real bundle fitted on every demo event, with training's weights."""
    return fit_bundle(tables, tmp_path_factory.mktemp("bundle"), (), {"event_weights": WEIGHTS})


@pytest.fixture(scope="module")
def new(tables: dict[str, pa.Table]) -> np.ndarray:
    """The users of the segment "new" (no event in the tables) with both consents."""
    users = Catalog(tables).segment_members["new"]
    return users[(users % 7 != 3) & (users % 5 != 4)]


def _service(tables: dict[str, pa.Table], state: Path, bundle: Path) -> AbstractContextManager[TestClient]:
    from features.data_model import write_table

    for name, table in tables.items():  # the data directory a bundle-serving service reads
        write_table(state / "data", name, table)
    env = {"SLOTCAST_MODEL_SOURCE": "dir", "SLOTCAST_BUNDLE_DIR": str(bundle), "SLOTCAST_EPSILON": "0"}
    return in_process_service(state, **env)


def _post_clicks(client: TestClient, users: Any, category: int | None = None) -> None:
    """Four clicks each on products of the user's category (of ``category`` when given)."""
    events = [
        {"user_id": int(u), "type": "product_click", "product_id": e.product_id}
        for u in users
        for e in _clicks(int(u) if category is None else category).events
    ]
    r = client.post("/events", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def _users(client: TestClient, **req: Any) -> dict[str, Any]:
    r = client.post("/community/push", json={"community_id": 1, "max_users": 10**6, **req})
    assert r.status_code == 200, r.text
    return r.json()["users"]


def test_the_users_direction_ranks_a_folded_in_member_by_their_taste(
    tables: dict[str, pa.Table], bundle: Path, new: np.ndarray, tmp_path: Path
) -> None:
    members = new[new % 3 == 1]  # community 1's: they like category c1 or c4
    folded, cold = members[::2], members[1::2]
    with _service(tables, tmp_path, bundle) as client:
        before = _users(client, product_id=PRODUCT)
        p = dict(zip(before["user_id"], before["p_convert"], strict=True))
        assert {p[int(u)] for u in members} == {0.0}  # scored as unknown

        _post_clicks(client, folded)
        after = _users(client, product_id=PRODUCT)
        rank = {u: i for i, u in enumerate(after["user_id"])}
        likes = [int(u) for u in folded if u % N_CATEGORIES == PRODUCT % N_CATEGORIES]
        others = [int(u) for u in folded if u % N_CATEGORIES != PRODUCT % N_CATEGORIES]
        assert likes and others
        # Known answer: a folded-in member who likes the product's category comes before every one
        # who does not, and before every member still unknown to the model.
        assert max(rank[u] for u in likes) < min(rank[u] for u in others), (likes, others, rank)
        assert max(rank[u] for u in likes) < min(rank[int(u)] for u in cold)
        # And among the members the model holds who like it: above the middle of them.
        held = [u for u in after["user_id"] if u not in set(members.tolist())]
        liking = sorted(rank[u] for u in held if u % N_CATEGORIES == PRODUCT % N_CATEGORIES)
        assert max(rank[u] for u in likes) < liking[len(liking) // 2], (likes, liking)

        # The product chosen for each of them is the one of their category.
        campaign = _users(client, campaign_products=CAMPAIGN)
        chosen = dict(zip(campaign["user_id"], campaign["product_id"], strict=True))
        assert [chosen[int(u)] for u in folded] == [CAMPAIGN[u % N_CATEGORIES] for u in folded]

        # A deleted one is out; one who withdrew personalization consent is ranked as every member
        # without it: not by their own factors.
        gone, withdrew = likes[0], likes[1]
        assert client.delete(f"/users/{gone}", headers=AUTH).status_code == 200
        r = client.put(f"/users/{withdrew}/consent", json={"personalization": False}, headers=AUTH)
        assert r.status_code == 200, r.text
        last = _users(client, product_id=PRODUCT)
        row = {u: i for i, u in enumerate(last["user_id"])}
        assert gone not in row
        assert last["personalized"][row[withdrew]] is False
        no_consent = [i for i, ok in enumerate(last["personalized"]) if not ok]
        assert {last["p_convert"][i] for i in no_consent} == {last["p_convert"][row[withdrew]]}


def test_the_products_direction_counts_folded_in_members(
    tables: dict[str, pa.Table], bundle: Path, new: np.ndarray, tmp_path: Path
) -> None:
    category = 3
    with _service(tables, tmp_path, bundle) as client:

        def best() -> list[dict[str, Any]]:
            r = client.post("/community/push", json={"segment": "new", "k": 20})
            assert r.status_code == 200, r.text
            return r.json()["products"]

        assert {p["p_convert"] for p in best()} == {0.0}  # nobody in it the model holds
        _post_clicks(client, new, category)  # all in one category, whatever their own taste
        got = best()
        # Known answer: the products of their category have the highest p_convert (the order by
        # expected value mixes in price and margin).
        theirs = [p["p_convert"] for p in got if p["product_id"] % N_CATEGORIES == category]
        rest = [p["p_convert"] for p in got if p["product_id"] % N_CATEGORIES != category]
        assert len(theirs) >= 3 and min(theirs) > max(rest) > 0, got
        # Deleted or withdrawn, nobody is left whose factors may be read.
        half = len(new) // 2
        assert client.post("/users/delete", json={"user_ids": new[:half].tolist()}, headers=AUTH).is_success
        for u in new[half:]:
            client.put(f"/users/{int(u)}/consent", json={"personalization": False}, headers=AUTH)
        assert {p["p_convert"] for p in best()} == {0.0}


def test_another_worker_does_not_push_by_a_withdrawn_users_events(
    tables: dict[str, pa.Table],
    bundle: Path,
    new: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consent withdrawal drops the user's events in the worker that takes it, and in another
    worker at its next read of the consent ledger (it kept them before); either way that worker
    must not push by them."""
    monkeypatch.setattr(shared_events, "SHARED_REFRESH_S", 0.0)
    monkeypatch.setattr(deletions, "DELETION_REFRESH_S", 0.0)
    monkeypatch.setattr(consents, "CONSENT_REFRESH_S", 0.0)
    a, b = _app(tables, tmp_path, bundle), _app(tables, tmp_path, bundle)
    user = int(next(u for u in new if u % 3 == 1 and u % N_CATEGORIES == PRODUCT % N_CATEGORIES))
    a.events(_clicks(user))
    ask = PushRequest(community_id=1, product_id=PRODUCT, max_users=10**6)
    scored = b.push(ask).users
    assert scored.p_convert[scored.user_id.index(user)] > 0  # folded in, in worker b too
    alone = PushRequest(segment="new", k=5)
    assert max(p.p_convert for p in b.push(alone).products) > 0  # the only one folded in

    a.set_consent(user, ConsentRequest(personalization=False))
    out = b.push(ask).users
    assert not a.fold_ins.events_of(user) and not b.fold_ins.events_of(user)  # b let them go too
    i = out.user_id.index(user)
    assert out.personalized[i] is False
    assert {p for p, ok in zip(out.p_convert, out.personalized, strict=True) if not ok} == {out.p_convert[i]}
    assert {p.p_convert for p in b.push(alone).products} == {0.0}
