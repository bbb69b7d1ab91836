"""Issue 7: several BentoML workers share the Redis online store, the service keeping no per-user
state of its own. Against the real `bentoml serve` with two workers: a live event posted through
one worker changes the answers of both, and after DELETE /users/{id} no worker personalizes; pushes
sent, a community leave and a consent withdrawn through one worker are honoured by both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.service_process import running_service
from serving.deletions import DELETION_REFRESH_S
from tests.reliability.conftest import auth, feast_env, from_both_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A known, consenting user of the demo world (u % 7 != 3) with interactions but no live session
# (the demo events carry no stream), not one the other reliability tests delete (9).
USER, STREAM, PRODUCT = 20, 1, 5
CAROUSEL = {"user_id": USER, "stream_id": STREAM, "k": 5}


@pytest.fixture(scope="module")
def live_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The serving tests' ALS + popularity bundle with a ranker that reads the live session: its
    P(convert) is low while ``live_clicks`` is missing and high once the viewer has clicked, so
    every carousel answer shows whether its worker saw the pushed event."""
    import numpy as np
    import pandas as pd

    from features.retrieval import feature_names
    from models.bundle import Bundle
    from models.ranker import LightGBMRanker, RankerConfig

    names = feature_names("ranker_v1")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((400, len(names))), columns=names)
    clicked = rng.random(400) < 0.5
    X["live_clicks"] = np.where(clicked, rng.integers(1, 10, 400), np.nan)
    ranker = LightGBMRanker(RankerConfig(objective="binary", n_estimators=10, num_threads=1))
    ranker.fit(X, pd.Series(clicked.astype(int)))
    base = Bundle.load(Bundle.find(bundle_dir))
    d = tmp_path_factory.mktemp("live-bundle")
    Bundle.create(base.als, base.popularity, ranker, "ranker_v1").save(d)
    return d


def _p_convert(answers: list[dict[str, Any]]) -> list[float]:
    return [s["p_convert"] for a in answers for s in a["slots"]]


def test_two_workers_share_the_redis_online_store(
    feast_world: dict[str, Any], live_bundle: Path, tmp_path: Path
) -> None:
    world = {**feast_world, "bundle": live_bundle}
    state: Path = world["state"]
    # Two workers import Feast, BentoML and LightGBM side by side: 20-30 s idle, 110 s seen on the
    # shared 2-core box at load 9, hence more than the default 180 s to get ready.
    with running_service(
        env=feast_env(world), log_path=tmp_path / "service.log", workers=2, ready_timeout=300
    ) as base:
        before = from_both_workers(base, state, "/carousel", CAROUSEL)
        assert all(a["personalized"] and not a["degraded"] for a in before), before[:2]
        low = max(_p_convert(before))
        assert low < 0.5, "the user already has a live session: pick another"

        # One live event, through whichever worker takes it: pushed to Redis, nowhere else.
        clicks = [{"user_id": USER, "type": "product_click", "product_id": PRODUCT, "stream_id": STREAM}]
        r = httpx.post(f"{base}/events", json={"events": clicks * 3}, timeout=30)
        assert r.status_code == 200 and r.json() == {"accepted": 3, "online": True}, r.text
        after = from_both_workers(base, state, "/carousel", CAROUSEL)
        stale = [a["request_id"] for a in after if max(_p_convert([a])) <= low]
        assert not stale, f"{len(stale)} of {len(after)} answers did not see the pushed clicks"
        assert min(_p_convert(after)) > 0.5

        r = httpx.delete(f"{base}/users/{USER}", headers=auth(), timeout=30)
        assert r.status_code == 200 and r.json() == {"user_id": USER, "deleted": True}, r.text
        # The other worker learns of a deletion from the shared ledger within DELETION_REFRESH_S
        # (docs/serving.md); from then on no worker may personalize.
        time.sleep(DELETION_REFRESH_S + 0.5)
        gone = from_both_workers(base, state, "/carousel", CAROUSEL)
        personal = [a for a in gone if a["personalized"] or a["fallback"] != "deleted"]
        assert not personal, f"{len(personal)} of {len(gone)} answers after the deletion: {personal[:2]}"
        assert max(_p_convert(gone)) < 0.5, "a deleted user's live session still reached the ranker"

        # What a worker is told, every worker honours within a second: pushes sent (the frequency
        # cap, 2 a week), a community leave, a consent withdrawn. Each goes through one request.
        push = {"community_id": 1, "product_id": PRODUCT, "max_users": 10_000}
        audience = from_both_workers(base, state, "/community/push", push)[0]["users"]["user_id"]
        capped, leaving, opted_out = audience[0], audience[1], audience[2]
        sent = [{"user_id": capped, "type": "push_sent", "product_id": PRODUCT, "community_id": 1}] * 2
        left = [{"user_id": leaving, "type": "community_leave", "community_id": 1}]
        for events in (sent, left):
            r = httpx.post(f"{base}/events", json={"events": events}, timeout=30)
            assert r.status_code == 200, r.text
        r = httpx.put(
            f"{base}/users/{opted_out}/consent", json={"marketing": False}, headers=auth(), timeout=30
        )
        assert r.status_code == 200 and r.json()["marketing"] is False, r.text
        time.sleep(1.5)
        for answer in from_both_workers(base, state, "/community/push", push):
            users = set(answer["users"]["user_id"])
            assert not users & {capped, leaving, opted_out}, (
                answer["request_id"],
                users & {capped, leaving, opted_out},
            )
            assert len(users) == len(audience) - 3
