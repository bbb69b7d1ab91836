"""The right to be forgotten: a deletion ledger, and removal of a user's rows from the online store.

The ledger is an append-only text file (one user id per line, fsynced) under
``$STATE/privacy/deleted_users.txt``: the feature build and training exclude its users, serving
checks it before answering anything personal.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any


class DeletionLedger:
    def __init__(self, state_dir: str | Path, name: str = "deleted_users.txt") -> None:
        self.path = Path(state_dir) / "privacy" / name
        self._cache: set[int] | None = None
        self._mtime: float | None = None

    def add(self, user_id: int) -> None:
        """Record a deletion durably (fsync) before anything else acts on it."""
        uid = int(user_id)
        if self.contains(uid):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="ascii") as f:
            f.write(f"{uid}\n")
            f.flush()
            os.fsync(f.fileno())
        self._cache = None

    def user_ids(self) -> set[int]:
        """Every deleted user id (re-read only when the file changed)."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return set()
        if self._cache is None or mtime != self._mtime:
            ids: set[int] = set()
            for n, line in enumerate(self.path.read_text(encoding="ascii").splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    ids.add(int(line))
                except ValueError:
                    raise ValueError(f"{self.path}:{n}: not a user id: {line[:40]!r}") from None
            self._cache, self._mtime = ids, mtime
        return set(self._cache)

    def contains(self, user_id: int) -> bool:
        return int(user_id) in self.user_ids()

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, int) and self.contains(user_id)


def _user_keyed_views(store: Any) -> list[Any]:
    return [fv for fv in store.list_feature_views() if "user" in fv.entities]


def pending_online_deletions(state_dir: str | Path) -> DeletionLedger:
    """Users whose online rows could not be removed at their deletion (the store was down):
    ``features build`` removes them (``retry_online_deletions``). Same format as the ledger."""
    return DeletionLedger(state_dir, "online_deletions_pending.txt")


def retry_online_deletions(store: Any, state_dir: str | Path) -> int:
    """Remove the online rows of every pending user; returns users handled.

    The list is taken first (renamed aside), so a deletion serving records meanwhile starts a new
    list for the next build instead of being dropped with this one; a taken list whose removal
    failed (or was cut short) stays aside and is taken again by the next build.
    """
    pending = pending_online_deletions(state_dir)
    with contextlib.suppress(FileNotFoundError):
        os.replace(pending.path, pending.path.with_name(f"{pending.path.name}.{os.getpid()}.taken"))
    taken = sorted(pending.path.parent.glob(f"{pending.path.name}.*.taken"))
    ids = set().union(*(DeletionLedger(state_dir, p.name).user_ids() for p in taken))
    if ids:
        delete_user_online(store, ids)
    for p in taken:
        p.unlink()
    return len(ids)


def delete_user_online(store: Any, user_id: int | set[int]) -> int:
    """Remove every online row keyed by ``user_id`` (or any of a set of ids; SQLite or Redis);
    returns rows removed.

    Rows keyed by the user alone are deleted by key; rows keyed by (user, x) — category affinity,
    per-product history, live sessions — are found by decoding the stored entity keys, since the
    other half of the key is not known here.
    """
    config = store.config
    uids = {int(u) for u in user_id} if isinstance(user_id, set) else {int(user_id)}
    views = _user_keyed_views(store)
    if config.online_store.type == "sqlite":
        return _delete_sqlite(store, views, uids)
    if config.online_store.type == "redis":
        return _delete_redis(store, views, uids)
    raise NotImplementedError(f"user deletion for online store {config.online_store.type!r}")


def _decode_user(key_bytes: bytes, version: int) -> int | None:
    from feast.infra.key_encoding_utils import deserialize_entity_key

    ek = deserialize_entity_key(key_bytes, entity_key_serialization_version=version)
    for name, val in zip(ek.join_keys, ek.entity_values, strict=False):
        if name == "user_id":
            return int(val.int64_val)
    return None


def _delete_sqlite(store: Any, views: list[Any], uids: set[int]) -> int:
    import sqlite3

    config = store.config
    version = config.entity_key_serialization_version
    removed = 0
    con = sqlite3.connect(str(Path(config.online_store.path)))
    try:
        for fv in views:
            table = f"{config.project}_{fv.name}"
            try:
                keys = {row[0] for row in con.execute(f'SELECT DISTINCT entity_key FROM "{table}"')}
            except sqlite3.OperationalError:
                continue  # never materialized
            doomed = [k for k in keys if _decode_user(k, version) in uids]
            for k in doomed:
                removed += con.execute(f'DELETE FROM "{table}" WHERE entity_key = ?', (k,)).rowcount
        con.commit()
    finally:
        con.close()
    return removed


def _delete_redis(store: Any, views: list[Any], uids: set[int]) -> int:
    from feast.infra.key_encoding_utils import deserialize_entity_key

    provider = store._get_provider()
    online = provider.online_store
    client = online._get_client(store.config.online_store)
    version = store.config.entity_key_serialization_version
    project = store.config.project.encode()
    removed = 0
    # Feast's Redis keys are serialized_entity_key + project; one hash per entity key holds all views.
    for key in client.scan_iter(match=b"*" + project, count=1000):
        ek_bytes = key[: -len(project)]
        try:
            ek = deserialize_entity_key(ek_bytes, entity_key_serialization_version=version)
        except Exception:  # noqa: BLE001 - a foreign key in a shared Redis is not ours to judge
            continue
        if any(
            n == "user_id" and v.int64_val in uids
            for n, v in zip(ek.join_keys, ek.entity_values, strict=False)
        ):
            removed += int(client.delete(key))
    return removed
