"""The gate judges a challenger on the test split and label it was trained for: `slotcast train
--label click` then `slotcast promote` compared the versions on purchases (promote has no
--label), and a challenger trained with other split fractions (SLOTCAST_SPLIT__*) was scored on
whatever split the promoting process had, which could reach into the challenger's own valid split."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import fast_settings
from training.promote import promote
from training.run import train
from training.settings import SplitConfig
from training.tracking import configure

pytestmark = pytest.mark.slow


def test_promote_compares_on_the_challengers_label_and_split(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    trained = fast_settings(
        state_dir,
        label="click",
        split=SplitConfig(history=0.45, train=0.3, valid=0.1, test=0.15),
        label_window_hours=12,
    )
    train(world, trained, reader=None)
    assert promote(trained, world, open_reader=None).promoted  # the first: nothing compared
    train(world, trained, reader=None)

    said: list[str] = []
    as_promote_runs = fast_settings(state_dir)  # the environment's: purchase, the default split
    report = promote(as_promote_runs, world, open_reader=None, progress=said.append)
    assert any(m.endswith("test queries with a click") for m in said), said
    params = configure(trained).get_run(report.run_id).data.params
    assert (
        params["label"] == "click"
        and params["split.test"] == "0.15"
        and params["label_window_hours"] == "12.0"
    )
    # The same queries as a promote run with the training settings themselves.
    assert report.result.n_queries == promote(trained, world, open_reader=None).result.n_queries
