"""A deletion recorded while a features build runs: the build read the deletion ledger at its start,
computed the user's rows, and materialized them after serving had removed them from the online
store, so the deleted user's features were back online (and in the offline snapshot) until the
next build; `slotcast privacy purge` does not touch the online store. The build now removes the
users deleted meanwhile before it finishes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features.privacy import DeletionLedger, delete_user_online
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from features.store import build_feature_store
from tests.features.conftest import AS_OF


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def test_a_user_deleted_during_a_build_is_not_put_back(
    backend: str, tmp_path: Path, world_dir: Path, request: pytest.FixtureRequest
) -> None:
    extra = (
        {"online_store": "redis", "redis_url": request.getfixturevalue("redis_server")}
        if backend == "redis"
        else {}
    )
    settings = FeatureSettings(state_dir=tmp_path / "state", project=f"race_{backend}", **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_feature_store(world_dir, settings, as_of=AS_OF)
        reader = FeastFeatureReader(settings)
        assert reader.online(1, [10]).loc[10, "monetary_90d"] == 60.0
        deleted: list[int] = []

        def serving_deletes_user_1(phase: str, step: str) -> None:
            # What DELETE /users/1 does while the build computes: the ledger, then the online rows.
            if phase == "offline" and not deleted:
                DeletionLedger(settings.state_dir).add(1)
                delete_user_online(reader.store, 1)
                deleted.append(1)

        report = build_feature_store(world_dir, settings, as_of=AS_OF, progress=serving_deletes_user_1)
    assert deleted == [1] and report.excluded_users == 0  # the build started before the deletion
    gone = FeastFeatureReader(settings).online(1, [10]).loc[10]
    assert np.isnan(gone["monetary_90d"]) and np.isnan(gone["repurchase_due_ratio"]), gone.to_dict()
    assert FeastFeatureReader(settings).online(4, [11]).loc[11, "monetary_90d"] == 50.0  # others stay
    for table in sorted(settings.offline_dir.glob("*.parquet")):
        if "user_id" in pq.read_schema(table).names:
            assert 1 not in set(pq.read_table(table, columns=["user_id"])["user_id"].to_pylist()), table.name
