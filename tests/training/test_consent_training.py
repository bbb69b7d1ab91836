"""Training keeps no profile of a user without personalization consent: the registered bundle's
ALS holds neither their id nor their factors (the users table's flag, changed by the consent
changes serving recorded). Before, every user's factors were saved, consenting or not."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.consent import ConsentLedger
from tests.training.conftest import fast_settings
from training.registry import load_bundle
from training.run import train
from training.tracking import configure

pytestmark = pytest.mark.slow


def test_users_without_personalization_consent_leave_no_profile_in_the_bundle(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    data = tmp_path / "data"
    shutil.copytree(world, data)
    users = pd.read_parquet(data / "users.parquet")
    active = pd.read_parquet(data / "events.parquet")["user_id"].value_counts().index.to_numpy()
    table_no = [int(u) for u in active[:5]]  # the users table says no
    users.loc[users["user_id"].isin(table_no), "consent_personalization"] = False
    users.to_parquet(data / "users.parquet")
    flag = users.set_index("user_id")["consent_personalization"].fillna(False)
    withdrew, given, kept = (int(u) for u in active[5:8])
    assert flag[[withdrew, given, kept]].all()
    s = fast_settings(tmp_path / "state")
    ConsentLedger(s.state_dir).add(withdrew, False, None)  # PUT /users/{id}/consent
    ConsentLedger(s.state_dir).add(given, False, None)
    ConsentLedger(s.state_dir).add(given, True, None)  # given again: the latest change wins
    report = train(data, s, reader=None)

    mlflow.set_tracking_uri(s.tracking_uri)
    als = load_bundle(s.registered_model, "challenger").als
    held = set(als.users.ids.tolist())
    assert not held & {*table_no, withdrew}
    assert {given, kept} <= held
    assert np.abs(als.user_factors[als.users.index(np.array([given, kept]))]).max() > 0
    no_consent = int((~flag).sum()) + 1  # the table's, and the one withdrawn
    logged = int(configure(s).get_run(report.run_id).data.params["users_without_personalization_consent"])
    assert 0 < logged <= no_consent


def test_a_user_deleted_while_training_runs_is_not_in_the_bundle(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training reads the deletion ledger when it starts; a `DELETE` during the fit came too late
    for the events it read, and the bundle it registered kept the user's factors until `slotcast
    privacy purge`. The ledger is read again before the bundle is made."""
    import mlflow

    import training.run as run
    from features.privacy import DeletionLedger

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = fast_settings(tmp_path / "state")
    active = pd.read_parquet(world / "events.parquet")["user_id"].value_counts().index.to_numpy()
    gone, kept = int(active[0]), int(active[1])
    fit_all = run.fit_all

    def fit_then_delete(*args, **kw):  # type: ignore[no-untyped-def]
        out = fit_all(*args, **kw)
        assert gone in set(out.als.users.ids.tolist())  # fitted on their events
        DeletionLedger(s.state_dir).add(gone)  # DELETE /users/{id} while the run goes on
        return out

    monkeypatch.setattr(run, "fit_all", fit_then_delete)
    report = train(world, s, reader=None)
    mlflow.set_tracking_uri(s.tracking_uri)
    bundle = load_bundle(s.registered_model, "challenger")
    held = set(bundle.als.users.ids.tolist())
    assert gone not in held and kept in held
    tag = configure(s).get_run(report.run_id).data.tags["slotcast.users_deleted_during_run"]
    assert tag == "1"
