"""Settings of data import and validation (env prefix ``SLOTCAST_``), constructed when a command runs."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.settings import DEFAULT_STATE_DIR


class ImportSettings(BaseSettings):
    """``SLOTCAST_STATE_DIR`` (data goes to its ``data/``) and ``SLOTCAST_MAX_QUARANTINE_SHARE``."""

    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", extra="ignore")

    state_dir: Path = DEFAULT_STATE_DIR
    max_quarantine_share: float = Field(default=0.05, ge=0.0, le=1.0)

    @property
    def data_dir(self) -> Path:
        return Path(os.path.expanduser(self.state_dir)) / "data"
