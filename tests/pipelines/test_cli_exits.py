"""Exit codes the CLI used to lose, and OS errors that used to end in a traceback."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from pipelines.cli import main

SMALL_WORLD = ["data", "generate", "--users", "300", "--products", "200", "--days", "1", "--no-progress"]


def test_ctrl_c_exits_130_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # typer returns Exit(130) for Ctrl-C outside standalone mode; main dropped it and exited 0.
    import pipelines.simulator

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipelines.simulator, "generate", interrupted)
    assert main([*SMALL_WORLD, "--out", str(tmp_path / "data")]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_ctrl_c_a_library_turned_into_its_own_error_is_still_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # DuckDB answers SIGINT with RuntimeError("Query interrupted"): a traceback mid `features build`.
    import pipelines.simulator

    def duckdb_like(*args: object, **kwargs: object) -> None:
        try:
            signal.raise_signal(signal.SIGINT)
            for _ in range(1000):  # the Python-level handler runs at the next bytecode boundary
                pass
        except KeyboardInterrupt:
            raise RuntimeError("Query interrupted") from None

    monkeypatch.setattr(pipelines.simulator, "generate", duckdb_like)
    before = signal.getsignal(signal.SIGINT)
    assert main([*SMALL_WORLD, "--out", str(tmp_path / "data")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_an_exit_code_a_command_raises_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # `slotcast serve` raises typer.Exit(1) when the server dies; main turned it into 0.
    class DyingServer:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def wait(self) -> int:
            return 3

    monkeypatch.setattr(subprocess, "Popen", DyingServer)
    assert main(["serve"]) == 1


def test_an_unusable_state_dir_is_one_line_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SLOTCAST_STATE_DIR", str(blocker / "state"))
    assert main(SMALL_WORLD) == 2  # was a NotADirectoryError traceback
    err = capsys.readouterr().err
    assert f"{blocker / 'state' / 'data'}: Not a directory" in err and err.count("\n") == 1


def test_evaluate_refuses_an_out_that_is_a_file_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    report.write_text("keep me")
    argv = ["evaluate", "--data", str(tmp_path), "--policies", "popular", "--out", str(report)]
    assert main([*argv, "--no-mlflow"]) == 2  # was a FileExistsError traceback after the evaluation
    assert "--out" in capsys.readouterr().err and report.read_text() == "keep me"
