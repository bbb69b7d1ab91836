"""`slotcast evaluate`'s truth (pipelines/commands/evaluate_truth.py `simulator_truth`) against the
logs it is the truth of.

The logging policy's own slates are what produced the logged rewards, so their true value must
equal the observed mean reward per request within sampling error, for clicks and purchases, on
carousels and pushes: a wrong host effect, a wrong stream id or a churned user counted as a buyer
would show here. Stream-less logs (null stream_id, wholly or in part) must work too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.commands.evaluate_truth import simulator_truth
from pipelines.simulator.config import SimConfig
from pipelines.simulator.generate import generate
from pipelines.simulator.truth import TrueWorld
from training.evaluation.logs import carousel_log, push_log
from training.evaluation.policies import PopularPolicy
from training.evaluation.run import EvalConfig, evaluate, read_tables


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = Path(tmp_path_factory.mktemp("wiring")) / "data"
    generate(SimConfig(users=8000, products=200, days=10, seed=11, categories=4), d)
    return d


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = Path(tmp_path_factory.mktemp("shop")) / "data"
    generate(SimConfig(users=1500, products=80, days=4, seed=1, categories=4, streams=False), d)
    return d


def _logged_slates(lr) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.full((lr.log.n_requests, lr.log.n_slots), -1, dtype=np.int64)
    out[lr.log.request, lr.log.slot] = lr.log.item
    return out


def _z(observed_total: float, expected: np.ndarray) -> float:
    """Observed count against the truth's expected count (variance <= the sum of the probabilities)."""
    return float((observed_total - expected.sum()) / np.sqrt(expected.sum()))


@pytest.mark.parametrize("reward", ["purchased", "clicked"])
def test_the_logging_policys_truth_is_its_logged_reward(world: Path, reward: str) -> None:
    tables = read_tables(world)
    truth = simulator_truth(world, reward)
    lr = carousel_log(tables["impressions"], tables["stream_products"], reward=reward)
    expected = truth("carousel", lr.requests, _logged_slates(lr))
    assert lr.log.reward.sum() > 50
    assert abs(_z(lr.log.reward.sum(), expected)) < 4
    if reward == "purchased":
        pl = push_log(tables["pushes"], reward=reward)
        expected = truth("push", pl.requests, _logged_slates(pl))
        assert pl.log.reward.sum() > 20
        assert abs(_z(pl.log.reward.sum(), expected)) < 4
        # pushes to users who have churned are sent and never opened: the truth knows it
        assert (expected == 0).any()


def test_evaluate_reports_the_logging_truth_beside_its_logged_value(world: Path) -> None:
    cfg = EvalConfig(k=6, n_boot=50, max_users=100)
    result = evaluate(read_tables(world), {"popular": PopularPolicy.from_events}, cfg,
                      truth=simulator_truth(world, "purchased"))  # fmt: skip
    for kind in ("carousel", "push"):
        block = result["ope"][kind]
        true_value = result["truth"][kind]["logging"]
        logged = block["estimates"]["logging"]["on_policy"]["value"]
        assert abs(logged - true_value) < 4 * np.sqrt(true_value / block["n_requests"]), kind
        assert "popular" in result["truth"][kind]


def test_stream_less_and_partly_stream_less_logs(shop: Path, world: Path) -> None:
    tables = read_tables(shop)
    lr = carousel_log(tables["impressions"], tables["stream_products"])
    assert lr.requests["stream_id"].isna().all()
    expected = simulator_truth(shop, "purchased")("carousel", lr.requests, _logged_slates(lr))
    assert np.isfinite(expected).all() and abs(_z(lr.log.reward.sum(), expected)) < 4

    # a log where some requests have a stream and some do not: each gets its own host effect
    tables = read_tables(world)
    lr = carousel_log(tables["impressions"], tables["stream_products"])
    requests = lr.requests.copy()
    requests["stream_id"] = pd.array(requests["stream_id"], dtype="Int64")
    requests.loc[requests.index[::2], "stream_id"] = pd.NA
    slates = _logged_slates(lr)
    got = simulator_truth(world, "purchased")("carousel", requests, slates)
    tw = TrueWorld.load(world)
    sid = requests["stream_id"].fillna(-1).to_numpy(np.int64)
    want = tw.slate_value(requests["user_id"].to_numpy(np.int64), slates, sid)
    np.testing.assert_allclose(got, want)
    assert not np.allclose(got, tw.slate_value(requests["user_id"].to_numpy(np.int64), slates))


def test_unknown_ids_give_no_truth_not_a_crash(world: Path) -> None:
    requests = pd.DataFrame(
        {"user_id": [10**9], "stream_id": [None], "ts": [pd.Timestamp("2025-01-07", tz="UTC")]}
    )
    assert simulator_truth(world, "purchased")("carousel", requests, np.array([[1, 2]])) is None


def test_a_drifting_world_judges_each_request_at_its_time(tmp_path: Path) -> None:
    # Half the users' tastes change on days 5-9: the logs follow the tastes of their day, and so
    # must the truth `slotcast evaluate` reports (judged by the end-of-period tastes throughout,
    # the clicks before the change would be far off).
    d = tmp_path / "data"
    generate(SimConfig(users=8000, products=200, days=10, seed=11, categories=4, drift_share=0.5), d)
    tables = read_tables(d)
    lr = carousel_log(tables["impressions"], tables["stream_products"], reward="clicked")
    slates = _logged_slates(lr)
    expected = simulator_truth(d, "clicked")("carousel", lr.requests, slates)
    assert abs(_z(lr.log.reward.sum(), expected)) < 4
    tw = TrueWorld.load(d)
    users = lr.requests["user_id"].to_numpy(np.int64)
    moved = np.isfinite(tw.switch_day(users))
    assert 0.4 < moved.mean() < 0.6
    slots = np.broadcast_to(np.arange(slates.shape[1]), slates.shape)
    filled = slates >= 0
    late = np.zeros(slates.shape)
    late[filled] = tw.click_prob(
        np.broadcast_to(users[:, None], slates.shape)[filled], slates[filled], slots[filled]
    )
    observed = np.bincount(lr.log.request, weights=lr.log.reward, minlength=len(users))
    assert abs(_z(observed[moved].sum(), expected[moved])) < 4
    assert abs(_z(observed[moved].sum(), late.sum(axis=1)[moved])) > 6
