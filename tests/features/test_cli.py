"""`slotcast features show`, `slotcast segments show` and bad input, through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.settings import FeatureSettings
from pipelines.cli import main


def test_segments_show_prints_sizes_and_mean_rfm(
    sqlite_store: FeatureSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["segments", "show", "--state-dir", str(sqlite_store.state_dir)]) == 0
    out = capsys.readouterr().out
    for seg in ("potential", "engaged_viewer", "new", "promising"):
        assert seg in out
    assert "60.00" in out  # user 1's monetary_90d, the only 'potential' user


def test_features_show_a_user_and_products(
    sqlite_store: FeatureSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "features",
            "show",
            "--user",
            "1",
            "--product",
            "10",
            "--product",
            "11",
            "--state-dir",
            str(sqlite_store.state_dir),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "segment potential" in out and "price_vs_user_aov" in out and "2.5" in out


def test_build_with_a_missing_data_dir_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["features", "build", "--data", str(tmp_path / "nope"), "--state-dir", str(tmp_path)])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_show_before_any_build_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", "show", "--user", "1", "--state-dir", str(tmp_path)]) == 1
    assert "slotcast features build" in capsys.readouterr().err


def test_build_rejects_a_bad_as_of(world_dir: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "features",
                "build",
                "--data",
                str(world_dir),
                "--as-of",
                "yesterday",
                "--state-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
