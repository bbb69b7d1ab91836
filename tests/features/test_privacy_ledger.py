from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.privacy import DeletionLedger


def test_ledger_is_append_only_and_survives_reopening(tmp_path: Path) -> None:
    ledger = DeletionLedger(tmp_path)
    assert ledger.user_ids() == set() and not ledger.contains(5)
    ledger.add(5)
    ledger.add(7)
    ledger.add(5)  # idempotent
    assert DeletionLedger(tmp_path).user_ids() == {5, 7}
    assert 7 in ledger and 8 not in ledger
    assert (tmp_path / "privacy" / "deleted_users.txt").read_text() == "5\n7\n"


def test_ids_read_from_arrays_are_found_and_the_cache_is_not_exposed(tmp_path: Path) -> None:
    ledger = DeletionLedger(tmp_path)
    ledger.add_many(np.array([3, 4], dtype=np.int64))
    ids = np.array([3, 4, 9], dtype=np.int64)
    assert [u in ledger for u in ids] == [True, True, False]  # np.int64, as frames and arrays hold
    assert np.int32(4) in ledger and True not in ledger and "3" not in ledger
    ledger.user_ids().add(9)  # the caller's copy; the ledger is unchanged
    assert 9 not in ledger and DeletionLedger(tmp_path).user_ids() == {3, 4}


def test_a_garbled_ledger_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "privacy" / "deleted_users.txt"
    p.parent.mkdir()
    p.write_text("5\nbob\n")
    with pytest.raises(ValueError, match=r"deleted_users.txt:2: not a user id"):
        DeletionLedger(tmp_path).user_ids()


def test_a_deletion_the_online_store_missed_is_done_by_the_next_build(
    world_dir: Path, tmp_path: Path
) -> None:
    """DELETE /users/{id} while the online store was down answered 200 and left the user's rows
    there; the log said "retried by the next build", which excluded them from the new tables but
    never removed the rows already online. Serving now records them as pending; the build removes them."""
    import numpy as np

    from features.live import ingest_live_events
    from features.retrieval import FeastFeatureReader
    from tests.features.conftest import _build

    settings = _build(tmp_path, world_dir)
    reader = FeastFeatureReader(settings)
    ingest_live_events(reader, [{"user_id": 4, "stream_id": 100, "type": "product_click"}])
    assert reader.online(4, [11], stream_id=100).loc[11, "monetary_90d"] == 50.0
    privacy = tmp_path / "privacy"  # what serving writes when the store refuses the deletion
    privacy.mkdir()
    (privacy / "deleted_users.txt").write_text("4\n")
    (privacy / "online_deletions_pending.txt").write_text("4\n")
    _build(tmp_path, world_dir)
    gone = FeastFeatureReader(settings).online(4, [11], stream_id=100).loc[11]
    assert np.isnan(gone["monetary_90d"]) and np.isnan(gone["live_clicks"])
    assert not (privacy / "online_deletions_pending.txt").exists()
    assert DeletionLedger(tmp_path).user_ids() == {4}  # the ledger itself stays
    assert not list(privacy.glob("*.taken"))


def test_a_deletion_recorded_while_the_build_retries_waits_for_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build used to read the pending list, remove those rows, then delete the whole file: a
    deletion serving recorded in between was dropped without its rows ever being removed. A removal
    that fails keeps its users for the next build."""
    import features.privacy as privacy

    pending = privacy.pending_online_deletions(tmp_path)
    pending.add(4)
    removed: list[set[int]] = []

    def delete_rows(store: object, ids: set[int]) -> int:
        removed.append(set(ids))
        privacy.pending_online_deletions(tmp_path).add(9)  # serving, meanwhile (store down again)
        return len(ids)

    monkeypatch.setattr(privacy, "delete_user_online", delete_rows)
    assert privacy.retry_online_deletions(None, tmp_path) == 1 and removed == [{4}]
    assert privacy.pending_online_deletions(tmp_path).user_ids() == {9}

    def store_down(store: object, ids: set[int]) -> int:
        raise ConnectionError("online store down")

    monkeypatch.setattr(privacy, "delete_user_online", store_down)
    with pytest.raises(ConnectionError):
        privacy.retry_online_deletions(None, tmp_path)
    monkeypatch.setattr(privacy, "delete_user_online", lambda store, ids: removed.append(set(ids)))
    assert privacy.retry_online_deletions(None, tmp_path) == 1 and removed[-1] == {9}
    assert privacy.retry_online_deletions(None, tmp_path) == 0 and len(removed) == 2
    assert not list((tmp_path / "privacy").iterdir())


def test_two_writes_with_one_mtime_are_both_seen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file system whose clock is coarse (1 s on some network mounts) gives two appends in the
    same second one mtime: a reader that cached the first must still see the second."""
    import os

    from features.consent import ConsentLedger
    from features.privacy import DeletionLedger

    deletions, consents = DeletionLedger(tmp_path), ConsentLedger(tmp_path)
    deletions.add(1)
    consents.add(1, False, None)
    reader_d, reader_c = DeletionLedger(tmp_path), ConsentLedger(tmp_path)
    assert reader_d.user_ids() == {1} and reader_c.overrides() == {1: (False, None)}
    stamps = {p: os.stat(p).st_mtime_ns for p in (deletions.path, consents.path)}
    deletions.add(2)
    consents.add(2, None, False)
    for p, ns in stamps.items():
        os.utime(p, ns=(ns, ns))  # the second write in the same tick of a coarse clock
    assert reader_d.user_ids() == {1, 2}
    assert reader_c.overrides() == {1: (False, None), 2: (None, False)}
