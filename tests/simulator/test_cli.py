"""`slotcast data generate` end to end through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.data_model import TABLES, read_table
from pipelines.cli import EXIT_BAD_INPUT, EXIT_OK, main


def test_generate_writes_every_table_and_the_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    args = ["data", "generate", "--users", "500", "--products", "200", "--days", "2", "--seed", "5"]
    code = main([*args, "--out", str(out), "--no-progress"])
    assert code == EXIT_OK
    for name in TABLES:
        assert read_table(out, name).num_rows > 0, name
    assert (out / "truth" / "world.npz").exists() and (out / "truth" / "truth.json").exists()
    printed = capsys.readouterr().out
    assert "events" in printed and "events/s" in printed


def test_default_out_is_under_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(tmp_path / "state"))
    code = main(["data", "generate", "--users", "200", "--products", "150", "--days", "1", "--no-progress"])
    assert code == EXIT_OK
    assert (tmp_path / "state" / "data" / "events.parquet").exists()


def test_bad_options_exit_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 120 products over 12 categories cannot fill a 6-slot carousel twice over
    code = main(["data", "generate", "--products", "120", "--out", str(tmp_path), "--no-progress"])
    assert code == EXIT_BAD_INPUT
    assert "products per category" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "events.parquet").exists()
    assert main(["data", "generate", "--days", "0", "--out", str(tmp_path)]) == EXIT_BAD_INPUT


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "generate", "--help"]) == EXIT_OK
    text = capsys.readouterr().out
    for opt in ("--users", "--products", "--days", "--seed", "--out", "--epsilon"):
        assert opt in text


def test_on_air_range_sets_products_per_stream_segment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--on-air-min/--on-air-max: the serving benchmark's ~100 products on air per stream."""
    out = tmp_path / "data"
    args = ["data", "generate", "--users", "300", "--products", "600", "--days", "1", "--seed", "3"]
    assert (
        main([*args, "--on-air-min", "30", "--on-air-max", "34", "--out", str(out), "--no-progress"])
        == EXIT_OK
    )
    sp = read_table(out, "stream_products").to_pandas()
    per_segment = sp.groupby(["stream_id", "on_air_from"]).size()
    assert len(per_segment) > 10
    assert per_segment.min() >= 30 and per_segment.max() <= 34
    # A minimum below the slots is refused with the option's reason, nothing written.
    bad = tmp_path / "bad"
    assert main([*args, "--on-air-min", "3", "--out", str(bad), "--no-progress"]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert "--on-air-min/--on-air-max" in err and "need slots (6) <= min <= max" in err, err
    assert not (bad / "events.parquet").exists()
