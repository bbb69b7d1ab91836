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


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        # PyYAML's own message spans five lines with a caret; now where and what, on one
        ('rules:\n  - name: vip\n    when: {monetary_90d: ">= 5"\n', "not valid YAML: line 4, column 1"),
        (b"\xff\xfe rules", "not a text (UTF-8) file"),  # was a UnicodeDecodeError naming no file
        (None, "is a directory, not a segment rules file"),  # was an IsADirectoryError traceback, exit 1
        (
            'rules:\n  - name: vip\n    when: {monetary_90d: ">= 5"}\n    colour: red\n',
            "rule 1: unknown key(s) 'colour'",
        ),
        (
            "rules:\n  - name: vip\n    when: {monetary_365d: '> 5'}\n",
            "rule 1 (vip): unknown feature 'monetary_365d'",
        ),
    ],
)
def test_a_bad_segments_file_is_one_line_naming_the_file_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, needle: str
) -> None:
    seg = tmp_path / "seg.yaml"
    if content is None:
        seg.mkdir()
    elif isinstance(content, bytes):
        seg.write_bytes(content)
    else:
        seg.write_text(content)
    args = [
        "features",
        "build",
        "--data",
        str(tmp_path),
        "--segments",
        str(seg),
        "--state-dir",
        str(tmp_path),
    ]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and err.startswith(f"error: {seg}: ") and needle in err
    assert captured.out == ""  # reported before the progress bar starts, so it stands alone


def _monetary_of_user_1(state: Path) -> float:
    from features.retrieval import FeastFeatureReader

    reader = FeastFeatureReader(FeatureSettings(state_dir=state))
    return float(reader.latest_user_features(["monetary_90d"]).loc[1, "monetary_90d"])


def test_as_of_a_bare_date_means_the_end_of_that_day(
    world_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--as-of 2026-01-31` read as that day's first instant left out all of Jan 31 (user 1's
    purchase of 30.00 at 11:30 among them); it means "as of Jan 31", the day included. A date
    and time is taken as written: T00:00 is the start of the day."""
    build = ["features", "build", "--data", str(world_dir), "--state-dir"]
    assert main([*build, str(tmp_path / "day"), "--as-of", "2026-01-31"]) == 0
    assert "as of 2026-02-01T00:00:00+00:00" in capsys.readouterr().out
    assert _monetary_of_user_1(tmp_path / "day") == 60.0  # 10 + 20 + Jan 31's 30
    assert main([*build, str(tmp_path / "midnight"), "--as-of", "2026-01-31T00:00"]) == 0
    assert "as of 2026-01-31T00:00:00+00:00" in capsys.readouterr().out
    assert _monetary_of_user_1(tmp_path / "midnight") == 30.0
    assert main(["features", "build", "--help"]) == 0
    assert "a date means the end of that day" in " ".join(capsys.readouterr().out.replace("│", " ").split())
