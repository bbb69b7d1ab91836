"""`slotcast privacy purge` reaches the models: every registered bundle version trained before a
deletion is rewritten without the user's ALS factors (same version, same aliases), loads as
serving loads it, and a version that cannot be read is named while the others are purged.

Before, the registry kept a deleted user's factors in every version trained before the deletion."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from features.privacy import DeletionLedger
from pipelines.cli import main
from tests.training.conftest import FirstChampion
from training.registry import CHAMPION, download_bundle, load_bundle, register_bundle, version_by_alias
from training.registry_erasure import ERASURE_TAG
from training.tracking import experiment_id

pytestmark = pytest.mark.slow


def _local(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


def test_purge_rewrites_every_registered_version_without_the_deleted_users(
    first_champion: FirstChampion,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, trained, client = first_champion.settings, first_champion.trained, first_champion.client
    assert first_champion.promotion.promoted

    def copy_as_new_version() -> str:  # a later run registering the same bundle (a retrain)
        run = client.create_run(experiment_id(client, s), run_name="retrain")
        with tempfile.TemporaryDirectory() as tmp:
            d = download_bundle(s.registered_model, CHAMPION, Path(tmp))
            return str(register_bundle(client, run.info.run_id, d, s.registered_model).version)

    second = copy_as_new_version()  # the challenger
    before = load_bundle(s.registered_model, CHAMPION)
    held = before.als.users.ids
    gone, kept = [int(held[0]), int(held[5])], np.asarray(held[1:5])
    DeletionLedger(state_dir).add_many(gone)

    # As a user's shell has it: purge printed MLflow's "Downloading artifacts" bars, three a version,
    # among its own table (train, promote and evaluate turn them off).
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    assert main(["privacy", "purge"]) == 0
    out = capsys.readouterr()
    assert "MLflow model 'slotcast'" in out.out
    assert "Downloading artifacts" not in out.err + out.out

    for ref in (CHAMPION, "challenger", trained.version, second):
        b = load_bundle(s.registered_model, ref)  # serving's path: checksums verify
        assert not set(gone) & set(b.als.users.ids.tolist()), ref
        np.testing.assert_array_equal(
            b.als.user_factors[b.als.users.index(kept)], before.als.user_factors[before.als.users.index(kept)]
        )
        np.testing.assert_array_equal(b.als.item_factors, before.als.item_factors)
    assert str(version_by_alias(client, s.registered_model, CHAMPION).version) == trained.version
    for v in (trained.version, second):
        assert client.get_model_version(s.registered_model, v).tags[ERASURE_TAG].startswith("2 (last ")
    v1_files = _local(client.get_model_version_download_uri(s.registered_model, trained.version))
    stamp = {p: p.stat().st_mtime_ns for p in v1_files.rglob("*") if p.is_file()}

    # Again with nothing new: no version is rewritten.
    assert main(["privacy", "purge"]) == 0
    assert {p: p.stat().st_mtime_ns for p in v1_files.rglob("*") if p.is_file()} == stamp

    # A version whose files cannot be read is named (exit 1); the others are purged all the same.
    third = copy_as_new_version()
    (_local(client.get_model_version_download_uri(s.registered_model, third)) / "als" / "users.npz").unlink()
    later = int(held[6])
    DeletionLedger(state_dir).add(later)
    capsys.readouterr()
    assert main(["privacy", "purge"]) == 1
    out = capsys.readouterr().out
    assert f"slotcast version {third}" in out and "users.npz" in out
    for ref in (trained.version, second):
        assert later not in set(load_bundle(s.registered_model, ref).als.users.ids.tolist())
        assert client.get_model_version(s.registered_model, ref).tags[ERASURE_TAG].startswith("3 (last ")
