"""``GET /users/{id}/data``: everything serving holds and uses about a user, as one answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from features.erasure import lines_naming
from serving.catalog import US, Catalog
from serving.schemas import UserData
from serving.segments import NO_HISTORY_SEGMENT


def user_data(
    cat: Catalog,
    user_id: int,
    deleted: bool,
    lookup: Callable[[int], dict[str, Any]] | None,
    push_cap_days: float,
    fold_in_events: list[dict[str, Any]] | None = None,
    models: Iterable[Any] = (),
    logs_dir: Path | None = None,
) -> UserData:
    """The catalogue's profile, segment, communities (and their joins and leaves), purchases and
    pushes of ``user_id``, what
    the online store holds (``lookup``: the feature source's ``user_features``, when it has one),
    the events kept to fold them in, the loaded models holding factors of theirs (``models``) and
    the lines of the service's logs about them (those under ``logs_dir``, read whole: an access
    request is rare, and a user known only from the logs is held there all the same)."""
    logs = lines_naming(logs_dir, user_id) if logs_dir is not None else {}
    if deleted:
        # Serving uses nothing about a deleted user from the moment of the DELETE, so it shows
        # nothing of it; the loaded snapshot's rows go with the next features build and reload,
        # the log lines (counted here, as they are still on disk) with `slotcast privacy purge`.
        return UserData(
            user_id=user_id, known=False, deleted=True, profile={}, segment=NO_HISTORY_SEGMENT,
            communities=[], recent_purchases=[], recent_pushes=0, online_features={},
            service_logs=logs,
        )  # fmt: skip
    known = cat.knows_user(user_id)
    profile: dict[str, Any] = {}
    if known:
        row = cat.users.loc[user_id]
        profile = {
            k: (
                None
                if v is None or (isinstance(v, float) and np.isnan(v))
                else v.item()
                if hasattr(v, "item")
                else v
            )
            for k, v in row.items()
        }
    pers, mark = cat.consent(user_id)  # the users table's, changed by PUT /users/{id}/consent
    changed = cat.consent_changes is not None and cat.consent_changes.of(user_id) != (None, None)
    if known or changed:
        profile.update(consent_personalization=pers, consent_marketing=mark)
    now_us = int(time.time() * US)
    cat.sync_shared()  # purchases and pushes taken by other workers
    purchases = [
        {"product_id": pid, "ts": datetime.fromtimestamp(ts / US, UTC).isoformat()}
        for pid, ts in sorted(cat.last_purchase.get(user_id, {}).items(), key=lambda kv: -kv[1])[:50]
    ]
    feats: dict[str, Any] = {}
    if lookup is not None and known:
        try:
            feats = {k: (v.item() if hasattr(v, "item") else v) for k, v in lookup(user_id).items()}
        except Exception as exc:  # noqa: BLE001 - shown as unavailable, not an error
            feats = {"unavailable": type(exc).__name__}
    memberships = [
        {"community_id": cid, "type": "join" if joined else "leave",
         "ts": None if ts is None else datetime.fromtimestamp(ts / US, UTC).isoformat()}
        for cid, ts, joined in cat.memberships.history(user_id)
    ]  # fmt: skip
    return UserData(
        user_id=user_id, known=known, deleted=False, profile=profile,
        segment=cat.segment(user_id), communities=cat.user_communities(user_id),
        community_history=memberships, recent_purchases=purchases,
        recent_pushes=cat.recent_pushes(user_id, now_us - int(push_cap_days * 86_400 * US)),
        online_features=feats, fold_in_events=fold_in_events or [],
        model_versions=models_holding(models, user_id), service_logs=logs,
    )  # fmt: skip


def models_holding(models: Iterable[Any], user_id: int) -> list[str]:
    """The versions of ``models`` (loaded ``Models``, None skipped) whose ALS holds a non-zero factor
    row for ``user_id`` (a deletion zeroes it)."""
    out = []
    for m in models:
        users = getattr(getattr(m, "als", None), "users", None)
        if m is None or users is None:
            continue
        row = int(users.index(np.array([user_id], dtype=np.int64))[0])
        if row >= 0 and bool(np.any(m.als.user_factors[row])):
            out.append(str(m.version))
    return out
