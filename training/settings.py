"""Training settings: one pydantic-settings object (env prefix ``SLOTCAST_``), built explicitly.

Hyperparameters (ALS, ranker) are kept apart from run options (splits, seed, tracking); the whole
object dumps flat into MLflow params with :func:`TrainSettings.flat_params`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.settings import StateDir
from models.als import ALSConfig
from models.popularity import RANKER_FEATURE
from models.ranker import RankerConfig

# The repository's .slotcast, as features/ and serving/ default to, so all parts meet by default.
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[1] / ".slotcast"
LABEL_EVENT = {"purchase": "purchase", "click": "product_click", "cart": "add_to_cart"}
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


def parse_dask_scheduler(value: str) -> tuple[str | None, int]:
    """``(scheduler address, 0)`` for ``tcp://host:8786`` (or ``host:8786``, tcp), ``(None, N)``
    for ``local:N``: a LocalCluster of N single-threaded worker processes made for the fit."""
    v = value.strip()
    if v == "local" or v.startswith("local:"):
        n = v.removeprefix("local").removeprefix(":")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"{value!r}: a local cluster is local:N with N >= 1 workers, e.g. local:2")
        return None, int(n)
    scheme, sep, rest = v.rpartition("://")
    if sep and scheme not in DASK_SCHEMES:
        raise ValueError(
            f"{value!r}: unknown Dask address scheme {scheme!r} (one of {', '.join(DASK_SCHEMES)})"
        )
    if not rest or (not sep and ":" not in rest):
        raise ValueError(f"{value!r} is not a Dask scheduler address: tcp://host:8786, host:8786 or local:N")
    return v, 0


def public_address(value: str) -> str:
    """An address (a Dask scheduler, an MLflow server) without user:password@ and query, for logs,
    error messages and MLflow params."""
    from urllib.parse import urlsplit

    if "://" not in value:
        return value
    parts = urlsplit(value)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


class EventWeights(BaseModel):
    """Confidence added to a (user, product) cell per event of each type.

    Watch time only counts on events that name a product: ``watch_log_scale * log1p(minutes)``.
    """

    model_config = ConfigDict(extra="forbid")

    product_click: float = 1.0
    add_to_cart: float = 3.0
    purchase: float = 8.0
    push_open: float = 0.5
    push_click: float = 1.0
    like: float = 0.5
    comment: float = 0.5
    share: float = 1.0
    watch_log_scale: float = 0.5

    def per_type(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if k != "watch_log_scale" and v != 0.0}


class SplitConfig(BaseModel):
    """Time-ordered splits: ALS history | ranker train queries | validation | test (fractions of time)."""

    model_config = ConfigDict(extra="forbid")

    history: float = Field(default=0.5, gt=0, lt=1)
    train: float = Field(default=0.3, gt=0, lt=1)
    valid: float = Field(default=0.1, gt=0, lt=1)
    test: float = Field(default=0.1, gt=0, lt=1)

    @field_validator("test")
    @classmethod
    def _sums_to_one(cls, v: float, info: Any) -> float:
        total = v + sum(info.data.get(k, 0.0) for k in ("history", "train", "valid"))
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total:.3f}")
        return v


def default_ranker() -> RankerConfig:
    """Boosted from popularity (``popularity_score``, training.dataset's context) and held in by small trees, many rows
    per leaf and an L2 penalty: a purchase label gives a few hundred positives on a two-week log, and
    in the simulated world an unconstrained ranker lost to popularity by the simulator's truth
    (benchmarks/results/training.md, "Ranker against popularity")."""
    return RankerConfig(base_feature=RANKER_FEATURE, num_leaves=4, min_child_samples=100, lambda_l2=10.0)


class TrainSettings(BaseSettings):
    """Everything ``slotcast train`` needs; ``TrainSettings()`` reads SLOTCAST_* from the environment."""

    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", env_nested_delimiter="__", extra="ignore")

    state_dir: StateDir = DEFAULT_STATE_DIR
    mlflow_tracking_uri: str | None = None
    experiment_name: str = "slotcast"
    registered_model: str = "slotcast"
    feature_service: str = "ranker_v1"

    weights: EventWeights = Field(default_factory=EventWeights)
    half_life_days: float | None = None
    als: ALSConfig = Field(default_factory=ALSConfig)
    ranker: RankerConfig = Field(default_factory=default_ranker)

    label: Literal["purchase", "click", "cart"] = "purchase"
    # None: 24 h, shortened on data too short for it (training.dataset.label_window says how).
    label_window_hours: float | None = Field(default=None, gt=0)
    candidates_n: int = Field(default=50, ge=1)
    max_queries: int = Field(default=20_000, ge=10)
    negative_query_ratio: float = Field(default=1.0, ge=0)
    split: SplitConfig = Field(default_factory=SplitConfig)
    k: int = Field(default=10, ge=1)
    hpo_trials: int = Field(default=0, ge=0)
    # Run option, not a hyperparameter: where the ranker's final fit runs (None: in process).
    dask_scheduler: str | None = None
    # How long a Dask worker's LightGBM waits on a peer that sends nothing (minutes; LightGBM's
    # ``time_out``, 120 by default there): a worker cut off without its connection being reset
    # (a network partition, a frozen VM) fails the fit after this long instead of two hours.
    dask_socket_timeout_min: int = Field(default=10, ge=1)
    bootstrap_samples: int = Field(default=2000, ge=100)
    seed: int = 42

    @field_validator("ranker", mode="before")
    @classmethod
    def _over_the_default_ranker(cls, v: Any) -> Any:
        """Keys given as a mapping (SLOTCAST_RANKER__NUM_THREADS=1 arrives as {"num_threads": "1"})
        change the default ranker: pydantic would build the rest from RankerConfig's bare defaults,
        not boosted from popularity and not held in (default_ranker)."""
        return {**default_ranker().model_dump(), **v} if isinstance(v, dict) else v

    @field_validator("dask_scheduler")
    @classmethod
    def _dask_address(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None  # SLOTCAST_DASK_SCHEDULER= (empty) is "in process"
        parse_dask_scheduler(v)
        return v.strip()

    @property
    def tracking_uri(self) -> str:
        """The configured tracking URI, or a SQLite store under the state directory."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.state_dir / "mlflow" / "artifacts").resolve()

    @property
    def label_event(self) -> str:
        return LABEL_EVENT[self.label]

    def flat_params(self) -> dict[str, str]:
        """The config as flat ``section.key -> str`` pairs for MLflow params (no secrets in here)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = str(value)

        # The Dask address is logged by the fit, as ranker.dask_scheduler without credentials.
        dump = self.model_dump(mode="json", exclude={"state_dir", "mlflow_tracking_uri", "dask_scheduler"})
        walk("", dump)
        return out
