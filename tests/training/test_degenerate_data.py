"""A data directory with one event type only: `slotcast train` stops with one clear line (exit 1)
before any fit, and nothing reaches MLflow."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from features.data_model import read_table, write_table
from tests.training.world import make_world


def _only(tmp_path: Path, event_type: str) -> Path:
    data = make_world(tmp_path / event_type, n_users=90, days=8)
    ev = read_table(data, "events").to_pandas()
    kept = ev.loc[ev["type"] == event_type].reset_index(drop=True)
    write_table(data, "events", pa.Table.from_pandas(kept, preserve_index=False))
    return data


def _train(data: Path, *args: str) -> int:
    from pipelines.cli import main

    return main(["train", "--data", str(data), "--no-features", *args])


def test_no_event_of_the_label_says_so_and_which_label_would_do(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clicks only: was "no ranker queries with a 'purchase' label in any split; need more data",
    after both ALS fits, though no amount of such data has a purchase to learn from."""
    import training.fit

    data = _only(tmp_path, "product_click")

    def no_fit(*_: object, **__: object) -> None:
        raise AssertionError("ALS fitted on data with nothing to label")

    monkeypatch.setattr(training.fit, "fit_als", no_fit)
    assert _train(data) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "has no purchase event" in err and "product_click" in err and "--label click" in err, err
    assert _train(data, "--label", "cart") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "has no add_to_cart event" in err and "--label click" in err, err
    assert not (state_dir / "mlflow").exists()  # nothing registered, not even a failed run


def test_views_only_is_refused_before_mlflow(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(_only(tmp_path, "stream_view")) == 1
    assert "has no purchase event" in capsys.readouterr().err
    assert not (state_dir / "mlflow").exists()
