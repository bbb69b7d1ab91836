"""Fixtures of the reliability tests: a redis-server this test can stop and restart, a real
Feast store (Redis online store) over the serving tests' demo world and bundle, and a bounded
load loop over real HTTP."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from serving.settings import ServingSettings
from tests.conftest import RedisProc, started_redis
from tests.serving.conftest import bundle_dir, tables, with_ranker  # noqa: F401 - fixtures reused, not copied

TOKEN = "rel-T0ken-9f8e7d"  # the admin token of every test server here; must never reach a log
BASE_ENV = {"BENTOML_DO_NOT_TRACK": "true", "SLOTCAST_ADMIN_TOKEN": TOKEN, "SLOTCAST_EPSILON": "0"}


def demo_env(state: Path, **extra: str) -> dict[str, str]:
    """A server on the built-in demo world (no Feast, no MLflow): the fastest real server."""
    return {
        **BASE_ENV, "SLOTCAST_STATE_DIR": str(state), "SLOTCAST_MODEL_SOURCE": "demo",
        "SLOTCAST_FEATURE_SOURCE": "demo", "SLOTCAST_DEMO_USERS": "300", "SLOTCAST_DEMO_PRODUCTS": "100",
        **extra,
    }  # fmt: skip


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    with started_redis(tmp_path_factory.mktemp("redis-rel")) as r:
        yield r


@pytest.fixture(scope="session")
def ranked_bundle(bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The serving tests' ALS + popularity bundle plus a small LightGBM ranker over the ranker_v1
    feature service, so that every carousel reads the online store (a bundle without a ranker
    never does, and would hide an online-store outage)."""
    import numpy as np
    import pandas as pd

    from features.retrieval import feature_names

    names = feature_names("ranker_v1")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((400, len(names))), columns=names)
    y = (X[names[0]] + 0.3 * rng.random(400) > 0.6).astype(int)
    return with_ranker(bundle_dir, tmp_path_factory.mktemp("ranked-bundle"), X, y, trees=10)


@pytest.fixture(scope="session")
def feast_world(
    tables: dict[str, pa.Table],  # noqa: F811
    ranked_bundle: Path,
    redis_proc: RedisProc,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """State dir with the demo world's canonical tables under data/ and a Feast store built from
    them into Redis; the bundle is the serving tests' ALS + popularity fitted on the same events."""
    from features.data_model import write_table
    from features.settings import FeatureSettings
    from features.store import build_feature_store

    state = tmp_path_factory.mktemp("state-feast")
    for name, t in tables.items():
        write_table(state / "data", name, t)
    settings = FeatureSettings(state_dir=state, online_store="redis", redis_url=redis_proc.url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(state / "data", settings)
    return {"state": state, "bundle": ranked_bundle, "redis": redis_proc}


def feast_env(world: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        **BASE_ENV, "SLOTCAST_STATE_DIR": str(world["state"]), "SLOTCAST_MODEL_SOURCE": "dir",
        "SLOTCAST_BUNDLE_DIR": str(world["bundle"]), "SLOTCAST_FEATURE_SOURCE": "feast",
        "SLOTCAST_ONLINE_STORE": "redis", "SLOTCAST_REDIS_URL": world["redis"].url, **extra,
    }  # fmt: skip


@dataclass
class LoadResult:
    """What a load loop saw: (monotonic end time, status, json body or None, seconds) per request."""

    rows: list[tuple[float, int, Any, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # transport errors (no HTTP answer at all)

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for _, s, _, _ in self.rows:
            out[s] = out.get(s, 0) + 1
        return out


class LoadLoop:
    """``threads`` closed-loop clients calling ``request(client, i)`` until stopped, at most
    ``seconds`` and ``max_requests`` in all: bounded in time and count, stops by itself."""

    def __init__(
        self,
        base: str,
        request: Callable[[httpx.Client, int], httpx.Response],
        threads: int = 3,
        seconds: float = 20.0,
        max_requests: int = 20_000,
    ) -> None:
        self.base, self.request, self.n, self.seconds, self.max = (
            base,
            request,
            threads,
            seconds,
            max_requests,
        )
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._threads: list[threading.Thread] = []

    def _worker(self, k: int) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.base, timeout=30) as c:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self._count >= self.max:
                        return
                    self._count += 1
                    i = self._count
                t0 = time.monotonic()
                try:
                    r = self.request(c, i)
                    body = (
                        r.json() if r.headers.get("content-type", "").startswith("application/json") else None
                    )
                    row = (time.monotonic(), r.status_code, body, time.monotonic() - t0)
                    with self._lock:
                        self.result.rows.append(row)
                except (httpx.HTTPError, ValueError) as exc:
                    with self._lock:
                        self.result.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> LoadLoop:
        self._threads = [threading.Thread(target=self._worker, args=(k,), daemon=True) for k in range(self.n)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.seconds + 35)


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


MAX_REQUESTS = 240  # per phase: enough for both workers to answer, bounded if one never does


def worker_of(state: Path) -> dict[str, str]:
    """request_id -> the pid of the worker that answered, from the impression log: each worker
    writes its own files, named with its pid, before it answers."""
    out: dict[str, str] = {}
    for path in ServingSettings(state_dir=state).impressions_dir.glob("impressions-*.jsonl"):  # type: ignore[call-arg]
        pid = path.name.split("-")[2]
        for line in path.read_text().splitlines():
            if line.endswith("}"):
                out[json.loads(line)["request_id"]] = pid
    return out


def from_both_workers(base: str, state: Path, route: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Concurrent POSTs of ``body`` to ``route``, each on a new connection, until both workers
    have answered (bounded by MAX_REQUESTS)."""

    def one(_: int) -> dict[str, Any]:
        r = httpx.post(f"{base}{route}", json=body, timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())

    answers: list[dict[str, Any]] = []
    pids: set[str] = set()
    with ThreadPoolExecutor(4) as pool:
        while len(pids) < 2 and len(answers) < MAX_REQUESTS:
            answers += pool.map(one, range(16))
            worker = worker_of(state)
            pids = {worker[a["request_id"]] for a in answers}
    assert len(pids) == 2, f"only worker(s) {pids} answered {len(answers)} requests to {route}"
    return answers
