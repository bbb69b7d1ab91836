"""Ranker training data: queries (a viewer in a stream at time t, or a user at t), their candidates,
point-in-time features and labels, split by time into train / valid / test.

Leakage rules, each tested in tests/training/test_dataset.py:
- a query's features come from the FeatureService as of its timestamp t (Feast point-in-time join);
- the ALS model that gives als_score/als_rank for a query was fitted on events strictly before the
  query's split began (``history`` for train/valid queries, everything before ``test`` for test ones);
- labels are events in (t, t + window], and a query is kept only if that window ends inside its split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from models.errors import ModelFitError
from models.popularity import RANKER_FEATURE
from training.settings import LABEL_EVENT, SplitConfig

log = logging.getLogger(__name__)

# popularity_score (models.popularity.RANKER_FEATURE): the popularity model fitted on the same events
# as the query's ALS, as ``PopularityModel.relative_log_score``; the default ranker is boosted from it.
CONTEXT_FEATURES = ["als_score", "als_rank", "on_air", "slot", RANKER_FEATURE]
SPLITS = ("train", "valid", "test")
DEFAULT_LABEL_WINDOW = pd.Timedelta(hours=24)
# The most of the shortest ranker split the DEFAULT window may take: the rest is the time in which
# that split's queries can start. A quarter keeps 24 h on 14 days of data (the demo world).
MAX_DEFAULT_WINDOW_SHARE = 0.75


class HistoricalReader(Protocol):
    """The part of ``features.retrieval.FeatureReader`` training needs."""

    def historical(self, entity_df: pd.DataFrame, service: str = "ranker_v1") -> pd.DataFrame: ...


@dataclass(frozen=True)
class TimeSplits:
    """Boundaries: history < t_train <= train < t_valid <= valid < t_test <= test <= t_end."""

    t_start: pd.Timestamp
    t_train: pd.Timestamp
    t_valid: pd.Timestamp
    t_test: pd.Timestamp
    t_end: pd.Timestamp

    @classmethod
    def from_events(cls, events: pd.DataFrame, split: SplitConfig) -> TimeSplits:
        t0, t1 = events["ts"].min(), events["ts"].max()
        span = t1 - t0
        # Whole seconds, so that the boundaries do not depend on the timestamp unit (us or ns).
        a = (t0 + span * split.history).floor("s")
        b = (t0 + span * (split.history + split.train)).floor("s")
        c = (t0 + span * (split.history + split.train + split.valid)).floor("s")
        return cls(t0, a, b, c, t1 + pd.Timedelta(microseconds=1))

    def bounds(self, name: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        return {
            "train": (self.t_train, self.t_valid),
            "valid": (self.t_valid, self.t_test),
            "test": (self.t_test, self.t_end),
        }[name]

    def as_params(self) -> dict[str, str]:
        return {f"split.{k}": str(v) for k, v in self.__dict__.items()}

    def hours(self, name: str) -> float:
        lo, hi = self.bounds(name)
        return float((hi - lo) / pd.Timedelta(hours=1))

    @property
    def days(self) -> float:
        return float((self.t_end - self.t_start) / pd.Timedelta(days=1))


def label_window(splits: TimeSplits, split: SplitConfig, hours: float | None) -> pd.Timedelta:
    """How long after its query a label event counts: ``hours``, or by default 24 h cut to fit.

    A query is kept only if its whole window ends inside its split (labels never cross a split
    boundary), so a window as long as a split leaves that split empty. The window does not scale
    with the data but the splits do (fractions of its span): on 7 days a 0.1 split is 16.8 h. The
    default therefore takes at most ``MAX_DEFAULT_WINDOW_SHARE`` of the shortest ranker split; an
    explicit window that no query of some split can fit is refused, naming the settings to change.
    """
    if hours is None:
        shortest = min(splits.hours(name) for name in SPLITS)
        return min(DEFAULT_LABEL_WINDOW, pd.Timedelta(hours=shortest * MAX_DEFAULT_WINDOW_SHARE))
    for name in SPLITS:
        if hours >= splits.hours(name):
            raise ModelFitError(
                f"label_window_hours={hours:g} is not shorter than the {name} split "
                f"({splits.hours(name):.1f} h: split.{name}={getattr(split, name):g} of "
                f"{splits.days:.1f} days of events), so no {name} query can keep its label window inside "
                f"it: lower label_window_hours (or leave it unset to fit the data), raise split.{name} "
                f"and lower split.history (now {split.history:g}) by as much, or train on more days of data"
            )
    return pd.Timedelta(hours=hours)


@dataclass
class RankerData:
    """Candidate rows of every split, with the feature list the ranker is trained on."""

    frame: pd.DataFrame
    feature_names: list[str]
    splits: TimeSplits
    label_window: pd.Timedelta
    stats: dict[str, float] = field(default_factory=dict)

    def part(self, name: str, candidates_only: bool = False) -> pd.DataFrame:
        """One split's rows; ``candidates_only`` drops the positives the candidates missed (for fitting)."""
        sel = self.frame["split"] == name
        if candidates_only:
            sel &= self.frame["candidate"]
        return self.frame.loc[sel]

    def groups(self, name: str) -> np.ndarray:
        """Group sizes (candidate rows per query) in row order, for lambdarank."""
        part = self.part(name, candidates_only=True)
        return part.groupby("query_id", sort=False).size().to_numpy()


