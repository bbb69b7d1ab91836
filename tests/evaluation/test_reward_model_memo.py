"""DR's ranker reward model scores each (user, product) pair of the log once, in one feature lookup."""

import numpy as np
import pandas as pd

from training.evaluation.logs import LoggedRequests
from training.evaluation.metrics import PAD
from training.evaluation.policies import ALSPolicy, PopularPolicy, RankerPolicy
from training.evaluation.run import ranker_reward_model
from training.evaluation.slates import SlateLog


class _Als:
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return (np.asarray(users) % 7 + np.asarray(items) % 5).astype(float)


class _Ranker:
    feature_names = ["u", "p", "als"]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(0.01 * X["u"] - 0.02 * X["p"] + 0.1 * X["als"]).to_numpy()))


def test_pairs_are_scored_once_and_match_direct_scoring() -> None:
    calls: list[int] = []

    def features(u, p, als_score, als_rank):  # type: ignore[no-untyped-def]
        calls.append(len(u))
        return pd.DataFrame({"u": u, "p": p, "als": als_score})

    rng = np.random.default_rng(0)
    n = 300
    users = rng.integers(0, 50, n)
    candidates = np.stack([rng.choice(40, 6, replace=False) for _ in range(n)]).astype(np.int64)
    candidates[::5, 5] = PAD  # some requests have fewer candidates
    log = SlateLog(request=np.arange(n), item=candidates[:, 0], slot=np.zeros(n, np.int64),
                   propensity=np.full(n, 0.5), reward=rng.random(n) < 0.1, n_requests=n)  # fmt: skip
    lr = LoggedRequests(log, pd.DataFrame({"user_id": users}), candidates, "carousel")
    policy = RankerPolicy(
        ALSPolicy(_Als(), PopularPolicy(np.array([0]), np.array([1.0]))), _Ranker(), features
    )
    _, q = ranker_reward_model(policy)(lr)
    assert len(calls) == 1  # the memo, which also served the slot factor's predictions
    req = np.repeat(np.arange(n), 3)
    item = candidates[req, np.tile([0, 1, 2], n)]
    got = q(req, item, np.zeros(req.size, np.int64))
    assert len(calls) == 1  # target slates drawn from the candidates: no new lookup
    u = users[req]
    direct = _Ranker().predict(pd.DataFrame({"u": u, "p": item, "als": _Als().score(u, item)}))
    # q = p_convert x the slot factor fitted on the log; at slot 0 the factor is one number
    ratio = got / np.clip(direct, 1e-12, None)
    assert np.allclose(ratio, ratio[0])
    q(np.array([0]), np.array([999]), np.array([0]))  # a pair outside the candidates is scored directly
    assert len(calls) == 2
