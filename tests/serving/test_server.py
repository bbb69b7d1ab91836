"""The real server: ``bentoml serve serving.service:Slotcast`` on a free loopback port, over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipelines.service_process import running_service
from serving.event_log import read_all
from serving.impressions import read_impressions

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_real_server_answers_and_keeps_what_it_accepted(tmp_path: Path) -> None:
    env = {
        "SLOTCAST_STATE_DIR": str(tmp_path), "SLOTCAST_MODEL_SOURCE": "demo", "SLOTCAST_FEATURE_SOURCE": "demo",
        "SLOTCAST_DEMO_USERS": "300", "SLOTCAST_DEMO_PRODUCTS": "100", "SLOTCAST_ADMIN_TOKEN": "s3cr3t-XYZ",
        "BENTOML_DO_NOT_TRACK": "true",
        # The thread pool path here (the in-process HTTP tests run the carousel on the event loop).
        "SLOTCAST_CAROUSEL_RUNS_ON": "thread",
    }  # fmt: skip
    with (
        running_service(env=env, log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base, timeout=30) as c,
    ):
        r = c.post("/carousel", json={"user_id": 4, "stream_id": 0, "k": 6})
        assert r.status_code == 200, r.text
        request_id = r.json()["request_id"]
        assert len(r.json()["slots"]) == 6
        assert c.post("/carousel", json={"user_id": 4, "k": 50}).status_code == 400
        assert c.post("/carousel", json={"user_id": 4, "stream_id": 77}).status_code == 404
        r = c.post(
            "/events", json={"events": [{"user_id": 4, "type": "purchase", "product_id": 9, "amount": 12.5}]}
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert c.post("/admin/reload").status_code == 401
        # A path no route can match (a newline) still gets a JSON reason, not BentoML's plain text.
        odd = c.get("/users/1%0A/data")
        assert odd.status_code == 400 and odd.json()["field"] == "path"
        assert c.post("/admin/reload", headers={"Authorization": "Bearer s3cr3t-XYZ"}).json()["reloaded"]
        assert c.get("/readyz").status_code == 200
        metrics = c.get("/metrics").text
        assert 'slotcast_request_seconds_bucket{endpoint="carousel"' in metrics
        assert 'slotcast_model_info{variant="champion"' in metrics
        assert c.get("/openapi.json").status_code == 200
    # The server is gone: what it acknowledged is on disk.
    assert [e["product_id"] for e in read_all(tmp_path / "serving" / "events")] == [9]
    # Its id carries BentoML's index of the worker that gave it (1: the only one), in the last digits.
    assert [e["event_id"] % 1000 for e in read_all(tmp_path / "serving" / "events")] == [1]
    assert request_id in {r["request_id"] for r in read_impressions(tmp_path / "serving" / "impressions")}
    log = (tmp_path / "service.log").read_text()
    assert "Traceback" not in log and "s3cr3t-XYZ" not in log
    assert "/carousel runs on the thread pool" in log
