"""Serving a real models/ bundle (ALS + popularity, saved and loaded from disk) on the demo world:
the events there say user u buys category u % 6, so the fitted ALS must lead with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.errors import IncompatibleBundleError
from serving.adapters import DirModelSource, make_policy
from serving.catalog import Catalog
from serving.demo import N_CATEGORIES, DemoFeatureSource
from serving.pipeline import PipelineConfig, Recommender
from serving.schemas import CarouselRequest
from serving.settings import ServingSettings


def test_a_real_bundle_serves_the_known_answer(tables, bundle_dir: Path) -> None:
    models = DirModelSource(bundle_dir, make_policy(ServingSettings(epsilon=0.0))).load("champion")
    assert models.version.startswith("dir-") and models.feature_service == "ranker_v1"
    catalog = Catalog(tables)
    rec = Recommender(lambda: (models, None), DemoFeatureSource(tables), catalog, None, PipelineConfig())
    hits = total = 0
    for user in range(0, 120, 5):
        if user % 7 == 3:
            continue
        out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=6))
        cats = [catalog.products.loc[s.product_id, "category"] for s in out.slots if s.reason == "ranked"]
        hits += sum(c == f"c{user % N_CATEGORIES}" for c in cats)
        total += len(cats)
    assert total and hits / total >= 0.4, f"{hits}/{total}"  # 3 of 6 at most (category cap); random 1/6


def test_a_corrupted_bundle_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    victim = next(p for p in broken.rglob("*.npz"))
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(IncompatibleBundleError):
        DirModelSource(broken, make_policy(ServingSettings())).load("champion")


def test_single_thread_ranker_gives_the_rankers_own_values() -> None:
    import pandas as pd

    from models.ranker import LightGBMRanker, RankerConfig
    from serving.adapters import SingleThreadRanker

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(600, 4)), columns=["a", "b", "als_score", "slot"])
    X.loc[::7, "slot"] = np.nan
    y = (X["a"] + rng.normal(size=600) > 0).astype(int)
    ranker = LightGBMRanker(RankerConfig(objective="binary", n_estimators=20, num_threads=1)).fit(X, y)
    fast = SingleThreadRanker(ranker)
    shuffled = X[["slot", "b", "a", "als_score"]].iloc[:50]  # column order must not matter
    np.testing.assert_allclose(fast.predict(shuffled), ranker.predict(shuffled), rtol=1e-12)
