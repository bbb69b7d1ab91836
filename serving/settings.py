"""Settings of the serving layer, read from the environment (prefix ``SLOTCAST_``) only when
constructed: ``ServingSettings()``. Nothing here opens a file or a connection."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.settings import StateDir
from serving.event_ids import check_replica

# The repo root's .slotcast, the same default as the Makefile's SLOTCAST_STATE_DIR.
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[1] / ".slotcast"


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", extra="ignore")

    state_dir: StateDir = DEFAULT_STATE_DIR
    # This service among the replicas (``slotcast serve`` processes) of one deployment, 0 to 30:
    # one number per replica, in the tag of every event id it gives (serving/event_ids.py).
    replica: int = 0
    # Where the models come from: the MLflow registry (production), a bundle directory on disk, or
    # the built-in synthetic demo world (tests and benchmarks before a model has been trained).
    model_source: Literal["mlflow", "dir", "demo"] = "mlflow"
    bundle_dir: Path | None = None
    mlflow_tracking_uri: str | None = None  # default: sqlite under $STATE/mlflow/mlflow.db
    model_name: str = "slotcast"
    model_alias: str = "champion"
    challenger_alias: str = "challenger"
    # Share of users (hashed deterministically) served by the challenger when one is registered.
    challenger_share: float = Field(default=0.0, ge=0.0, le=1.0)
    variant_salt: str = "slotcast-ab-1"
    # Feature source: the Feast online store (production) or the demo world's features.
    feature_source: Literal["feast", "demo"] = "feast"
    # Where /carousel runs in a worker: "loop", on its event loop (no thread hop: less CPU and a
    # shorter tail at a given concurrency, benchmarks/results/serving.md), or "thread", in BentoML's
    # thread pool. "auto": the loop when the feature source cannot block on the network (Feast's
    # SQLite file, the demo world), a thread on Redis, where a stalled connection would hold the
    # loop, and with it /healthz and /readyz, for up to the client's socket timeouts.
    carousel_runs_on: Literal["auto", "loop", "thread"] = "auto"
    admin_token: SecretStr | None = None
    # Bearer token of the feeds, ``POST /events`` and ``POST /products/stock`` (the admin token is
    # taken too). Unset or empty: the feeds are open to anyone who reaches the service, as before
    # (the demo, existing clients); each worker then logs a warning at its start and /status says
    # ``feeds_open: true``.
    feed_token: SecretStr | None = None

    # Business rules handed to the slot policy.
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    category_cap: int = Field(default=3, ge=1)
    candidates_per_request: int = Field(default=200, ge=1, le=5000)
    # The ranker sees only a stream-less request's first-stage (ALS) top this many candidates (a
    # stream's too when rerank_on_air is false), as training's ALS top-50 candidates; the rest keep
    # that order below them.
    rerank_shortlist: int = Field(default=50, ge=1, le=5000)
    # A stream's on-air products are all reranked for a personal answer (training's candidates hold
    # every on-air product): the shortlist then applies to stream-less requests and fallback
    # answers only (benchmarks/bench_shortlist.py).
    rerank_on_air: bool = True
    # Push rules: frequency cap (pushes per window) and quiet hours [start, end) on the audience's
    # clock: ``quiet_hours_tz`` is an IANA time zone name (Asia/Shanghai), UTC by default.
    push_cap: int = Field(default=2, ge=0)
    push_cap_days: float = Field(default=7.0, gt=0)
    quiet_hours_start: int = Field(default=22, ge=0, le=23)
    quiet_hours_end: int = Field(default=8, ge=0, le=23)
    quiet_hours_tz: str = "UTC"
    max_users_limit: int = Field(default=1_000_000, ge=1)
    push_batch_size: int = Field(default=65_536, ge=1024)
    # Recently bought non-consumables are left out of carousels for this long.
    bought_recently_days: float = Field(default=90.0, gt=0)
    # The events users send since training are folded into their factors (serving/fold_in.py):
    # events kept this long, for at most this many users (least recently active dropped first),
    # each user's latest this many; a known user's training row weighs this much against them
    # (1: as trained; lower: what they did lately counts for more; 0.25 from BENCHMARKS.md's
    # fold-in rows: as good as 1 on the simulator, whose tastes never change, better on
    # MovieLens, whose do).
    fold_in: bool = True
    fold_in_days: float = Field(default=7.0, gt=0)
    fold_in_max_users: int = Field(default=100_000, ge=1)
    fold_in_max_events: int = Field(default=500, ge=1)
    fold_in_history_weight: float = Field(default=0.25, ge=0.0, le=1e6)
    max_clock_skew_s: float = Field(default=86_400.0, ge=0)
    """How far ahead of the service's clock an event's ``ts`` or a carousel's ``at`` may lie, in
    seconds: a client's clock may run ahead a little (a day is generous), a time in year 9999 is an
    error, refused with 422 naming the field. Times before 1970-01-01 are refused whatever this says
    (serving/schemas.py); a past ``at`` stays legitimate (replays)."""

    # Level of the service's own loggers (serving.*): BentoML leaves other loggers at WARNING, which
    # hid the model-loaded and recovered lines; DEBUG shows each degraded answer's reason.
    # The same variable as the CLI's (pipelines/cli.py), any case.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # A failing online store is logged once, then summarized at most once per this many seconds.
    outage_log_interval_s: float = Field(default=10.0, gt=0)
    # Serving's own MLflow client, applied only where the MLFLOW_HTTP_REQUEST_* variables are unset:
    # MLflow's defaults (7 retries with exponential backoff, 120 s timeout) hold a start against an
    # unreachable registry for about 4 minutes before readiness can say why.
    mlflow_http_max_retries: int = Field(default=2, ge=0, le=10)
    mlflow_http_backoff_factor: int = Field(default=1, ge=0)
    mlflow_http_timeout_s: int = Field(default=10, ge=1)

    # Live events the online store did not take wait (serving/live_pending.py); after a failed
    # push the store is not tried again sooner than this.
    live_retry_interval_s: float = Field(default=1.0, ge=0)

    # Logs: impression files rotate at this size; event log segments too.
    log_rotate_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    demo_users: int = Field(default=2000, ge=10)
    demo_products: int = Field(default=300, ge=10)
    demo_streams: int = Field(default=5, ge=1)
    demo_per_stream: int = Field(default=100, ge=1)
    seed: int = 0

    @field_validator("replica")
    @classmethod
    def _replica_fits(cls, v: int) -> int:
        return check_replica(v)

    @field_validator("quiet_hours_tz")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}: an IANA name such as Asia/Shanghai or UTC") from None
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _dir_needs_bundle(self) -> ServingSettings:
        if self.model_source == "dir" and self.bundle_dir is None:
            raise ValueError("SLOTCAST_BUNDLE_DIR is required when SLOTCAST_MODEL_SOURCE=dir")
        return self

    @property
    def serving_dir(self) -> Path:
        return Path(self.state_dir) / "serving"

    @property
    def events_dir(self) -> Path:
        return self.serving_dir / "events"

    @property
    def impressions_dir(self) -> Path:
        return self.serving_dir / "impressions"

    @property
    def data_dir(self) -> Path:
        return Path(self.state_dir) / "data"

    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{Path(self.state_dir).resolve() / 'mlflow' / 'mlflow.db'}"
