"""`slotcast pipeline run --from/--until`: a step name that is not one, or a range that runs
nothing, is a usage error naming the option (exit 2) before the config is read or a step runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--until", "bogus"], "--until"),
        (["--from", "trian"], "--from"),
        (["--from", "train", "--until", "data"], "--until"),  # ran data (cached) and nothing it was asked for
    ],
)
def test_a_bad_step_option_is_a_usage_error_naming_it(
    args: list[str], needle: str, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipeline", "run", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "data, validate, features, train, promote, evaluate" in " ".join(err.split())
    assert not (state_dir / "pipeline").exists() and not (state_dir / "data").exists()
