"""A features build while the service runs, then one POST /admin/reload: against the real `bentoml
serve` with two workers and a Feast store, the stream the build scheduled is served by both
workers within a second of their next request. Before, it was a 404 from each until the service was
restarted."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.service_process import running_service
from tests.reliability.conftest import BASE_ENV, auth, from_both_workers, worker_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = 20  # a known, consenting user of the demo world


def _build(state: Path, tables: dict[str, pa.Table], without_stream: int | None = None) -> None:
    """The data directory's tables (less one stream), then `features build` on them (SQLite)."""
    from features.data_model import write_table
    from features.settings import FeatureSettings
    from features.store import build_feature_store

    for name, table in tables.items():
        if without_stream is not None and name in ("streams", "stream_products"):
            table = table.filter(pc.not_equal(table["stream_id"], without_stream))
        write_table(state / "data", name, table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(state / "data", FeatureSettings(state_dir=state))  # type: ignore[call-arg]


def test_a_features_build_reaches_both_workers_through_one_reload(
    tables: dict[str, pa.Table], ranked_bundle: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    stream = max(tables["streams"]["stream_id"].to_pylist())
    _build(state, tables, without_stream=stream)
    env: dict[str, Any] = {
        **BASE_ENV, "SLOTCAST_STATE_DIR": str(state), "SLOTCAST_MODEL_SOURCE": "dir",
        "SLOTCAST_BUNDLE_DIR": str(ranked_bundle), "SLOTCAST_FEATURE_SOURCE": "feast",
    }  # fmt: skip
    carousel = {"user_id": USER, "stream_id": stream, "k": 4}
    log = tmp_path / "service.log"
    with running_service(env=env, log_path=log, workers=2, ready_timeout=300) as base:
        for _ in range(8):  # whichever worker answers
            r = httpx.post(f"{base}/carousel", json=carousel, timeout=30)
            assert r.status_code == 404 and "stream" in r.text, r.text

        _build(state, tables)  # the build schedules the stream
        r = httpx.post(f"{base}/admin/reload", headers=auth(), timeout=120)
        assert r.status_code == 200 and r.json()["catalogue_reloaded"] is True, r.text
        # The other worker sees the announcement at its next request (at most once a second) and
        # reads the catalogue in the background, answering from the old one meanwhile.
        # Asked until both workers have answered 20 in a row with the stream, 404s before that
        # allowed: a worker's first request after the announcement may still get the old one.
        deadline, run = time.monotonic() + 30, []
        while len(run) < 20 or len({worker_of(state).get(i) for i in run}) < 2:
            assert time.monotonic() < deadline, f"both workers never served the stream: {len(run)} in a row"
            r = httpx.post(f"{base}/carousel", json=carousel, timeout=30)
            run = [*run, r.json()["request_id"]] if r.status_code == 200 else []
        answers = from_both_workers(base, state, "/carousel", carousel)  # every one a 200
        sp = tables["stream_products"]
        on_air = set(sp.filter(pc.equal(sp["stream_id"], stream))["product_id"].to_pylist())
        assert all(a["slots"] and {s["product_id"] for s in a["slots"]} <= on_air for a in answers)
    assert "Traceback" not in log.read_text()
