"""The slotcast entry point: --help everywhere, documented exit codes, messages instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import AREAS, app, main


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for group in ("data", "features", "segments", "train", "promote", "evaluate", "serve", "pipeline"):
        assert group in top
    for argv in (["data", "generate"], ["data", "import"], ["data", "validate"], ["data", "append-events"], ["features", "build"],
                 ["pipeline", "run"], ["pipeline", "demo"], ["evaluate"], ["train"], ["promote"]):  # fmt: skip
        assert main([*argv, "--help"]) == 0, argv
        assert "Usage" in capsys.readouterr().out


def _commands() -> list[tuple[list[str], Any]]:
    """Every command and subcommand of the app, as (argv, command)."""
    import typer

    main(["--help"])  # registers the areas
    out, todo = [], [([], typer.main.get_command(app))]
    while todo:
        argv, cmd = todo.pop()
        out.append((argv, cmd))
        todo += [([*argv, name], sub) for name, sub in getattr(cmd, "commands", {}).items()]
    return out


def test_every_command_and_subcommand_prints_its_help_in_whole_paragraphs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = _commands()
    assert ["privacy", "purge"] in [argv for argv, _ in commands] and len(commands) > 20
    for argv, cmd in commands:
        assert main([*argv, "--help"]) == 0, argv
        assert "Usage" in capsys.readouterr().out, argv
        # typer's rich help prints a docstring's line breaks as they are: a paragraph wrapped in the
        # source came out cut mid-sentence at the terminal's width (`serve --help`: "the Feast" alone
        # on a line). So a command's paragraphs are one line each, as the terminal wraps them.
        broken = [p for p in (cmd.help or "").split("\n\n") if "\n" in p.strip()]
        assert not broken, (argv, broken)


def test_bad_usage_is_exit_2_with_the_option_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "generate", "--users", "3", "--out", "/tmp/never"]) == 2
    assert "--users" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2
    assert main(["pipeline", "run", "--from", "nope"]) == 2
    assert "unknown step 'nope'" in capsys.readouterr().err


def test_the_installed_command_runs_without_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "pipeline", "run", "--config", str(tmp_path / "missing.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr and "Traceback" not in proc.stderr
    assert set(AREAS) >= {"data", "pipeline"}


@pytest.mark.parametrize(
    "option, value", [("--trials", "-2"), ("--max-queries", "-5"), ("--candidates", "0")]
)
def test_train_refuses_out_of_range_sizes_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    # Before anything is read: a bad size used to reach the fit (candidates 0 registered a model).
    assert main(["train", "--data", str(tmp_path), "--no-features", option, value]) == 2
    assert option in capsys.readouterr().err


def test_train_help_names_the_training_settings_defaults(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.settings import TrainSettings

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    fields = TrainSettings.model_fields
    for field, option in (
        ("hpo_trials", "--trials"),
        ("max_queries", "--max-queries"),
        ("candidates_n", "--candidates"),
    ):
        assert f"(default: {fields[field].default}, or $SLOTCAST_{field.upper()})" in text, option
    assert f"(default: {fields['label'].default}, or $SLOTCAST_LABEL)" in text
    assert "--dask-scheduler ADDRESS" in text and "tcp://host:8786, or local:N" in text
    assert "(default: in process, or $SLOTCAST_DASK_SCHEDULER)" in text


def test_train_refuses_a_bad_dask_address_before_reading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path), "--no-features", "--dask-scheduler", "local:0"]) == 2
    err = capsys.readouterr().err
    assert "--dask-scheduler" in err and "local:N with N >= 1" in err


def test_features_show_names_an_unknown_feature_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "features",
        "show",
        "--user",
        "1",
        "--product",
        "2",
        "--service",
        "nope",
        "--state-dir",
        str(tmp_path),
    ]
    assert main(argv) == 2  # was a KeyError traceback once a store existed
    err = capsys.readouterr().err
    assert "unknown feature service 'nope'" in err and "ranker_v1" in err


def test_an_output_that_is_a_file_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both used to end in a FileExistsError traceback from mkdir.
    target = tmp_path / "a-file"
    target.write_text("not a directory")
    log = tmp_path / "UserBehavior.csv"
    log.write_text("1,10,5,pv,1511544070\n")
    assert main(["data", "import", "-f", "taobao", "-i", str(log), "-o", str(target), "--no-progress"]) == 2
    assert f"{target}: not a directory" in capsys.readouterr().err
    argv = ["data", "generate", "--users", "100", "--products", "300", "--days", "1", "--out", str(target)]
    assert main([*argv, "--no-progress"]) == 2
    assert "not a data directory" in capsys.readouterr().err
    assert target.read_text() == "not a directory"


def test_an_error_stays_one_line_when_piped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # rich wrapped it at 80 columns, cutting the path in two in logs and for grep.
    missing = tmp_path / ("a-rather-long-directory-name-" * 4)
    assert main(["data", "validate", "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{missing}: no such data directory" in err


def test_promote_with_nothing_registered_names_train_not_the_feature_store(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The feature store is opened only for a comparison (tests/training/test_promote_lazy_features.py):
    # it was opened first, so a missing store hid that there was nothing to promote.
    assert main(["promote", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "run `slotcast train` first" in err and "features build" not in err


def test_features_build_bad_as_of_is_a_usage_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["features", "build", "--data", str(tmp_path), "--as-of", "garbage"]) == 2
    out = capsys.readouterr()
    assert "Invalid value for --as-of: expected an ISO date or datetime, got 'garbage'" in out.err
    assert "features:" not in out.out  # no progress bar drawn for work that never starts


def test_features_build_as_of_before_the_first_event_is_refused(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.features.world import build_world

    data = build_world(tmp_path / "data")  # events from 2026-01-01
    assert main(["features", "build", "--data", str(data), "--as-of", "2016-01-01"]) == 2  # a typo'd year
    err = capsys.readouterr().err
    # A bare date is the end of that day (features build --help): the cut-off is the next midnight.
    assert "as of 2016-01-02T00:00:00+00:00 is not after the first event" in err  # was exit 0, empty store
    assert not (state_dir / "features" / "registry.db").exists()
