"""Fixtures of the serving tests: the demo world (known answer: user u prefers category u % 6)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from starlette.testclient import TestClient

from serving.adapters import make_policy
from serving.catalog import Catalog
from serving.demo import DemoFeatureSource, DemoModelSource, demo_tables
from serving.impressions import ImpressionLog
from serving.pipeline import PipelineConfig, Recommender
from serving.settings import ServingSettings
from serving.sources import Models


@pytest.fixture(scope="session")
def tables() -> dict[str, pa.Table]:
    t = demo_tables(n_users=600, n_products=120, n_streams=3, per_stream=60, seed=1)
    # Tests push at fixed dates (quiet hours, New York's change of clocks in March 2026), and a push
    # of a product before its launch is refused: every product launched before them, not 100 days
    # before the run (tests/serving/test_launch.py sets its own launch times).
    products = t["products"]
    launch = pa.array(
        [datetime(2025, 1, 1, tzinfo=UTC)] * products.num_rows, products.schema.field("launch_ts").type
    )
    t["products"] = products.set_column(products.column_names.index("launch_ts"), "launch_ts", launch)
    return t


@pytest.fixture()
def world(tables: dict[str, pa.Table], tmp_path: Path) -> Iterator[dict[str, object]]:
    settings = ServingSettings(state_dir=tmp_path, model_source="demo", feature_source="demo", epsilon=0.0)
    source = DemoModelSource(600, 120, 0.0, 3, seed=1)
    models: dict[str, Models | None] = {"champion": source.load("champion"), "challenger": None}
    policy = make_policy(settings)
    models["champion"] = Models(**{**models["champion"].__dict__, "policy": policy})  # type: ignore[union-attr]
    features = DemoFeatureSource(tables)
    catalog = Catalog(tables)
    impressions = ImpressionLog(tmp_path / "impressions")
    deleted: set[int] = set()
    fallbacks: list[str] = []
    rec = Recommender(
        lambda: (models["champion"], models["challenger"]),  # type: ignore[arg-type,return-value]
        features, catalog, impressions, PipelineConfig(quiet_hours=(0, 0)),
        is_deleted=deleted.__contains__, on_fallback=fallbacks.append,
    )  # fmt: skip
    yield {
        "rec": rec, "features": features, "catalog": catalog, "deleted": deleted, "fallbacks": fallbacks,
        "models": models, "impressions": tmp_path / "impressions", "source": source, "policy": policy,
    }  # fmt: skip
    impressions.close()


def fit_bundle(
    tables: dict[str, pa.Table], out: Path, leave_out: object = (), params: dict[str, Any] | None = None
) -> Path:
    """A real models/ bundle (ALS + popularity) fitted on the demo events (but those of the users in
    ``leave_out``) and saved to ``out``."""
    from models.als import ALSCandidateGenerator, ALSConfig
    from models.bundle import Bundle
    from models.popularity import PopularityModel
    from models.vocab import IdVocab

    ev = tables["events"].to_pandas()
    ev = ev.loc[~ev["user_id"].isin(list(leave_out))]  # type: ignore[call-overload]
    users, items = IdVocab.from_values(ev["user_id"]), IdVocab.from_values(ev["product_id"])
    m = sp.csr_matrix(
        (np.ones(len(ev)), (users.index(ev["user_id"]), items.index(ev["product_id"]))),
        shape=(len(users), len(items)),
    )
    als = ALSCandidateGenerator(ALSConfig(factors=8, iterations=8, num_threads=1)).fit(m, users, items)
    pop = PopularityModel().fit(ev["product_id"].to_numpy())
    Bundle.create(als, pop, None, "ranker_v1", params=params).save(out)
    return out


@pytest.fixture(scope="session")
def bundle_dir(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real models/ bundle (ALS + popularity) fitted on the demo events and saved to disk."""
    return fit_bundle(tables, tmp_path_factory.mktemp("bundle"))


def with_ranker(bundle_dir: Path, out: Path, X: Any, y: Any, trees: int) -> Path:
    """The bundle of ``bundle_dir`` plus a small binary LightGBM ranker (``trees`` trees) fitted on
    ``X`` (the ranker_v1 feature columns) and ``y``, saved to ``out``."""
    from models.bundle import Bundle
    from models.ranker import LightGBMRanker, RankerConfig

    ranker = LightGBMRanker(RankerConfig(objective="binary", n_estimators=trees, num_threads=1)).fit(X, y)
    base = Bundle.load(Bundle.find(bundle_dir))
    Bundle.create(base.als, base.popularity, ranker, "ranker_v1").save(out)
    return out


TOKEN = "test-token-123"  # the admin token of the in-process service


@functools.cache
def _asgi_app() -> Any:
    """One ASGI app per process: its BentoML middleware registers metrics process-wide (a second
    app's are refused: duplicated timeseries). Each TestClient start builds a new service instance
    in it, reading the environment then, so one service runs at a time (``in_process_service``)."""
    from serving.service import Slotcast

    return Slotcast.to_asgi()


_running: list[Path] = []  # the state dir of the in-process service running now, if one is


@contextmanager
def in_process_service(state: Path, **settings: str) -> Iterator[TestClient]:
    """The BentoML service on the demo world, in-process: its ASGI app (the real routes, validation
    and error mapping) driven by starlette's TestClient; ``client.state_dir`` is its state dir.
    ``settings``: environment variables over the demo world's (SLOTCAST_MODEL_SOURCE="dir" ...)."""
    env = {
        "SLOTCAST_STATE_DIR": str(state), "SLOTCAST_MODEL_SOURCE": "demo", "SLOTCAST_FEATURE_SOURCE": "demo",
        "SLOTCAST_ADMIN_TOKEN": TOKEN, "SLOTCAST_DEMO_USERS": "500", "SLOTCAST_DEMO_PRODUCTS": "120",
    }  # fmt: skip
    if _running:  # a second start would replace the running one's service instance
        raise RuntimeError(f"an in-process service (state {_running[0]}) is running: one at a time")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**env, **settings}.items():
            mp.setenv(k, v)
        _running.append(state)
        try:
            with TestClient(_asgi_app()) as c:
                c.state_dir = state  # type: ignore[attr-defined]
                yield c
        finally:
            _running.clear()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with in_process_service(tmp_path_factory.mktemp("state")) as c:
        yield c
