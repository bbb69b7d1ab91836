"""`train: {again: true}` in the pipeline config: the train step registers a new version even on
the inputs of the latest one, as `slotcast train --again` does (the pipeline had no way to say it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from pipelines.config import ConfigError, load_config
from tests.training.world import make_world


def test_the_train_section_takes_again(tmp_path: Path) -> None:
    f = tmp_path / "again.yaml"
    f.write_text("train: {again: true}\n")
    assert load_config(f).train.again is True
    assert load_config(None).train.again is False
    for text, needle in (
        ("train: {again: 1}\n", "train.again: Input should be a valid boolean"),
        ("train: {again: 'yes'}\n", "train.again: Input should be a valid boolean"),
        ("train: {agian: true}\n", "train.agian: Extra inputs are not permitted"),
    ):
        f.write_text(text)
        with pytest.raises(ConfigError, match=needle):
            load_config(f)


def test_again_reaches_the_train_step(
    state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through `slotcast pipeline run` up to train, on real data and a real feature build; only the
    fit itself is replaced by one that records what it was asked."""
    from training.run import TrainReport

    asked: list[bool] = []

    def fake_train(data_dir: Path, settings: Any, reader: Any, progress: Any, alias: str = "challenger",
                   again: bool = False) -> TrainReport:  # fmt: skip
        asked.append(again)
        return TrainReport(f"run{len(asked)}", str(len(asked)), alias, {}, "d", 0.0, 24.0, registered=again)

    monkeypatch.setattr("training.run.train", fake_train)
    data = make_world(tmp_path / "data")
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"data: {{source: dir, dir: {data}}}\n")
    assert main(["pipeline", "run", "--config", str(config), "--until", "train"]) == 0
    built = (state_dir / "pipeline" / "features.json").read_text()
    config.write_text(f"data: {{source: dir, dir: {data}}}\ntrain: {{again: true}}\n")
    assert main(["pipeline", "run", "--config", str(config), "--until", "train"]) == 0
    assert asked == [False, True]  # the changed section reran train ...
    assert (state_dir / "pipeline" / "features.json").read_text() == built  # ... and not the features
    record = json.loads((state_dir / "pipeline" / "train.json").read_text())
    assert record["figures"]["registered"] is True
