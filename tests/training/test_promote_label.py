"""The gate judges a challenger on the label it was trained for: `slotcast train --label click`
then `slotcast promote` compared the two versions on purchases (promote has no --label; it took
the environment's, by default purchase)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import fast_settings
from training.promote import promote
from training.run import train
from training.tracking import configure

pytestmark = pytest.mark.slow


def test_promote_compares_on_the_challengers_label(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    clicks = fast_settings(state_dir, label="click")
    train(world, clicks, reader=None)
    assert promote(clicks, world, reader=None).promoted  # the first: nothing compared
    train(world, clicks, reader=None)

    said: list[str] = []
    as_promote_runs = fast_settings(state_dir)  # the environment's label: purchase
    report = promote(as_promote_runs, world, reader=None, progress=said.append)
    assert any(m.endswith("test queries with a click") for m in said), said
    params = configure(clicks).get_run(report.run_id).data.params
    assert params["label"] == "click"
