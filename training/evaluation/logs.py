"""Logged decisions as estimator input: the ``impressions`` and ``pushes`` tables, and the service's
impression log (``$STATE/serving/impressions/*.jsonl``, read with ``serving.impressions`` format).

A carousel request's candidates (what a target policy may rank) are the products on air in its
stream at its time (``stream_products``); a push decision's candidates are the products its
campaign (community, send time) pushed to anyone, which with an exploring logging policy is the
campaign's whole candidate list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from training.evaluation.metrics import PAD
from training.evaluation.slates import SlateLog

log = logging.getLogger(__name__)

REWARDS = ("purchased", "clicked", "opened")


@dataclass
class LoggedRequests:
    """A SlateLog plus what policies need to act on the same requests."""

    log: SlateLog
    requests: pd.DataFrame  # one row per request index: request_id, user_id, stream_id, ts
    candidates: np.ndarray  # (n_requests, n_max) product ids, PAD padded
    kind: str  # "carousel" | "push"
    dropped: int = 0  # logged rows left out (no propensity, no candidates), reported, never silent

    @property
    def n_candidates(self) -> np.ndarray:
        return (self.candidates != PAD).sum(axis=1)

    def policy_names(self) -> list[str]:
        return sorted(self.requests["policy"].dropna().unique().tolist()) if "policy" in self.requests else []


def _pad_groups(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, max size) matrix of ``values`` per group (rows sorted by group), PAD padded."""
    order = np.argsort(group, kind="stable")
    g, v = group[order], values[order]
    counts = np.bincount(g, minlength=n_groups)
    width = max(int(counts.max()) if counts.size else 0, 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(g.size) - starts[g]
    out = np.full((n_groups, width), PAD, dtype=np.int64)
    out[g, col] = v
    return out


def _reward(frame: pd.DataFrame, reward: str) -> np.ndarray:
    if reward not in frame.columns:
        raise ValueError(
            f"reward column {reward!r} is not in the log; choose one of {[c for c in REWARDS if c in frame]}"
        )
    return frame[reward].fillna(False).astype(np.float64).to_numpy()


def _weighable(frame: pd.DataFrame, kind: str) -> tuple[pd.DataFrame, int]:
    """The rows an estimator can weight, a propensity in (0, 1], and how many others were left out
    (null, 0 or above 1: a row the logging policy could not have shown as logged)."""
    p = pd.to_numeric(frame["propensity"], errors="coerce")
    df = frame.loc[((p > 0) & (p <= 1)).to_numpy()]
    dropped = len(frame) - len(df)
    if dropped:
        log.warning("%s log: %d rows without a propensity in (0, 1] left out", kind, dropped)
    return df, dropped


def carousel_log(
    impressions: pd.DataFrame, stream_products: pd.DataFrame | None = None, reward: str = "purchased"
) -> LoggedRequests:
    """Impressions (canonical table) as a slate log; candidates from the on-air schedule when given."""
    df, dropped = _weighable(impressions, "carousel")
    df = df.sort_values(["ts", "request_id", "slot"], kind="stable").reset_index(drop=True)
    req_idx, uniq = pd.factorize(df["request_id"], sort=False)
    n = len(uniq)
    first = df.groupby(req_idx, sort=True).head(1)
    requests = pd.DataFrame(
        {
            "request_id": uniq,
            "user_id": first["user_id"].to_numpy(np.int64),
            "stream_id": first["stream_id"].reset_index(drop=True),
            "ts": first["ts"].reset_index(drop=True),
            "policy": first["policy"].reset_index(drop=True) if "policy" in first else None,
        }
    )
    items = df["product_id"].to_numpy(np.int64)
    shown = _pad_groups(req_idx, items, n)
    candidates = shown
    if stream_products is not None and len(stream_products) and requests["stream_id"].notna().any():
        # Keep what was shown even if the schedule misses it (late edits): a target may re-rank it.
        candidates = _merge_candidates(_on_air(requests, stream_products), req_idx, items, n)
    slate = SlateLog(
        request=req_idx.astype(np.int64),
        item=items,
        slot=df["slot"].to_numpy(np.int64),
        propensity=df["propensity"].to_numpy(np.float64),
        reward=_reward(df, reward),
        n_requests=n,
    )
    return LoggedRequests(slate, requests, candidates, "carousel", dropped)


def _on_air(requests: pd.DataFrame, stream_products: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(request index, product id) pairs on air in the request's stream at the request's time."""
    import duckdb

    req = pd.DataFrame(
        {"r": np.arange(len(requests)), "stream_id": requests["stream_id"], "ts": requests["ts"]}
    )
    sp = stream_products[["stream_id", "product_id", "on_air_from", "on_air_to"]]
    con = duckdb.connect()
    try:
        con.register("req", req)
        con.register("sp", sp)
        out = con.execute(
            "SELECT DISTINCT req.r, sp.product_id FROM req JOIN sp ON req.stream_id = sp.stream_id "
            "AND sp.on_air_from <= req.ts AND (sp.on_air_to IS NULL OR req.ts < sp.on_air_to) ORDER BY 1, 2"
        ).fetchnumpy()
    finally:
        con.close()
    return np.asarray(out["r"], np.int64), np.asarray(out["product_id"], np.int64)


def _merge_candidates(
    on_air: tuple[np.ndarray, np.ndarray], req_idx: np.ndarray, items: np.ndarray, n: int
) -> np.ndarray:
    # pandas' hash-based drop_duplicates: np.unique(axis=0) sorts a void view and was 10x slower here
    pairs = pd.DataFrame({"r": np.concatenate([on_air[0], req_idx]), "p": np.concatenate([on_air[1], items])})
    pairs = pairs.drop_duplicates().sort_values(["r", "p"], kind="stable")
    return _pad_groups(pairs["r"].to_numpy(np.int64), pairs["p"].to_numpy(np.int64), n)


def _campaign_keys(frame: pd.DataFrame) -> list[tuple[Any, Any]]:
    return list(zip(frame["community_id"].fillna(-1), frame["ts"], strict=True))


def push_log(
    pushes: pd.DataFrame, reward: str = "purchased", campaigns: pd.DataFrame | None = None
) -> LoggedRequests:
    """Push decisions as one-slot requests; candidates = the campaign's pushed products.

    ``campaigns``: the pushes that define each campaign's products when ``pushes`` is a sample of
    them (a user sample holds only what its users were pushed); default ``pushes`` itself.
    """
    df, dropped = _weighable(pushes, "push")
    df = df.reset_index(drop=True)
    n = len(df)
    whole = df if campaigns is None else campaigns
    codes, keys = pd.factorize(pd.Series(_campaign_keys(df) + _campaign_keys(whole), dtype=object))
    campaign, whole_campaign = codes[:n], codes[n:]
    camp_items = pd.DataFrame(
        {"c": np.concatenate([campaign, whole_campaign]),
         "p": np.concatenate([df["product_id"], whole["product_id"]]).astype(np.int64)}
    ).drop_duplicates().sort_values(["c", "p"])  # fmt: skip
    per_campaign = _pad_groups(camp_items["c"].to_numpy(), camp_items["p"].to_numpy(), len(keys))
    requests = pd.DataFrame(
        {
            "request_id": df["push_id"],
            "user_id": df["user_id"].to_numpy(np.int64),
            "stream_id": pd.NA,
            "ts": df["ts"],
            "policy": df.get("policy"),
            "community_id": df["community_id"],
        }
    )
    slate = SlateLog(
        request=np.arange(n, dtype=np.int64),
        item=df["product_id"].to_numpy(np.int64),
        slot=np.zeros(n, np.int64),
        propensity=df["propensity"].to_numpy(np.float64),
        reward=_reward(df, reward),
        n_requests=n,
    )
    cands = per_campaign[campaign] if n else np.full((0, 1), PAD, np.int64)
    return LoggedRequests(slate, requests, cands, "push", dropped)


def _ints(values: Any) -> TypeGuard[list[int]]:
    return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _service_rows(rec: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
    """One carousel record's rows, or None when it cannot be one (no time, id or user; items and
    slots that are not equally long lists of ids). Propensities that do not fit are left null."""
    items, slots = rec.get("items"), rec.get("slots")
    if not (
        isinstance(rec.get("ts"), str) and rec.get("request_id") is not None and _ints([rec.get("user_id")])
        and _ints(items) and _ints(slots) and len(items) == len(slots)
    ):  # fmt: skip
        return None
    props = rec.get("propensities")
    if not isinstance(props, list) or len(props) != len(items):
        props = [None] * len(items)
    return [
        (rec["ts"], rec["request_id"], rec["user_id"], rec.get("stream_id"), item, slot, rec.get("variant", ""), prop)
        for item, slot, prop in zip(items, slots, props, strict=True)
    ]  # fmt: skip


def impressions_from_service(
    records: Iterable[Mapping[str, Any]], events: pd.DataFrame, window_hours: float = 24.0
) -> pd.DataFrame:
    """The service's carousel impression records as an ``impressions`` table, rewards joined from events.

    A shown product counts as clicked / purchased when the user has that event on it within
    ``window_hours`` after the answer. Records without propensities stay in with a null propensity
    (``carousel_log`` then counts and drops them), as do propensities that are not numbers. Records
    that cannot be read as a carousel (no time, request id or user, a time that does not parse,
    items and slots that do not pair up) are left out and counted in ``attrs["malformed_records"]``.
    Replays (answers to a request with ``at``, ``"replay": true``) are left out and counted in
    ``attrs["replayed_records"]``: no user was shown them, so the events after them are no reward.
    """
    rows: list[tuple[Any, ...]] = []
    malformed = replayed = 0
    for rec in records:
        if rec.get("kind", "carousel") != "carousel":
            continue
        if rec.get("replay") is True:
            replayed += 1
            continue
        got = _service_rows(rec)
        if got is None:
            malformed += 1
        else:
            rows.extend(got)
    cols = ["ts", "request_id", "user_id", "stream_id", "product_id", "slot", "policy", "propensity"]
    imp = pd.DataFrame(rows, columns=cols)
    imp["ts"] = pd.to_datetime(imp["ts"], utc=True, format="ISO8601", errors="coerce")
    bad_ts = imp["ts"].isna()
    if bad_ts.any():
        malformed += imp.loc[bad_ts, "request_id"].nunique()
        imp = imp.loc[~bad_ts].reset_index(drop=True)
    imp["propensity"] = pd.to_numeric(imp["propensity"], errors="coerce")
    end = imp["ts"] + pd.Timedelta(hours=window_hours)
    for event_type, col in (("product_click", "clicked"), ("purchase", "purchased")):
        ev = events.loc[events["type"] == event_type, ["user_id", "product_id", "ts"]]
        m = (
            imp[["user_id", "product_id", "ts"]]
            .reset_index()
            .merge(ev, on=["user_id", "product_id"], suffixes=("", "_e"))
        )
        m = m[(m["ts_e"] > m["ts"]) & (m["ts_e"] <= end.to_numpy()[m["index"]])]
        imp[col] = imp.index.isin(m["index"])
    if malformed:
        log.warning("service impression log: %d malformed carousel records left out", malformed)
    imp.attrs["malformed_records"] = malformed
    imp.attrs["replayed_records"] = replayed
    return imp


def sample_users(frame: pd.DataFrame, max_requests: int | None, request_col: str, seed: int) -> pd.DataFrame:
    """The logged rows of a random subset of users holding about ``max_requests`` requests.

    Whole users are kept (not single rows) so that a user's requests stay together; the estimate's
    interval then reflects the smaller sample. A push campaign's product set comes from the whole
    log (``push_log(campaigns=...)``): the sampled users were pushed only part of it.
    """
    if max_requests is None or frame.empty:
        return frame
    n = frame[request_col].nunique()
    if n <= max_requests:
        return frame
    users = np.unique(frame["user_id"].to_numpy(np.int64))
    keep = users[np.random.default_rng(seed).random(users.size) < max_requests / n]
    return frame.loc[frame["user_id"].isin(keep)]


def held_out_logs(
    tables: Mapping[str, pd.DataFrame],
    cut: pd.Timestamp,
    max_requests: int | None,
    reward: str = "purchased",
    seed: int = 0,
) -> tuple[dict[str, LoggedRequests], list[str]]:
    """The carousel and push logs of the held-out window (user-sampled to about ``max_requests``)."""
    logs: dict[str, LoggedRequests] = {}
    notes: list[str] = []
    for kind in ("carousel", "push"):
        source = tables.get("impressions" if kind == "carousel" else "pushes")
        if source is None or source.empty:
            continue
        held = source.loc[source["ts"] >= cut]
        if held.empty:
            notes.append(f"{kind}: no logged decisions in the held-out window; no off-policy estimate")
            continue
        request_col = "request_id" if kind == "carousel" else "push_id"
        sampled = sample_users(held, max_requests, request_col, seed)
        if len(sampled) < len(held):
            notes.append(
                f"{kind}: off-policy estimates on the {sampled[request_col].nunique()} logged requests of a random "
                f"sample of users, of {held[request_col].nunique()} held out (max_requests {max_requests})"
            )
        if kind == "carousel":
            lr = carousel_log(sampled, tables.get("stream_products"), reward=reward)
        else:  # a campaign's products: what it pushed to anyone held out, not only to the sample
            lr = push_log(sampled, reward=reward, campaigns=held)
        if lr.dropped:
            notes.append(f"{kind}: {lr.dropped} logged rows without a propensity in (0, 1] left out")
        if lr.log.n_requests == 0:
            notes.append(f"{kind}: no logged decision carries a propensity; no off-policy estimate")
            continue
        logs[kind] = lr
    return logs, notes
