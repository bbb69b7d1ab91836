"""The pipeline config: the shipped demo config loads, and mistakes are refused with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config import DEMO_CONFIG, ConfigError, PipelineConfig, load_config


def test_the_demo_config_is_the_default_and_is_valid() -> None:
    cfg = load_config(None)
    assert cfg == load_config(DEMO_CONFIG)
    assert cfg.data.source == "simulate" and cfg.data.simulate.users > 0
    assert set(cfg.sections()) >= {"data", "validate", "features", "train", "evaluate", "promote"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("data: {simulate: {users: -5}}\n", "data.simulate.users"),
        # within the config's own bounds but not the simulator's: was a failed data step (exit 1)
        (
            "data: {simulate: {users: 5}}\n",
            "data.simulate: users: Input should be greater than or equal to 10",
        ),
        ("trian: {}\n", "trian: Extra inputs are not permitted"),
        ("features: {online_store: postgres}\n", "features.online_store"),
        ("- just\n- a list\n", "must be a mapping"),
        ("data: [unclosed\n", "not valid YAML: line 2, column 1"),
        # these three were found by their step, after the steps before it had run (exit 1)
        ("evaluate: {policies: [popular, nope]}\n", "evaluate.policies: unknown policy nope; known: popular"),
        ("data: {source: dir}\n", "data: source is 'dir' but data.dir is not set"),
        ("data: {source: import}\n", "data: source is 'import' but the data.import section is missing"),
        # read by no step: the world was simulated into $STATE/data, the log left unread
        ("data: {dir: mydata}\n", "data: data.dir is read only with source 'dir'; source is 'simulate'"),
        (
            "data: {import: {format: taobao, input: UserBehavior.csv}}\n",
            "data: data.import is read only with source 'import'; source is 'simulate'",
        ),
        ("evaluate: {policies: []}\n", "evaluate.policies: List should have at least 1 item"),
    ],
)
def test_bad_configs_name_the_file_and_the_field(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert str(f) in str(err.value) and needle in str(err.value)
    assert "\n" not in str(err.value)  # one line, as every CLI error
    assert err.value.exit_code == 2


def test_an_empty_section_means_all_its_defaults(tmp_path: Path) -> None:
    # `train:` with nothing (or only comments) under it is YAML's null: it was refused as
    # "train: Input should be a valid dictionary or instance of TrainConfig".
    f = tmp_path / "empty-sections.yaml"
    f.write_text("name: demo\ndata:\n  simulate:\nvalidate:\nfeatures:\ntrain:\n  # hpo_trials: 3\n"
                 "evaluate:\npromote:\n")  # fmt: skip
    assert load_config(f).sections() == PipelineConfig().sections()
    # An optional section left empty is absent, as before: an import still needs its own.
    f.write_text("data:\n  source: import\n  import:\n")
    with pytest.raises(ConfigError, match="the data.import section is missing"):
        load_config(f)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_directory_or_binary_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):  # was an IsADirectoryError traceback
        load_config(tmp_path)
    f = tmp_path / "bin.yaml"
    f.write_bytes(b"\x95\xff\x00 not text")
    with pytest.raises(ConfigError, match="not a text"):  # was a UnicodeDecodeError naming no file
        load_config(f)


def test_the_train_section_can_send_the_ranker_fit_to_dask(tmp_path: Path) -> None:
    from pipelines.steps import _train_settings

    f = tmp_path / "dask.yaml"
    f.write_text("train: {dask_scheduler: 'tcp://sched:8786'}\n")
    cfg = load_config(f)
    assert _train_settings(tmp_path, cfg.sections()).dask_scheduler == "tcp://sched:8786"
    assert _train_settings(tmp_path, load_config(None).sections()).dask_scheduler is None
    f.write_text("train: {dask_scheduler: 'local:none'}\n")
    with pytest.raises(ConfigError, match="train.dask_scheduler: 'local:none': a local cluster is local:N"):
        load_config(f)


def test_relative_paths_are_read_from_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were taken from wherever the command ran: the same config found another directory (or
    none: 'data.dir data holds no events.parquet', exit 1) when run from elsewhere, and the step
    cache recorded the relative path, so it no longer matched from another directory."""
    project = tmp_path.resolve() / "project"
    project.mkdir()
    f = project / "pipeline.yaml"
    f.write_text("data: {source: dir, dir: data}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(f).data.dir == project / "data"
    assert load_config(Path("../project/pipeline.yaml")).data.dir == project / "data"
    f.write_text("data: {source: import, import: {format: movielens, input: logs/u.data}}\n")
    imp = load_config(f).data.import_
    assert imp is not None and imp.input == project / "logs" / "u.data"
    f.write_text(f"data: {{source: dir, dir: {tmp_path / 'abs'}}}\n")  # an absolute path stays
    assert load_config(f).data.dir == tmp_path / "abs"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # YAML's true is not a number: it read as 1 (one optuna trial, a 1-user world)
        ("train: {hpo_trials: true}\n", "train.hpo_trials: Input should be a valid integer"),
        ("data: {simulate: {users: true}}\n", "data.simulate.users: Input should be a valid integer"),
        ("promote: {force: 1}\n", "promote.force: Input should be a valid boolean"),
        ("evaluate: {k: '6'}\n", "evaluate.k: Input should be a valid integer"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_converted(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "typed.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(f)


def test_numbers_and_paths_still_read_as_written(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text("validate: {max_quarantine_share: 0}\ndata: {source: dir, dir: d}\npromote: {force: true}\n")
    cfg = load_config(f)
    assert cfg.validate_.max_quarantine_share == 0.0 and cfg.data.dir == tmp_path.resolve() / "d"
    assert cfg.promote.force is True
