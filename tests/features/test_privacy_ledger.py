from __future__ import annotations

from pathlib import Path

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


def test_a_garbled_ledger_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "privacy" / "deleted_users.txt"
    p.parent.mkdir()
    p.write_text("5\nbob\n")
    with pytest.raises(ValueError, match=r"deleted_users.txt:2: not a user id"):
        DeletionLedger(tmp_path).user_ids()
