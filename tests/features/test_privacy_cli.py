"""`slotcast privacy delete`: what `DELETE /users/{id}` does, without the service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.privacy import DeletionLedger, pending_online_deletions
from features.retrieval import FeastFeatureReader
from features.settings import FeatureSettings
from pipelines.cli import main
from tests.features.test_online_deletion import _click, _clicks


def _env(monkeypatch: pytest.MonkeyPatch, settings: FeatureSettings) -> None:
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("SLOTCAST_ONLINE_STORE", settings.online_store)
    monkeypatch.setenv("SLOTCAST_REDIS_URL", settings.redis_url)


def test_delete_records_the_users_and_removes_their_online_rows(
    built_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    reader = FeastFeatureReader(built_store)
    doomed, listed, kept = 3001, [3002, 3003], 3004
    _click(reader, [doomed, *listed, kept], stream=102)
    ids = tmp_path / "erasure-requests.txt"
    ids.write_text("# from the brand's compliance desk\n3002\n\n3003  # by mail\n")
    _env(monkeypatch, built_store)
    assert main(["privacy", "delete", str(doomed), "--file", str(ids)]) == 0
    assert "3 user(s) added to the deletion ledger" in capsys.readouterr().out
    assert {doomed, *listed} <= DeletionLedger(built_store.state_dir).user_ids()
    assert np.isnan(_clicks(reader, [doomed, *listed], stream=102)).all()
    assert _clicks(reader, [kept], stream=102) == [1.0]
    assert main(["privacy", "delete", str(doomed)]) == 0  # again: nothing new, nothing broken
    assert "0 user(s) added to the deletion ledger (1 were in it)" in capsys.readouterr().out


def test_bad_ids_are_refused_before_anything_is_recorded(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    _env(monkeypatch, sqlite_store)
    before = DeletionLedger(sqlite_store.state_dir).user_ids()
    bad = tmp_path / "ids.txt"
    bad.write_text("3010\nuser-7\n")
    for args, named in ((["3010", "x1"], "'x1'"), (["--file", str(bad)], f"{bad}:2"), (["--", "-5"], "negative"),
                        ([], "no user id given")):  # fmt: skip
        assert main(["privacy", "delete", *args]) == 2, args
        assert named in " ".join(capsys.readouterr().err.split()), args
    assert DeletionLedger(sqlite_store.state_dir).user_ids() == before


def test_an_unreachable_online_store_leaves_the_rows_to_the_next_build(
    sqlite_store: FeatureSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    down = FeatureSettings(
        state_dir=sqlite_store.state_dir, online_store="redis", redis_url="redis://127.0.0.1:1/0"
    )
    _env(monkeypatch, down)
    assert main(["privacy", "delete", "3020"]) == 1
    assert "left to the next `slotcast features build`" in " ".join(capsys.readouterr().out.split())
    assert 3020 in DeletionLedger(sqlite_store.state_dir).user_ids()
    assert 3020 in pending_online_deletions(sqlite_store.state_dir).user_ids()
