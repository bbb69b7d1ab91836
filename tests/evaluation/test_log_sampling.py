"""Off-policy evaluation on a user sample of a large log: whole users kept, about the asked size."""

import numpy as np
import pandas as pd

from training.evaluation.logs import sample_users


def _log(users: int, per_user: int) -> pd.DataFrame:
    u = np.repeat(np.arange(users), per_user)
    return pd.DataFrame({"user_id": u, "request_id": [f"r{i}" for i in range(u.size)]})


def test_small_log_is_untouched() -> None:
    log = _log(100, 5)
    assert sample_users(log, 500, "request_id", seed=0) is log
    assert sample_users(log, None, "request_id", seed=0) is log


def test_large_log_keeps_whole_users_and_about_the_asked_number_of_requests() -> None:
    log = _log(5000, 10)
    out = sample_users(log, 5000, "request_id", seed=1)
    assert 4000 <= out["request_id"].nunique() <= 6000
    per_user = out.groupby("user_id").size()
    assert (per_user == 10).all()  # a kept user keeps every request
    again = sample_users(log, 5000, "request_id", seed=1)
    assert out.equals(again)  # seeded: the same sample twice


def test_sampled_pushes_keep_their_campaigns_whole_product_set() -> None:
    """A push decision's candidates are what its campaign pushed to anyone; sampling users kept only
    what it pushed to the sampled ones (on the test world 12.9 products a decision fell to 5.6), so
    every target policy was scored choosing from a fraction of what it could have pushed."""
    from training.evaluation.logs import held_out_logs, push_log

    rng = np.random.default_rng(0)
    n = 4000
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 4, n), unit="D")
    pushes = pd.DataFrame({
        "ts": ts, "push_id": [f"p{i}" for i in range(n)], "user_id": rng.integers(0, 2000, n),
        "product_id": rng.integers(0, 30, n), "community_id": rng.integers(0, 3, n), "policy": "push",
        "propensity": 0.5, "opened": False, "clicked": False, "purchased": rng.random(n) < 0.1,
    })  # fmt: skip
    full = push_log(pushes)
    logs, notes = held_out_logs({"pushes": pushes}, pushes["ts"].min(), max_requests=400, seed=0)
    sampled = logs["push"]
    assert sampled.log.n_requests < n / 4 and any("random sample of users" in note for note in notes)
    row_of = {pid: i for i, pid in enumerate(full.requests["request_id"])}
    rows = [row_of[pid] for pid in sampled.requests["request_id"]]
    np.testing.assert_array_equal(sampled.candidates, full.candidates[rows])


def test_impossible_propensities_are_dropped_counted_and_noted() -> None:
    """A logged row with propensity 0 (or above 1) cannot be importance-weighted; it failed the whole
    evaluation (SlateLog's ValueError naming an internal row number) where a missing one is counted
    and left out. Both are now left out, counted, and named in the report's notes."""
    from training.evaluation.logs import held_out_logs

    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    imp = pd.DataFrame({
        "ts": [t0] * 6, "request_id": ["a", "a", "b", "b", "c", "c"], "user_id": [1, 1, 2, 2, 3, 3],
        "stream_id": 7, "product_id": [10, 11, 10, 11, 10, 11], "slot": [0, 1] * 3, "policy": "log",
        "propensity": [0.9, 0.1, 0.0, 0.9, 1.5, None], "clicked": True, "purchased": False,
    })  # fmt: skip
    pushes = pd.DataFrame({
        "ts": [t0] * 3, "push_id": ["p1", "p2", "p3"], "user_id": [1, 2, 3], "product_id": [10, 11, 10],
        "community_id": 5, "policy": "push", "propensity": [0.5, 0.0, np.nan], "opened": False,
        "clicked": False, "purchased": True,
    })  # fmt: skip
    logs, notes = held_out_logs({"impressions": imp, "pushes": pushes}, t0, max_requests=None)
    carousel, push = logs["carousel"], logs["push"]
    assert carousel.dropped == 3 and carousel.log.item.size == 3 and carousel.log.n_requests == 2
    assert push.dropped == 2 and push.log.n_requests == 1
    assert "carousel: 3 logged rows without a propensity in (0, 1] left out" in notes
    assert "push: 2 logged rows without a propensity in (0, 1] left out" in notes
