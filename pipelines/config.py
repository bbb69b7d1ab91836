"""The pipeline's config file: a strict pydantic model (unknown keys are errors that name the file);
relative paths in it are read from the file's own directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.yaml_file import read_yaml
from pipelines.messages import problems


class _Strict(BaseModel):
    # strict: a value of the wrong type is refused, not converted (YAML's `true` read as 1 for a
    # count, '6' as 6); paths alone are read from strings (Field(strict=False)).
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        """A section with nothing under it (`train:` alone, every key commented out) is YAML's
        null: all of its defaults, as if it were absent; it was refused as "not a dictionary".
        An optional section (``data.import``) stays None: absent."""
        if not isinstance(data, dict):
            return data
        sections = {
            key
            for name, f in cls.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
            for key in (name, f.alias)
        }
        return {k: {} if v is None and k in sections else v for k, v in data.items()}


class SimulateConfig(_Strict):
    users: int = Field(20_000, gt=0)
    products: int = Field(2_000, gt=0)
    days: int = Field(14, gt=0)
    seed: int = 7

    @model_validator(mode="after")
    def _the_simulator_accepts_it(self) -> SimulateConfig:
        """The simulator's own limits (at least 10 users, 20 products ...) checked when the config is
        read, not when the data step runs: a bad world is a bad config (exit 2), not a failed step."""
        from pipelines.simulator.config import SimConfig

        try:
            SimConfig(**self.model_dump())
        except ValidationError as exc:
            raise ValueError(problems(exc)) from None
        return self


class ImportConfig(_Strict):
    format: Literal["movielens", "taobao", "retailrocket", "yoochoose"]
    input: Path = Field(strict=False)


class DataConfig(_Strict):
    source: Literal["simulate", "import", "dir"] = "simulate"
    simulate: SimulateConfig = SimulateConfig()
    import_: ImportConfig | None = Field(None, alias="import")
    # source: dir -> use an existing canonical data directory as it is
    dir: Path | None = Field(None, strict=False)

    @model_validator(mode="after")
    def _the_source_has_its_section(self) -> DataConfig:
        """Checked when the config is read (exit 2), not once the data step runs (a failed step)."""
        if self.source == "dir" and self.dir is None:
            raise ValueError("source is 'dir' but data.dir is not set")
        if self.source == "import" and self.import_ is None:
            raise ValueError("source is 'import' but the data.import section is missing")
        # Read by no step otherwise: a world simulated into $STATE/data, not the dir or log given.
        for given, field, source in ((self.dir, "data.dir", "dir"), (self.import_, "data.import", "import")):
            if given is not None and self.source != source:
                raise ValueError(
                    f"{field} is read only with source {source!r}; source is {self.source!r} "
                    "(simulate and import write $SLOTCAST_STATE_DIR/data)"
                )
        return self


class ValidateConfig(_Strict):
    max_quarantine_share: float = Field(0.05, ge=0, le=1)


class FeaturesConfig(_Strict):
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str | None = None


class TrainConfig(_Strict):
    hpo_trials: int = Field(0, ge=0)
    label: Literal["purchase", "click", "cart"] = "purchase"
    objective: Literal["binary", "lambdarank"] = "binary"
    als_factors: int = Field(64, gt=0)
    als_iterations: int = Field(15, gt=0)
    # tcp://host:8786 or local:N: the ranker's final fit on Dask (None: in process, or the env's)
    dask_scheduler: str | None = None
    # register a new version even when the latest was trained on the same inputs (`train --again`)
    again: bool = False

    @field_validator("dask_scheduler")
    @classmethod
    def _dask_address(cls, v: str | None) -> str | None:
        from training.settings import parse_dask_scheduler

        if v is not None:
            parse_dask_scheduler(v)
        return v


class EvaluateConfig(_Strict):
    policies: list[str] = Field(["popular", "als", "als+ranker", "champion", "challenger"], min_length=1)
    k: int = Field(6, gt=0)
    n_boot: int = Field(400, ge=50)
    max_users: int = Field(5000, ge=10)
    max_requests: int = Field(20_000, ge=100)  # off-policy on a user sample of the held-out log
    # The held-out share of the time span; None: training's test split, the window the model it
    # registers did not see (a larger one replays the model on events it was fitted on).
    test_fraction: float | None = Field(None, gt=0, lt=1)

    @field_validator("policies")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        # Refused when the config is read: was found by the evaluate step, after data, features and train.
        from pipelines.commands.evaluate_policies import KNOWN_POLICIES

        unknown = [n for n in names if n not in KNOWN_POLICIES]
        if unknown:
            raise ValueError(f"unknown policy {', '.join(unknown)}; known: {', '.join(KNOWN_POLICIES)}")
        return names


class PromoteConfig(_Strict):
    force: bool = False


class PipelineConfig(_Strict):
    """The whole pipeline; each step reads its own section (and is cached on it)."""

    name: str = "demo"
    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    features: FeaturesConfig = FeaturesConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    promote: PromoteConfig = PromoteConfig()

    def sections(self) -> dict[str, object]:
        """The config as plain data keyed by section, for the step cache keys."""
        return self.model_dump(mode="json", by_alias=True)


class ConfigError(ValueError):
    exit_code = 2


DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def load_config(path: Path | None) -> PipelineConfig:
    """Read and check a pipeline config; ``None`` reads the demo config shipped with the package."""
    path = DEMO_CONFIG if path is None else path
    raw = read_yaml(Path(path), "config file", ConfigError) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections")
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {problems(exc)}") from exc
    return _anchored(cfg, Path(path).resolve().parent)


def _anchored(cfg: PipelineConfig, base: Path) -> PipelineConfig:
    """Relative paths in the file are read from the file's directory, as a config's paths are
    (``data.dir``, ``data.import.input``): not from wherever the command runs, so that the same
    file names the same data from anywhere, and the step cache records absolute paths."""

    def at(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else base / p

    data = cfg.data
    update: dict[str, object] = {}
    if data.dir is not None:
        update["dir"] = at(data.dir)
    if data.import_ is not None:
        update["import_"] = data.import_.model_copy(update={"input": at(data.import_.input)})
    return cfg.model_copy(update={"data": data.model_copy(update=update)}) if update else cfg
