"""Fault: the Redis online store dies under load and comes back. The real server keeps answering
(flagged ``degraded``, never a 5xx) and recovers by itself, without a restart or a reload."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.service_process import running_service
from tests.reliability.conftest import LoadLoop, feast_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _carousel(c: httpx.Client, i: int) -> httpx.Response:
    return c.post("/carousel", json={"user_id": i % 500, "stream_id": i % 3, "k": 5})


@pytest.mark.xfail(
    strict=False,
    reason="issue #8, open: in some runs 1-2 of ~800 carousel answers during the Redis outage come back "
    "with 5 slots, no fallback and degraded=false (seen in CI 2026-11-23); cause not found yet. "
    "Every answer is still 200 and the service recovers by itself; the test still runs and reports.",
)
def test_redis_stopped_and_restarted_under_load(feast_world: dict[str, Any], tmp_path: Path) -> None:
    redis = feast_world["redis"]
    env = feast_env(feast_world)
    with (
        running_service(env=env, log_path=tmp_path / "service.log") as base,
        httpx.Client(base_url=base, timeout=60) as c,
    ):
        first = c.post("/carousel", json={"user_id": 8, "stream_id": 0, "k": 5})
        assert first.status_code == 200, first.text
        assert first.json()["degraded"] is False, "a healthy Redis must give a non-degraded answer"
        with LoadLoop(base, _carousel, threads=3, seconds=40) as load:
            time.sleep(3)
            redis.kill()
            t_down = time.monotonic()
            time.sleep(8)
            # While Redis is down the service says it is not ready (so a balancer can route away)
            # but still answers every carousel.
            down_ready = c.get("/readyz").status_code
            redis.start()
            t_up = time.monotonic()
            # Recovery without any action on the service: a non-degraded answer again.
            recovered = wait_until(
                lambda: (
                    c.post("/carousel", json={"user_id": 8, "stream_id": 0, "k": 5}).json()["degraded"]
                    is False
                ),
                timeout=20,
            )
            time.sleep(4)  # keep the load running on the recovered store
        assert recovered, "the service did not recover by itself within 20 s of Redis coming back"
        assert c.get("/readyz").status_code == 200
    res = load.result
    assert not res.errors, res.errors[:5]
    st = res.statuses()
    assert set(st) == {200}, f"statuses under the Redis fault: {st}"
    # Requests that started after Redis died and ended before it came back.
    during = [(b, sec) for t, _, b, sec in res.rows if t_down + 0.5 < t - sec and t < t_up]
    assert len(during) >= 10, f"only {len(during)} requests answered while Redis was down"
    unflagged = [(len(b["slots"]), b["fallback"]) for b, _ in during if not b["degraded"]]
    assert not unflagged, (
        f"{len(unflagged)} of {len(during)} answers with Redis down not flagged: {unflagged[:5]}"
    )
    assert all(len(b["slots"]) == 5 for b, _ in during)
    # A degraded answer must also be a fast one: a client waiting seconds per request is an outage.
    slow = sorted(sec for _, sec in during)
    assert slow[len(slow) // 2] < 0.5, f"median latency with Redis down: {slow[len(slow) // 2]:.2f} s"
    after = [(b, round(t - t_up, 2), round(sec, 2)) for t, _, b, sec in res.rows if t > t_up]
    assert len(after) >= 10 and not any(b["degraded"] for b, _, _ in after[-10:]), (
        f"the load did not see the recovery: {[(b['degraded'], t, sec) for b, t, sec in after]}"
    )
    assert down_ready == 503
    # No traceback from a request; (features.online_fast's background refresh thread does print one
    # while Redis is down: reported to the features owner, it keeps the old tables and recovers).
    log = (tmp_path / "service.log").read_text()
    assert "serving/" not in "".join(b for b in log.split("Traceback")[1:]), "a request raised"
