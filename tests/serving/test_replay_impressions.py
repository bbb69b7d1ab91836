"""An answer to a request with ``at`` (a replay: a past campaign, a simulated world) is marked
``"replay": true`` in the impression log, and ``slotcast evaluate --service-log`` leaves it out: no
user was shown it, so the events after it are no reward for it. Before, a replay's line could be
told from a real one only by its past ``ts``, and evaluation counted it as shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from serving.impressions import read_impressions
from tests.serving.conftest import in_process_service
from training.evaluation.logs import impressions_from_service


def test_answers_to_requests_with_at_are_logged_as_replays(tmp_path: Path) -> None:
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()  # the demo's streams are on air
    asks = [
        ("/carousel", {"user_id": 3, "stream_id": 0, "k": 4}),
        ("/community/push", {"community_id": 0, "product_id": 5, "max_users": 5}),
        ("/community/push", {"segment": "buyer", "k": 3}),
    ]
    with in_process_service(tmp_path) as c:
        replay = {}
        for path, body in asks:
            for with_at in (False, True):
                r = c.post(path, json={**body, **({"at": at} if with_at else {})})
                assert r.status_code == 200, r.text
                replay[r.json()["request_id"]] = with_at
        logged = {r["request_id"]: r for r in read_impressions(tmp_path / "serving" / "impressions")}
    assert set(replay) <= set(logged)
    assert {rid: logged[rid]["replay"] for rid in replay} == replay
    assert sorted(logged[rid]["kind"] for rid in replay if replay[rid]) == ["carousel", "push", "push"]


def test_evaluation_leaves_replayed_carousels_out_and_counts_them() -> None:
    t0 = pd.Timestamp("2026-01-01T12:00:00", tz="UTC")

    def record(i: int, **over: object) -> dict[str, object]:
        return {
            "kind": "carousel", "request_id": f"r{i}", "ts": (t0 + pd.Timedelta(minutes=i)).isoformat(),
            "user_id": i, "stream_id": 7, "items": [10, 11], "slots": [0, 1], "propensities": [0.9, 0.1],
            "variant": "champion", **over,
        }  # fmt: skip

    events = pd.DataFrame(
        {"ts": [t0 + pd.Timedelta(hours=1)], "user_id": [1], "type": ["purchase"], "product_id": [11]}
    )
    records = [record(0), record(1, replay=True), record(2, replay=False), record(3, replay=True)]
    imp = impressions_from_service(records, events)
    assert sorted(imp["request_id"].unique()) == ["r0", "r2"]  # lines of older versions have no flag
    assert imp.attrs["replayed_records"] == 2 and imp.attrs["malformed_records"] == 0
    assert not imp["purchased"].any()  # user 1's purchase followed a replay nobody saw
    only = impressions_from_service([record(1, replay=True)], events)
    assert only.empty and only.attrs["replayed_records"] == 1
