"""Off-policy estimators checked against a slate bandit whose true values are exact.

The logging policy is the simulator's (eps-uniform mix of a deterministic top-k), so the
propensities are exactly known; the truth is an exact average over the finite context space.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.metrics import PAD
from training.evaluation.ope import compare, evaluate_policy, on_policy_value
from training.evaluation.slates import SlateLog, TargetSlates
from training.evaluation.synthetic import SlateWorld

SEEDS = range(25)


@pytest.fixture(scope="module")
def world() -> SlateWorld:
    return SlateWorld.make(seed=0)


def _replicate(
    world: SlateWorld, n_requests: int, *, ignore_propensity: bool = False
) -> dict[str, tuple[float, float]]:
    """(coverage of the 95% interval, mean absolute error) per estimator over SEEDS."""
    truth = world.true_value(world.popular_scores)
    covered: dict[str, list[bool]] = {}
    errors: dict[str, list[float]] = {}
    for seed in SEEDS:
        log, users, streams = world.log(n_requests, seed)
        if ignore_propensity:
            log = log.with_propensity(1.0)
        target = world.target(world.popular_scores, users, streams)
        # DR gets a deliberately imperfect reward model (per-item multiplicative error):
        # it must stay right because the propensities are right.
        model = world.reward_model(users, noise=0.5, seed=seed)
        for name, est in evaluate_policy(log, target, model, n_boot=200, seed=seed).items():
            covered.setdefault(name, []).append(est.covers(truth))
            errors.setdefault(name, []).append(abs(est.value - truth))
    return {name: (float(np.mean(covered[name])), float(np.mean(errors[name]))) for name in covered}


@pytest.mark.slow
def test_intervals_cover_the_truth_and_error_shrinks(world: SlateWorld) -> None:
    small = _replicate(world, 1_000)
    large = _replicate(world, 4_000)
    for name in ("snips", "dr", "ips"):
        assert large[name][0] >= 0.80, (
            f"{name} covered the truth in only {large[name][0]:.0%} of replications"
        )
        assert small[name][0] >= 0.75, f"{name} (small log) covered in only {small[name][0]:.0%}"
        # 4x the data: the error should roughly halve; allow noise but demand a clear drop
        assert large[name][1] < 0.75 * small[name][1], (
            f"{name} error did not shrink: {small[name][1]} -> {large[name][1]}"
        )


@pytest.mark.slow
def test_ignoring_propensities_fails_the_same_check(world: SlateWorld) -> None:
    wrong = _replicate(world, 4_000, ignore_propensity=True)
    right = _replicate(world, 4_000)
    for name in ("snips", "ips"):
        assert wrong[name][0] < 0.5, f"the wrong {name} passed the coverage check ({wrong[name][0]:.0%})"
        assert wrong[name][1] > 3 * right[name][1]


def test_a_good_reward_model_makes_dr_tighter_than_ips(world: SlateWorld) -> None:
    log, users, streams = world.log(3_000, seed=1)
    target = world.target(world.oracle_scores, users, streams)
    est = evaluate_policy(log, target, world.reward_model(users), n_boot=200)
    assert est["dr"].ci_high - est["dr"].ci_low < est["ips"].ci_high - est["ips"].ci_low
    assert est["dr"].covers(world.true_value(world.oracle_scores))
    assert 0 < est["ips"].ess < log.item.size


def test_on_policy_value_of_the_logging_policy(world: SlateWorld) -> None:
    log, users, streams = world.log(3_000, seed=2)
    det = world.true_value(world.logging_scores)
    # the logging policy is eps-uniform: its value mixes the deterministic list and random slates
    rand = np.mean(
        [world.true_value(lambda u, c, r=np.random.default_rng(i): r.random(c.shape)) for i in range(5)]
    )
    truth = (1 - world.eps) * det + world.eps * rand
    est = on_policy_value(log, n_boot=200)
    assert abs(est.value - truth) < 0.05
    assert est.ci_low < est.value < est.ci_high


def test_champion_vs_challenger_verdicts(world: SlateWorld) -> None:
    log, users, streams = world.log(4_000, seed=3)
    popular = world.target(world.popular_scores, users, streams)
    model = world.reward_model(users, noise=0.3)
    better = compare(log, popular, world.target(world.oracle_scores, users, streams), model, n_boot=200)
    worse = compare(log, popular, world.target(world.anti_scores, users, streams), model, n_boot=200)
    same = compare(log, popular, popular, model, n_boot=200)
    for name in ("snips", "dr"):
        assert better[name].verdict == "better" and better[name].diff > 0
        assert worse[name].verdict == "worse" and worse[name].diff < 0
        assert same[name].verdict == "can't tell"
    truth = world.true_value(world.oracle_scores) - world.true_value(world.popular_scores)
    assert better["dr"].ci_low <= truth <= better["dr"].ci_high


def test_eps_target_probabilities_sum_to_one_per_slot() -> None:
    slates = np.array([[3, 1], [2, 0]])
    target = TargetSlates(slates, eps=0.2, n_candidates=np.array([4, 4]))
    items = np.repeat(np.arange(4), 4)
    log = SlateLog(
        request=np.tile([0, 0, 1, 1], 4),
        item=items,
        slot=np.tile([0, 1, 0, 1], 4),
        propensity=np.full(16, 0.25),
        reward=np.zeros(16),
        n_requests=2,
    )
    p = target.prob(log)
    sums = np.bincount(log.request * 2 + log.slot, weights=p)
    np.testing.assert_allclose(sums, 1.0)


def test_bad_logs_are_named() -> None:
    with pytest.raises(ValueError, match="row 1 has 0.0"):
        SlateLog(np.array([0, 0]), np.array([1, 2]), np.array([0, 1]), np.array([0.5, 0.0]), np.zeros(2), 1)
    with pytest.raises(ValueError, match="request index"):
        SlateLog(np.array([0, 3]), np.array([1, 2]), np.array([0, 1]), np.array([0.5, 0.5]), np.zeros(2), 2)
    with pytest.raises(ValueError, match="'slot' has shape"):
        SlateLog(np.array([0, 0]), np.array([1, 2]), np.array([0]), np.array([0.5, 0.5]), np.zeros(2), 1)


def test_dr_with_a_ranker_as_reward_model(world: SlateWorld) -> None:
    """A ranker whose p_convert is the true slot-0 purchase probability: DR stays right, beats IPS."""
    import pandas as pd

    from training.evaluation.logs import LoggedRequests
    from training.evaluation.policies import ALSPolicy, PopularPolicy, RankerPolicy
    from training.evaluation.run import ranker_reward_model

    class Als:
        def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
            return world.affinity(
                np.broadcast_to(users, np.broadcast_shapes(np.shape(users), np.shape(items))), items
            )

    class Ranker:
        feature_names = ["user", "product"]

        def predict(self, X: pd.DataFrame) -> np.ndarray:
            u, p = X["user"].to_numpy(), X["product"].to_numpy()
            return world.purchase_prob(u, p, np.zeros(len(u), dtype=int))

    def features(u, p, als_score, als_rank):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"user": u, "product": p})

    policy = RankerPolicy(ALSPolicy(Als(), PopularPolicy(np.array([0]), np.array([1.0]))), Ranker(), features)
    log, users, streams = world.log(3_000, seed=5)
    lr = LoggedRequests(log, pd.DataFrame({"user_id": users}), world.on_air[streams], "carousel")
    name, q = ranker_reward_model(policy)(lr)
    target = world.target(world.oracle_scores, users, streams)
    est = evaluate_policy(log, target, q, n_boot=200)
    assert name == "ranker p_convert"
    assert est["dr"].covers(world.true_value(world.oracle_scores))
    assert est["dr"].ci_high - est["dr"].ci_low < est["ips"].ci_high - est["ips"].ci_low
    # the slot factor fitted on the log recovers the examination curve (p_convert is slot 0's)
    exact = evaluate_policy(log, target, world.reward_model(users), n_boot=200)["dr"].value
    assert abs(est["dr"].value - exact) < 0.02


def test_propensity_clipping_caps_the_weights(world: SlateWorld) -> None:
    log, users, streams = world.log(2_000, seed=7)
    target = world.target(world.anti_scores, users, streams)  # mostly matched by exploration: big weights
    free = evaluate_policy(log, target, max_weight=None, n_boot=100)["ips"]
    capped = evaluate_policy(log, target, max_weight=2.0, n_boot=100)["ips"]
    w = target.prob(log) / log.propensity
    assert w.max() > 2.0
    expected = float(np.sum(np.minimum(w, 2.0) * log.reward) / log.n_requests)
    assert capped.value == pytest.approx(expected)
    assert capped.value < free.value


def test_snips_normalises_by_the_slots_the_target_fills() -> None:
    """A target that leaves a logged slot empty (a policy returning fewer than k items) earns nothing
    there; SNIPS scaled that slot's rate by every request that logged it, as if the target filled it."""
    log = SlateLog(
        request=np.array([0, 0, 1, 1]),
        item=np.array([5, 6, 7, 8]),
        slot=np.array([0, 1, 0, 1]),
        propensity=np.ones(4),
        reward=np.ones(4),
        n_requests=2,
    )
    short = TargetSlates(np.array([[5, 6], [7, PAD]]))  # request 1: one item only
    est = evaluate_policy(log, short, n_boot=50)
    # the truth: 2 rewards on request 0, 1 on request 1
    assert est["ips"].value == pytest.approx(1.5)
    assert est["snips"].value == pytest.approx(1.5)


