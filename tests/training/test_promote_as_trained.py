"""The gate judges a challenger on what `train` measured, not on the promoting process's settings:

- the label and split: `slotcast train --label click` then `slotcast promote` compared the versions
  on purchases (promote has no --label), and a challenger trained with other split fractions
  (SLOTCAST_SPLIT__*) was scored on whatever split the promoting process had, which could reach
  into the challenger's own valid split;
- the metric's k and the candidate pool (candidates_n) were the promoting process's too. A champion
  measured with others is judged with the challenger's, and the promote run records both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import fast_settings
from training.promote import promote
from training.run import train
from training.settings import SplitConfig
from training.tracking import configure

pytestmark = pytest.mark.slow


def test_promote_compares_on_the_challengers_label_split_k_and_candidates(
    world: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    as_trained = {
        "label": "click",
        "split": SplitConfig(history=0.45, train=0.3, valid=0.1, test=0.15),
        "label_window_hours": 12,
    }
    champion = fast_settings(state_dir, **as_trained, k=5, candidates_n=15)
    train(world, champion, reader=None)
    assert promote(champion, world, open_reader=None).promoted  # the first: nothing compared
    trained = fast_settings(state_dir, **as_trained, k=8, candidates_n=25)
    train(world, trained, reader=None)

    said: list[str] = []
    as_promote_runs = fast_settings(state_dir)  # the environment's: purchase, default split, k 10, 20
    report = promote(as_promote_runs, world, open_reader=None, progress=said.append)
    assert any(m.endswith("test queries with a click") for m in said), said
    assert report.result.metric == "ndcg@8"
    params = configure(trained).get_run(report.run_id).data.params
    assert (
        params["label"] == "click"
        and params["split.test"] == "0.15"
        and params["label_window_hours"] == "12.0"
    )
    assert (params["k"], params["candidates_n"]) == ("8", "25")
    assert (params["challenger.k"], params["challenger.candidates_n"]) == ("8", "25")
    assert (params["champion.k"], params["champion.candidates_n"]) == ("5", "15")
    # The same figures as a promote run with the challenger's training settings themselves.
    assert not report.promoted, report.result  # (else the second run would find it champion)
    again = promote(trained, world, open_reader=None).result
    assert (again.n_queries, again.challenger_mean, again.champion_mean) == (
        report.result.n_queries,
        report.result.challenger_mean,
        report.result.champion_mean,
    )
