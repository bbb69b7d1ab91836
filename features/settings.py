"""Settings of the feature store: where state lives and which online store to use.

Constructed explicitly (``FeatureSettings()``), never at import time; every field can be set from the
environment with the ``SLOTCAST_`` prefix, e.g. ``SLOTCAST_ONLINE_STORE=redis`` and
``SLOTCAST_REDIS_URL=redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import AfterValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repo root's .slotcast, the same default as the Makefile's SLOTCAST_STATE_DIR.
DEFAULT_STATE_DIR = Path(__file__).resolve().parents[1] / ".slotcast"
FEATURE_REPO_DIR = Path(__file__).resolve().parent
# A state dir read from the environment keeps a literal "~" when a .env file or a systemd unit sets
# it (no shell expands it there): every settings class expands it, not only the CLI.
StateDir = Annotated[Path, AfterValidator(lambda p: p.expanduser())]


class FeatureSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLOTCAST_", extra="ignore")

    state_dir: StateDir = DEFAULT_STATE_DIR
    project: str = "slotcast"
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Bayesian prior strength (pseudo-clicks) for the smoothed conversion and cart rates.
    prior_strength: Annotated[float, Field(gt=0)] = 20.0
    # User rows are emitted for every day within this many days of the user's last activity (then
    # one on the as-of day). A point-in-time read between the two takes the last of them, so it
    # must come after the longest window (90 days) has rolled off: with 7, a read months later
    # still counted purchases from over 90 days before.
    user_horizon_days: Annotated[int, Field(ge=90)] = 90
    # How often serving checks for a new build of the product features it holds in memory (the fast
    # path reloads them when ``materialized_stamp`` changed).
    product_cache_ttl_s: Annotated[float, Field(ge=0)] = 5.0
    # ... and reloads them at least this often even without a new stamp: a materialization run by
    # other means (``feast materialize``) writes none.
    product_cache_max_age_s: Annotated[float, Field(ge=0)] = 600.0

    @property
    def features_dir(self) -> Path:
        return Path(self.state_dir) / "features"

    @property
    def offline_dir(self) -> Path:
        return self.features_dir / "offline"

    @property
    def registry_path(self) -> Path:
        return self.features_dir / "registry.db"

    @property
    def materialized_stamp(self) -> Path:
        """Rewritten when a materialization has written every view (features.store.materialize)."""
        return self.features_dir / "materialized.stamp"

    @property
    def sqlite_path(self) -> Path:
        return self.features_dir / "online_store.db"

    @property
    def generated_yaml(self) -> Path:
        return self.features_dir / "feature_store.yaml"

    def online_store_config(self) -> dict[str, Any]:
        if self.online_store == "sqlite":
            return {"type": "sqlite", "path": str(self.sqlite_path)}
        return {"type": "redis", "connection_string": redis_connection_string(self.redis_url)}

    def repo_config_dict(self) -> dict[str, Any]:
        """The feature_store.yaml content for this state dir (also written there by the build)."""
        return {
            "project": self.project,
            "provider": "local",
            "registry": {"registry_type": "file", "path": str(self.registry_path), "cache_ttl_seconds": 60},
            "online_store": self.online_store_config(),
            "offline_store": {"type": "file"},
            "entity_key_serialization_version": 3,
        }


def redacted(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it masked, for errors and logs (and what
    ``/status`` shows): a tracking URI or Redis URL may carry credentials."""
    return re.sub(r"//[^/@\s]*@", "//***@", text)


def redis_connection_string(url: str) -> str:
    """Turn ``redis[s]://[[user]:password@]host:port[/db]`` into Feast's ``host:port[,db=N][,...]``.

    The user and password are percent-decoded (a password with ``@``, ``:`` or ``/`` is written
    %-encoded in a URL) and passed JSON-quoted: Feast's parser JSON-decodes every value, so a bare
    password ``123456`` reached Redis as a number and ``null`` as no password at all. A Redis 6 ACL
    user was dropped before (AUTH went to the default user and failed)."""
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss") or not u.hostname:
        raise ValueError(f"SLOTCAST_REDIS_URL: expected redis://host:port[/db], got {redacted(url)!r}")
    parts = [f"{u.hostname}:{u.port or 6379}"]
    db = (u.path or "/").strip("/")
    if db:
        parts.append(f"db={int(db)}")
    for name, raw in (("username", u.username), ("password", u.password)):
        value = unquote(raw) if raw else ""
        if "," in value:  # Feast splits its connection string on commas
            raise ValueError(
                f"SLOTCAST_REDIS_URL: the {name} holds a comma, which Feast's Redis settings cannot carry"
            )
        if value:
            parts.append(f"{name}={json.dumps(value)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)
