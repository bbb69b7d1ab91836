"""Reading the events training may use, and the user x product confidence matrix built from them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from features.data_model import read_table
from training.settings import EventWeights

log = logging.getLogger(__name__)

EVENT_COLUMNS = ["event_id", "ts", "user_id", "type", "product_id", "stream_id", "watch_seconds", "amount"]


class TrainingDataError(ValueError):
    """Unusable training input (exit code 2: bad input)."""

    exit_code = 2
    http_status = 400


def deleted_users(state_dir: Path) -> np.ndarray:
    """User ids in the deletion ledger (training must never learn from them)."""
    from features.privacy import DeletionLedger

    return np.asarray(sorted(DeletionLedger(state_dir).user_ids()), dtype=np.int64)


def unconsented_users(data_dir: Path, state_dir: Path) -> np.ndarray:
    """Users without personalization consent: the users table's flag (missing: no), changed by
    the consent changes serving recorded (``PUT /users/{id}/consent``). Training keeps no profile
    of them: their ALS factors are zeroed before the bundle is saved."""
    from features.consent import ConsentLedger

    users = read_table(data_dir, "users", columns=["user_id", "consent_personalization"]).to_pandas()
    flags = dict(
        zip(
            users["user_id"].astype(np.int64),
            users["consent_personalization"].fillna(False).astype(bool),
            strict=True,
        )
    )
    for uid, (pers, _) in ConsentLedger(state_dir).overrides().items():
        if pers is not None:
            flags[int(uid)] = bool(pers)
    return np.asarray(sorted(u for u, ok in flags.items() if not ok), dtype=np.int64)


def quarantined_event_ids(data_dir: Path) -> np.ndarray:
    """Event ids that validation put in quarantine; they stay out of training even if also in events."""
    path = Path(data_dir) / "quarantine.parquet"
    if not path.exists():
        return np.empty(0, dtype=np.int64)
    q = pd.read_parquet(path)
    if "event_id" not in q.columns or "table" not in q.columns:
        return np.empty(0, dtype=np.int64)
    ids = pd.to_numeric(q.loc[q["table"] == "events", "event_id"], errors="coerce").dropna()
    return ids.to_numpy(dtype=np.int64)


def load_events(data_dir: Path, exclude_users: Iterable[int] = ()) -> pd.DataFrame:
    """The canonical events as a DataFrame, minus quarantined rows and excluded (deleted) users."""
    data_dir = Path(data_dir)
    try:
        table: pa.Table = read_table(data_dir, "events", columns=EVENT_COLUMNS)
    except (KeyError, pa.ArrowInvalid) as exc:
        raise TrainingDataError(f"{data_dir / 'events.parquet'}: unreadable events table: {exc}") from exc
    df = table.to_pandas()
    n0 = len(df)
    bad = quarantined_event_ids(data_dir)
    excl = np.asarray(list(exclude_users), dtype=np.int64)
    keep = np.ones(n0, dtype=bool)
    if len(bad):
        keep &= ~df["event_id"].isin(bad).to_numpy()
    if len(excl):
        keep &= ~df["user_id"].isin(excl).to_numpy()
    df = df.loc[keep].reset_index(drop=True)
    log.info("events loaded: %d rows, %d quarantined or deleted-user rows left out", len(df), n0 - len(df))
    return df


def data_digest(events: pd.DataFrame) -> str:
    """A short content digest of the events used (logged with the run, checked by reruns): every
    column training reads, so the same ids and times with another type or stream are other data."""
    h = hashlib.sha256()
    for col in EVENT_COLUMNS:
        if col in events.columns:
            h.update(col.encode())
            h.update(pd.util.hash_pandas_object(events[col], index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Interactions:
    """A CSR user x item confidence matrix and the external ids of its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)


def event_confidence(
    events: pd.DataFrame,
    weights: EventWeights,
    half_life_days: float | None = None,
    as_of: pd.Timestamp | None = None,
) -> np.ndarray:
    """Per-event confidence: type weight + log-scaled watch time, times an optional time decay."""
    per_type = weights.per_type()
    w = events["type"].map(per_type).fillna(0.0).to_numpy(dtype=np.float64)
    if weights.watch_log_scale and "watch_seconds" in events:
        watch = (
            pd.to_numeric(events["watch_seconds"], errors="coerce")
            .fillna(0.0)
            .clip(lower=0.0)
            .to_numpy(dtype=np.float64)
        )
        w = w + weights.watch_log_scale * np.log1p(watch / 60.0)
    if half_life_days:
        ts = events["ts"]
        ref = as_of if as_of is not None else ts.max()
        age_days = (ref - ts).dt.total_seconds().to_numpy() / 86400.0
        w = w * np.power(0.5, np.clip(age_days, 0.0, None) / half_life_days)
    return w


def build_interactions(
    events: pd.DataFrame,
    weights: EventWeights,
    *,
    half_life_days: float | None = None,
    as_of: pd.Timestamp | None = None,
    item_ids: np.ndarray | None = None,
) -> Interactions:
    """Sum weighted events into a user x product matrix (vectorised: one groupby, no Python loop).

    Events without a product or with zero weight are left out. ``item_ids`` pins the column
    vocabulary (products in the catalogue that nobody touched still get a column).
    """
    df = events.loc[events["product_id"].notna() & events["user_id"].notna()]
    conf = event_confidence(df, weights, half_life_days, as_of)
    mask = conf > 0
    users = df["user_id"].to_numpy(dtype=np.int64)[mask]
    items = df["product_id"].to_numpy(dtype=np.int64)[mask]
    conf = conf[mask]
    user_ids, u_idx = np.unique(users, return_inverse=True)
    if item_ids is None:
        item_ids, i_idx = np.unique(items, return_inverse=True)
    else:
        item_ids = np.unique(np.asarray(item_ids, dtype=np.int64))
        i_idx = np.searchsorted(item_ids, items)
        known = (i_idx < len(item_ids)) & (item_ids[np.minimum(i_idx, len(item_ids) - 1)] == items)
        u_keep, i_idx, conf = u_idx[known], i_idx[known], conf[known]
        user_ids, u_idx = np.unique(user_ids[u_keep], return_inverse=True)
    m = sp.coo_matrix((conf.astype(np.float32), (u_idx, i_idx)), shape=(len(user_ids), len(item_ids))).tocsr()
    m.sum_duplicates()
    return Interactions(matrix=m, user_ids=user_ids, item_ids=item_ids)
