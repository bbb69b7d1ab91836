"""Settings of the pipelines package (env prefix SLOTCAST_); constructed explicitly, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", extra="ignore")

    state_dir: Path = Path(".slotcast")

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "pipeline"
