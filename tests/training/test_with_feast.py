"""Training on the real Feast FeatureService (ranker_v1), built from the planted world."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import fast_settings

pytestmark = pytest.mark.slow


def test_train_with_the_ranker_v1_feature_service(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.retrieval import FeastFeatureReader, feature_names
    from features.settings import FeatureSettings
    from features.store import build_feature_store
    from models.bundle import Bundle
    from pipelines.cli import main
    from training.registry import download_bundle

    fs = FeatureSettings(state_dir=state_dir)
    build_feature_store(world, fs)
    s = fast_settings(state_dir)
    from training.run import train

    report = train(world, s, FeastFeatureReader(fs))
    bundle = Bundle.load(download_bundle("slotcast", "challenger", state_dir / "dl"))
    # The pinned feature order: the service's features, then the training context.
    assert bundle.ranker.feature_names == [
        *feature_names("ranker_v1"),
        "als_score",
        "als_rank",
        "on_air",
        "slot",
        "popularity_score",
    ]
    assert bundle.manifest.feature_service == "ranker_v1"
    assert report.metrics["test_auc"] > 0.72
    # within a carousel the planted answer is the viewer's category, which popularity cannot see
    assert report.metrics["test_als_ranker_ndcg_at_10"] > report.metrics["test_popularity_ndcg_at_10"] + 0.05

    # The CLI finds the built store by the state dir; without one it says what to run.
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(state_dir / "other"))
    assert main(["train", "--data", str(world)]) == 1
