"""What a build of the offline feature tables was computed from, and the digest train compares.

``slotcast train`` registers nothing when the latest version was trained on the same inputs
(training.rerun); what the feature store holds is one of them. The tables' bytes cannot say it:
DuckDB writes rows in parallel, in an order and with float sums whose last bits change from build
to build, so two builds of the same data never had the same bytes (the demo world: every rebuild).
So the build writes ``$STATE/features/offline/inputs.json`` last, after every table: the canonical
tables it read (their files' digest), the as-of instant, the segment rules, the users left out
(deletion ledger), the settings that shape the tables and the code that computed them (every module
of the features package: the SQL, and what it calls, such as the tables' conforming). The same
inputs write the same bytes; another ``--as-of`` or other data writes others.

``offline_digest`` is the digest of that file. Without one (a build that stopped before its end, or
a store built before the file existed) it is the digest of the tables' bytes themselves: any build
then counts as a change, never the other way round. A purge or a late deletion rewrites tables and
not the file; the events train reads lose that user too, so the run's data digest differs anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from features.data_model import files_digest, table_path
from features.segments import SegmentRules
from features.settings import FeatureSettings

INPUTS_FILE = "inputs.json"
READ_TABLES = ("events", "users", "products", "streams")  # what compute_offline_features reads


def inputs_path(settings: FeatureSettings) -> Path:
    return settings.offline_dir / INPUTS_FILE


def forget_inputs(settings: FeatureSettings) -> None:
    """At a build's start: until it has written every table, the tables are no longer those of the
    recorded inputs."""
    inputs_path(settings).unlink(missing_ok=True)


def write_inputs(
    settings: FeatureSettings,
    data_dir: str | Path,
    as_of: datetime,
    rules: SegmentRules,
    excluded_users: Iterable[int],
) -> Path:
    """Record what the build just computed its tables from (sorted keys: the same inputs, the same
    bytes). Returns the file's path."""
    from features import offline

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()[:16]

    record = {
        "as_of": as_of.astimezone(UTC).isoformat(),
        "tables": {t: files_digest([(t, table_path(data_dir, t))]) for t in READ_TABLES},
        "excluded_users": sha(",".join(str(u) for u in sorted(excluded_users)).encode()),
        "segment_rules": sha(rules.case_sql().encode()),
        "settings": {
            "prior_strength": settings.prior_strength,
            "user_horizon_days": settings.user_horizon_days,
        },
        "code": sha(
            b"".join(p.read_bytes() for p in sorted(Path(offline.__file__ or "").parent.glob("*.py")))
        ),
    }
    path = inputs_path(settings)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, sort_keys=True, indent=1) + "\n")
    tmp.replace(path)
    return path


def offline_digest(settings: FeatureSettings) -> str:
    """The digest of what a reader of this state dir's offline tables reads: the build's recorded
    inputs, or the tables' bytes when no build recorded them."""
    from features.offline import OFFLINE_TABLES

    recorded = inputs_path(settings)
    if recorded.is_file():
        return files_digest([(INPUTS_FILE, recorded)])
    return files_digest((t, settings.offline_dir / f) for t, f in OFFLINE_TABLES.items())
