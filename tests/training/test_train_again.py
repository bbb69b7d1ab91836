"""`slotcast train` on the data, settings and code the latest registered version was trained on
fits nothing and registers nothing (it registered an identical new version each time); `--again`
registers one anyway. Anything that changes the model is a new version: other settings, uncommitted
code, a consent withdrawn, another feature reader, another products table."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.consent import ConsentLedger
from pipelines.cli import main
from tests.training.conftest import OneFeature, fast_cli, fast_settings
from training.registry import CHALLENGER, version_by_alias
from training.run import train
from training.settings import TrainSettings
from training.tracking import configure

pytestmark = pytest.mark.slow


def _clean_checkout(monkeypatch: pytest.MonkeyPatch, clean: bool = True) -> None:
    """The code as a commit: the checkout these tests run in may hold uncommitted changes."""
    monkeypatch.setattr("training.tracking.git_clean", lambda cwd=None: clean)


def _runs(s: TrainSettings) -> int:
    client = configure(s)
    return len(client.search_runs([client.get_experiment_by_name("slotcast").experiment_id]))


def test_train_twice_registers_once_unless_again(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fast_cli(monkeypatch)
    _clean_checkout(monkeypatch)
    s = TrainSettings()
    argv = ["train", "--data", str(world), "--no-features"]
    assert main(argv) == 0
    capsys.readouterr()
    runs = _runs(s)

    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "already registered: nothing trained, slotcast v1" in out
    assert "v1 was trained on the same data, settings and code" in out and "--again" in out
    client = configure(s)
    assert len(client.search_model_versions("name='slotcast'")) == 1 and _runs(s) == runs  # no run either

    assert main([*argv, "--again"]) == 0
    assert "registered slotcast v2 @challenger" in " ".join(capsys.readouterr().out.split())
    assert str(version_by_alias(client, "slotcast", CHALLENGER).version) == "2"
    # Compared with the latest version; an alias moved elsewhere comes back, as a new version would take it.
    client.set_registered_model_alias("slotcast", CHALLENGER, "1")
    assert main(argv) == 0
    assert "already registered: nothing trained, slotcast v2" in " ".join(capsys.readouterr().out.split())
    assert str(version_by_alias(client, "slotcast", CHALLENGER).version) == "2"


def test_what_changes_the_model_registers_a_new_version(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _clean_checkout(monkeypatch)
    s = fast_settings(state_dir)
    first = train(world, s, reader=None)
    assert first.registered and not train(world, s, reader=None).registered

    reseeded = fast_settings(state_dir, seed=7)  # other settings
    assert train(world, reseeded, reader=None).version == "2"
    _clean_checkout(monkeypatch, clean=False)  # uncommitted changes: the commit does not name the code
    dirty = train(world, reseeded, reader=None)
    assert dirty.version == "3" and configure(s).get_run(dirty.run_id).data.tags["git_dirty"] == "true"
    _clean_checkout(monkeypatch)
    assert train(world, reseeded, reader=None).version == "4"  # v3 was trained on other code
    assert not train(world, reseeded, reader=None).registered

    active = pd.read_parquet(world / "events.parquet")["user_id"].value_counts().index
    ConsentLedger(state_dir).add(int(active[0]), False, None)  # a profile the bundle may not keep
    assert train(world, reseeded, reader=None).version == "5"
    assert train(world, reseeded, reader=OneFeature()).version == "6"
    assert not train(world, reseeded, reader=OneFeature()).registered


def test_another_products_table_registers_a_new_version(
    world: Path, state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    _clean_checkout(monkeypatch)
    data = tmp_path / "data"
    shutil.copytree(world, data)
    s = fast_settings(state_dir)
    assert train(data, s, reader=None).version == "1"
    assert not train(data, s, reader=None).registered  # same events, same tables

    products = pd.read_parquet(data / "products.parquet")
    products.loc[0, "price"] = float(products.loc[0, "price"]) * 2  # the events are untouched
    products.to_parquet(data / "products.parquet", index=False)
    again = train(data, s, reader=None)
    assert again.registered and again.version == "2"


def test_another_feature_build_registers_a_new_version_an_unchanged_one_does_not(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Train compared no feature store: after `features build --as-of` it said "already registered".
    fast_cli(monkeypatch)
    _clean_checkout(monkeypatch)
    build, argv = ["features", "build", "--data", str(world)], ["train", "--data", str(world)]
    assert main(build) == 0 and main(argv) == 0
    assert main(build) == 0  # the same data and as-of: the same feature store
    capsys.readouterr()
    assert main(argv) == 0
    assert "already registered: nothing trained, slotcast v1" in " ".join(capsys.readouterr().out.split())

    assert main([*build, "--as-of", "2026-01-12"]) == 0
    assert main(argv) == 0
    assert "registered slotcast v2 @challenger" in " ".join(capsys.readouterr().out.split())
    runs = configure(TrainSettings()).search_runs(
        [configure(TrainSettings()).get_experiment_by_name("slotcast").experiment_id]
    )
    assert len({r.data.params["features_digest"] for r in runs}) == 2


def test_a_run_logged_before_features_digest_is_never_a_rerun() -> None:
    from mlflow.entities import Param, Run, RunData, RunInfo, RunTag

    from training.rerun import TrainingInputs

    s = fast_settings(Path("/nowhere"))
    inputs = TrainingInputs.of(s, "d", np.array([], dtype=np.int64), None, "abc", True, "t", "none")
    assert inputs.params["features_digest"] == "none"  # no feature store: a fixed value
    tags = [RunTag("git_sha", "abc"), RunTag("git_dirty", "false"), RunTag("data_digest", "d")]
    info = RunInfo("r", "0", "u", "FINISHED", 0, 0, "active")

    def run(params: dict[str, str]) -> Run:
        return Run(info, RunData(params=[Param(k, v) for k, v in params.items()], tags=tags))

    assert inputs.match(run(inputs.params))
    assert not inputs.match(run({k: v for k, v in inputs.params.items() if k != "features_digest"}))