def query_anchors(events: pd.DataFrame) -> pd.DataFrame:
    """Moments a recommendation would have been shown.

    Stream data: the first stream_view of each (user, stream). Stream-less data: the first event
    of each (user, day). Columns: user_id, stream_id (nullable), ts.
    """
    views = events.loc[events["type"] == "stream_view", ["user_id", "stream_id", "ts"]]
    if len(views):
        anchors = views.sort_values("ts").drop_duplicates(["user_id", "stream_id"], keep="first")
    else:
        ev = events[["user_id", "ts"]].assign(day=events["ts"].dt.floor("D"))
        anchors = ev.sort_values("ts").drop_duplicates(["user_id", "day"], keep="first")
        anchors = anchors.assign(stream_id=pd.array([pd.NA] * len(anchors), dtype="Int64"))
    return anchors[["user_id", "stream_id", "ts"]].reset_index(drop=True)


def label_pairs(anchors: pd.DataFrame, labels: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """(query_id, product_id) for every label event of the query's user in (t, t + window]."""
    lab = labels[["user_id", "product_id", "ts"]].rename(columns={"ts": "label_ts"})
    m = anchors[["query_id", "user_id", "ts"]].merge(lab, on="user_id", how="inner")
    m = m.loc[(m["label_ts"] > m["ts"]) & (m["label_ts"] <= m["ts"] + window)]
    return m[["query_id", "product_id"]].drop_duplicates()


def check_labels_exist(events: pd.DataFrame, label_event: str) -> None:
    """Data without one event of the label's type is refused before any fit: more of it would not
    help (the later "no ranker queries" says "need more data"), another label might."""
    labelled = events.loc[events["product_id"].notna(), "type"]
    if (labelled == label_event).any():
        return
    present = sorted(set(events["type"].astype(str)))
    usable = [name for name, ev in LABEL_EVENT.items() if (labelled == ev).any()]
    hint = f"; train with {' or '.join(f'--label {u}' for u in usable)}" if usable else ""
    raise ModelFitError(
        f"the data has no {label_event} event of a product to label the ranker's queries with "
        f"(its event types: {', '.join(present)}){hint}"
    )


def select_queries(
    events: pd.DataFrame,
    splits: TimeSplits,
    label_event: str,
    window: pd.Timedelta,
    max_queries: int,
    negative_ratio: float,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Queries of every split (all with a positive, plus ``negative_ratio`` as many without), capped."""
    anchors = query_anchors(events)
    anchors["split"] = pd.Series(pd.NA, index=anchors.index, dtype="string")
    for name in SPLITS:
        lo, hi = splits.bounds(name)
        inside = (anchors["ts"] >= lo) & (anchors["ts"] + window < hi)
        anchors.loc[inside, "split"] = name
    anchors = anchors.dropna(subset=["split"]).reset_index(drop=True)
    anchors["query_id"] = np.arange(len(anchors), dtype=np.int64)
    labels = events.loc[(events["type"] == label_event) & events["product_id"].notna()]
    pos = label_pairs(anchors, labels, window)
    has_pos = anchors["query_id"].isin(pos["query_id"]).to_numpy()
    keep = np.zeros(len(anchors), dtype=bool)
    for name in SPLITS:
        in_split = (anchors["split"] == name).to_numpy()
        cap = max(1, int(max_queries * {"train": 0.6, "valid": 0.2, "test": 0.2}[name]))
        p_idx = np.flatnonzero(in_split & has_pos)
        n_idx = np.flatnonzero(in_split & ~has_pos)
        n_pos = min(len(p_idx), int(cap / (1 + negative_ratio)))
        n_neg = min(len(n_idx), int(n_pos * negative_ratio))
        keep[rng.choice(p_idx, n_pos, replace=False)] = True
        keep[rng.choice(n_idx, n_neg, replace=False)] = True
    queries = anchors.loc[keep].reset_index(drop=True)
    return queries, pos.loc[pos["query_id"].isin(queries["query_id"])]


def on_air_pairs(queries: pd.DataFrame, stream_products: pd.DataFrame) -> pd.DataFrame:
    """(query_id, product_id, slot) for products on air in the query's stream at its time."""
    if stream_products.empty or queries["stream_id"].isna().all():
        return pd.DataFrame({"query_id": [], "product_id": [], "slot": []})
    q = queries.loc[queries["stream_id"].notna(), ["query_id", "stream_id", "ts"]]
    q = q.astype({"stream_id": np.int64})
    sp_ = stream_products.astype({"stream_id": np.int64})
    m = q.merge(sp_, on="stream_id", how="inner")
    to = m["on_air_to"].fillna(pd.Timestamp.max.tz_localize("UTC"))
    m = m.loc[(m["on_air_from"] <= m["ts"]) & (m["ts"] < to)]
    return m[["query_id", "product_id", "pinned_slot"]].rename(columns={"pinned_slot": "slot"})


def candidate_rows(
    queries: pd.DataFrame,
    positives: pd.DataFrame,
    on_air: pd.DataFrame,
    als_by_split: dict[str, Any],
    n: int,
    extra_generators: tuple[Any, ...] = (),
    popularity_by_split: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """ALS top-n + on-air (``candidate`` rows, what serving would rank) plus the true positives
    outside them (``candidate == False``: kept so that metrics count what the candidates missed).

    Only candidate rows may be used to train or score a ranker: a row that exists only because it
    was bought would teach the ranker "not in the candidates => bought", a pure label leak.
    ``extra_generators`` add their top-n too (the promotion gate unions both models' candidates).
    ``popularity_by_split``: the popularity model beside each split's ALS (fitted on the same
    events), for ``popularity_score``; NaN where none is given (the gate scores each bundle with its own).
    """
    parts = []
    for split, als in als_by_split.items():
        q = queries.loc[queries["split"] == split]
        if q.empty:
            continue
        uniq, inv = np.unique(q["user_id"].to_numpy(dtype=np.int64), return_inverse=True)
        for gen in (als, *extra_generators):
            top = gen.generate_many(uniq, n)[0][inv]
            qid = np.repeat(q["query_id"].to_numpy(), top.shape[1])
            flat = top.ravel()
            parts.append(pd.DataFrame({"query_id": qid[flat >= 0], "product_id": flat[flat >= 0]}))
    parts.append(on_air[["query_id", "product_id"]])
    cand = pd.concat(parts, ignore_index=True).astype(np.int64).drop_duplicates().assign(candidate=True)
    extra = (
        positives[["query_id", "product_id"]]
        .astype(np.int64)
        .merge(cand, how="left", on=["query_id", "product_id"])
    )
    extra = extra.loc[extra["candidate"].isna()].assign(candidate=False)
    cand = pd.concat([cand, extra], ignore_index=True)
    cand["candidate"] = cand["candidate"].astype(bool)
    cand = cand.merge(queries[["query_id", "user_id", "stream_id", "ts", "split"]], on="query_id")
    slots = on_air.drop_duplicates(["query_id", "product_id"]).assign(on_air=True)
    cand = cand.merge(slots, on=["query_id", "product_id"], how="left")
    cand["on_air"] = cand["on_air"].astype("boolean").fillna(False).astype(bool)
    cand["slot"] = pd.to_numeric(cand["slot"], errors="coerce").astype(np.float64)
    cand = cand.merge(positives.assign(label=1), on=["query_id", "product_id"], how="left")
    cand["label"] = cand["label"].fillna(0).astype(np.int8)
    cand["als_score"] = np.float32(np.nan)
    for split, als in als_by_split.items():
        sel = (cand["split"] == split).to_numpy()
        if sel.any():
            cand.loc[sel, "als_score"] = als.score(cand.loc[sel, "user_id"], cand.loc[sel, "product_id"])
    cand[RANKER_FEATURE] = np.nan
    for split, pop in (popularity_by_split or {}).items():
        sel = (cand["split"] == split).to_numpy()
        if sel.any():
            cand.loc[sel, RANKER_FEATURE] = pop.relative_log_score(cand.loc[sel, "product_id"].to_numpy())
    return add_als_rank(cand.sort_values(["query_id", "product_id"]).reset_index(drop=True))


def add_als_rank(cand: pd.DataFrame) -> pd.DataFrame:
    """als_rank within the query's candidate rows (1 = best; unknown-to-ALS last; NaN off-candidate)."""
    score = cand["als_score"].astype(np.float64).fillna(-np.inf).where(cand["candidate"])
    cand["als_rank"] = score.groupby(cand["query_id"]).rank(ascending=False, method="first")
    return cand


def attach_features(
    cand: pd.DataFrame, reader: HistoricalReader | None, service: str
) -> tuple[pd.DataFrame, list[str]]:
    """Point-in-time FeatureService features for every candidate row (as of the query's ts)."""
    if reader is None:
        return cand, []
    entity = pd.DataFrame(
        {
            "row_id": np.arange(len(cand), dtype=np.int64),
            "user_id": cand["user_id"].to_numpy(dtype=np.int64),
            "product_id": cand["product_id"].to_numpy(dtype=np.int64),
            "stream_id": cand["stream_id"].astype("Int64"),
            "event_timestamp": cand["ts"],
        }
    )
    feats = reader.historical(entity, service=service)
    if "row_id" not in feats.columns or len(feats) != len(entity):
        raise ValueError(
            f"feature reader returned {len(feats)} rows for {len(entity)} entity rows "
            "(expected one row per entity row, with row_id kept)"
        )
    feats = feats.sort_values("row_id").reset_index(drop=True)
    skip = set(entity.columns) | {"event_timestamp"}
    names = [c for c in feats.columns if c not in skip]
    out = pd.concat([cand.reset_index(drop=True), feats[names]], axis=1)
    return out, names
