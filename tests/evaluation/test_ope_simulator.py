"""The off-policy estimators on the world simulator's own logs, checked against its ground truth.

For 20 simulated worlds (seeds), the carousel log's logging policy is the simulator's (exact
propensities); the target is the popularity policy; the reward is a click, whose true probability
``TrueWorld.click_prob`` gives for every (user, product, slot). The truth is the target's expected
clicks per request on the logged requests. A quarter of the log against the whole log shows the
error shrinking; ignoring the propensities must fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.evaluation.logs import LoggedRequests, carousel_log
from training.evaluation.ope import evaluate_policy
from training.evaluation.policies import PopularPolicy, rank
from training.evaluation.run import empirical_reward_model, read_tables
from training.evaluation.slates import SlateLog, TargetSlates

pytestmark = pytest.mark.slow

SEEDS = range(20)


def _head(lr: LoggedRequests, n: int) -> LoggedRequests:
    lg = lr.log
    keep = lg.request < n
    sub = SlateLog(lg.request[keep], lg.item[keep], lg.slot[keep], lg.propensity[keep], lg.reward[keep], n)
    return LoggedRequests(sub, lr.requests.iloc[:n], lr.candidates[:n], lr.kind)


@pytest.fixture(scope="module")
def replications(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[tuple[bool, float]]]:
    from pipelines.simulator.config import SimConfig
    from pipelines.simulator.generate import generate
    from pipelines.simulator.truth import TrueWorld

    out: dict[tuple[str, str], list[tuple[bool, float]]] = {}
    for seed in SEEDS:
        d = Path(tmp_path_factory.mktemp(f"world{seed}"))
        generate(SimConfig(users=1500, products=80, days=4, seed=seed, epsilon=0.3, categories=4), d)
        tables, world = read_tables(d), TrueWorld.load(d)
        lr = carousel_log(tables["impressions"], tables["stream_products"], reward="clicked")
        users = lr.requests["user_id"].to_numpy(np.int64)
        slates = rank(PopularPolicy.from_events(tables["events"]), users, lr.candidates, lr.log.n_slots)
        filled = slates >= 0
        per_slot = np.zeros(slates.shape)
        per_slot[filled] = world.click_prob(
            np.broadcast_to(users[:, None], slates.shape)[filled],
            slates[filled],
            np.broadcast_to(np.arange(slates.shape[1]), slates.shape)[filled],
        )
        for size, part in (("quarter", _head(lr, lr.log.n_requests // 4)), ("full", lr)):
            n = part.log.n_requests
            truth = float(per_slot[:n].sum(axis=1).mean())
            target = TargetSlates(slates[:n])
            _, q = empirical_reward_model(part)
            right = evaluate_policy(part.log, target, q, n_boot=200, seed=seed)
            wrong = evaluate_policy(part.log.with_propensity(1.0), target, n_boot=200, seed=seed)
            for name, est in [*right.items(), *((f"no-propensity {k}", v) for k, v in wrong.items())]:
                out.setdefault((size, name), []).append((est.covers(truth), abs(est.value - truth)))
    return out


def _coverage(reps, size: str, name: str) -> float:  # type: ignore[no-untyped-def]
    return float(np.mean([c for c, _ in reps[(size, name)]]))


def _error(reps, size: str, name: str) -> float:  # type: ignore[no-untyped-def]
    return float(np.mean([e for _, e in reps[(size, name)]]))


@pytest.mark.parametrize("estimator", ["snips", "dr", "ips"])
def test_intervals_cover_the_simulator_truth_and_error_shrinks(replications, estimator: str) -> None:  # type: ignore[no-untyped-def]
    assert _coverage(replications, "full", estimator) >= 0.80
    assert _error(replications, "full", estimator) < 0.75 * _error(replications, "quarter", estimator)


@pytest.mark.parametrize("estimator", ["snips", "ips"])
def test_ignoring_propensities_fails_on_the_simulator(replications, estimator: str) -> None:  # type: ignore[no-untyped-def]
    name = f"no-propensity {estimator}"
    covers = _coverage(replications, "full", name) >= 0.80
    shrinks = _error(replications, "full", name) < 0.75 * _error(replications, "quarter", name)
    assert not (covers and shrinks), f"{name} passed the check a correct estimator must pass"