def test_snips_of_a_short_target_on_the_bandit(world: SlateWorld) -> None:
    def short(users: np.ndarray, streams: np.ndarray) -> np.ndarray:
        slates = world.target(world.popular_scores, users, streams).slates.copy()
        slates[users % 2 == 0, 1:] = PAD  # half the users get one item
        return slates

    n_u, n_s = world.user_vec.shape[0], world.on_air.shape[0]
    all_users, all_streams = np.repeat(np.arange(n_u), n_s), np.tile(np.arange(n_s), n_u)
    slates = short(all_users, all_streams)
    slots = np.broadcast_to(np.arange(world.k), slates.shape)
    q = world.purchase_prob(np.repeat(all_users, world.k).reshape(slates.shape), np.maximum(slates, 0), slots)
    truth = float(np.where(slates != PAD, q, 0.0).sum(axis=1).mean())
    values = []
    for seed in range(8):
        log, users, streams = world.log(4_000, seed)
        values.append(evaluate_policy(log, TargetSlates(short(users, streams)), n_boot=50)["snips"].value)
    assert abs(np.mean(values) - truth) < 0.05 * truth, (np.mean(values), truth)  # was +27%


def test_on_policy_interval_of_a_single_request_is_finite() -> None:
    """A bootstrap draw that leaves out every request has no mean: it was kept as NaN, so a log of one
    request (a third of the draws) reported a NaN interval, and metrics.json held a bare NaN."""
    log = SlateLog(
        np.array([0, 0]), np.array([1, 2]), np.array([0, 1]), np.full(2, 0.5), np.array([1.0, 0.0]), 1
    )
    est = on_policy_value(log, n_boot=100)
    assert np.isfinite([est.ci_low, est.ci_high]).all()
    assert est.ci_low <= est.value == 1.0 <= est.ci_high
