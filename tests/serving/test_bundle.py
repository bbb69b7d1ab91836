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


def test_serving_gives_a_popularity_boosted_ranker_the_bundles_popularity(
    tables, bundle_dir: Path, tmp_path: Path
) -> None:
    """A ranker trained on ``popularity_score`` (and boosted from it) gets it in serving from the
    bundle's own popularity model, as training built it: the answer's p_convert is the ranker's
    value on (als_score, the bundle popularity's relative_log_score), not a value on a missing column."""
    import pandas as pd

    from models.bundle import Bundle
    from models.popularity import RANKER_FEATURE
    from models.ranker import LightGBMRanker, RankerConfig

    plain = Bundle.load(bundle_dir)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"als_score": rng.normal(size=4000), RANKER_FEATURE: rng.exponential(1.0, 4000)})
    y = (rng.random(4000) < 1 / (1 + np.exp(3 - 1.5 * X[RANKER_FEATURE]))).astype(int)
    cfg = RankerConfig(base_feature=RANKER_FEATURE, n_estimators=30, num_leaves=4, num_threads=1)
    ranker = LightGBMRanker(cfg).fit(X, y)
    Bundle.create(plain.als, plain.popularity, ranker, "ranker_v1").save(tmp_path / "boosted")
    models = DirModelSource(tmp_path / "boosted", make_policy(ServingSettings(epsilon=0.0))).load("champion")
    rec = Recommender(
        lambda: (models, None), DemoFeatureSource(tables), Catalog(tables), None, PipelineConfig()
    )
    checked = 0
    for user in range(1, 30, 3):
        out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=6))
        ranked = [s for s in out.slots if s.reason == "ranked"]
        ids = np.array([s.product_id for s in ranked], np.int64)
        want = ranker.predict(
            pd.DataFrame({"als_score": plain.als.score(np.full(len(ids), user), ids),
                          RANKER_FEATURE: plain.popularity.relative_log_score(ids)})
        )  # fmt: skip
        np.testing.assert_allclose([s.p_convert for s in ranked], want, rtol=1e-6)
        checked += len(ranked)
    assert checked >= 12
