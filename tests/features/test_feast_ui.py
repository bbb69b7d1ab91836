"""`feast ui` serves the built repo, as on any Feast repo (issue 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from features.settings import FeatureSettings
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
# Importing Feast and building the UI app takes ~10 s on an idle machine, over 70 s on the shared
# 2-core box; the bound only stops a hung server from hanging the suite.
START_TIMEOUT_S = 150.0


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.integration
@pytest.mark.slow
def test_feast_ui_serves_the_repo(sqlite_store: FeatureSettings, tmp_path: Path) -> None:
    port = free_port()
    feast = Path(sys.executable).with_name("feast")
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen(
        [str(feast), "-c", str(REPO / "features"), "ui", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "SLOTCAST_STATE_DIR": str(sqlite_store.state_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill below takes any child with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, page = _get(base + "/")
                break
            except OSError:
                time.sleep(1.0)
        assert status == 200, (
            f"feast ui did not answer: exit {proc.poll()}\n{(tmp_path / 'ui.log').read_text()[-3000:]}"
        )
        assert b"<html" in page.lower()

        status, body = _get(base + "/projects-list.json")
        assert status == 200 and [p["id"] for p in json.loads(body)["projects"]] == ["slotcast"]
        status, body = _get(base + "/api/v1/feature_views?project=slotcast")
        assert status == 200
        views = {v["spec"]["name"] for v in json.loads(body)["featureViews"]}
        assert {
            "user_profile",
            "product_stats",
            "stream_live",
            "live_session",
            "user_category_affinity",
        } <= views
        status, body = _get(base + "/api/v1/feature_services?project=slotcast")
        assert status == 200
        assert {"ranker_v1", "serving_context_v1"} <= {
            s["spec"]["name"] for s in json.loads(body)["featureServices"]
        }
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
