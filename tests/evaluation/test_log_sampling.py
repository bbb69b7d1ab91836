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
