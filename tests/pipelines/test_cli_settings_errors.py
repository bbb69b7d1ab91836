"""A bad SLOTCAST_* variable: one line naming the variable (exit 2), not pydantic's four-line dump
("1 validation error for TrainSettings / hpo_trials / Input should be ... / For further
information visit https://errors.pydantic.dev/...") that names a field, not the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("SLOTCAST_HPO_TRIALS", "abc", "SLOTCAST_HPO_TRIALS: Input should be a valid integer"),
        ("SLOTCAST_SPLIT__TEST", "0.3", "SLOTCAST_SPLIT__TEST: split fractions must sum to 1, got 1.200"),
        (
            "SLOTCAST_RANKER__NUM_LEAVES",
            "many",
            "SLOTCAST_RANKER__NUM_LEAVES: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_training_variable_is_one_line_naming_it(
    env: str, value: str, needle: str, tmp_path: Path, state_dir: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv(env, value)
    assert main(["train", "--data", str(tmp_path), "--no-features"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "errors.pydantic.dev" not in err, err
    assert err.startswith("error: bad setting: ")
    assert main(["promote"]) == 2
    assert needle in capsys.readouterr().err


def test_a_bad_variable_of_another_settings_class_is_named_too(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLOTCAST_PRIOR_STRENGTH", "-1")  # FeatureSettings
    assert main(["segments", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SLOTCAST_PRIOR_STRENGTH: Input should be greater than 0" in err, err


def test_a_pipeline_step_failing_on_a_bad_variable_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.runner import PipelineError, Runner, Step, StepResult
    from training.settings import TrainSettings

    def train(cfg: object, up: object) -> StepResult:
        TrainSettings()
        return StepResult()

    monkeypatch.setenv("SLOTCAST_K", "ten")
    with pytest.raises(PipelineError) as err:
        Runner([Step("train", train)], {}, tmp_path).run()
    assert (
        str(err.value)
        == "step 'train' failed: bad setting: SLOTCAST_K: Input should be a valid integer, unable to parse string as an integer"
    )
