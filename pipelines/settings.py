"""Settings of the pipelines package (env prefix SLOTCAST_); constructed explicitly, never at import."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from features.settings import StateDir

# The repository's .slotcast, as in features/, training/ and serving/ (and the Makefile), so that a
# command run from another directory still meets the others' state.
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[1] / ".slotcast"


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", extra="ignore")

    state_dir: StateDir = DEFAULT_STATE_DIR

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "pipeline"
