"""Users' purchases as the carousel's bought-recently and repurchase-due rules read them.

Per user and product the catalogue keeps the latest purchase (``last``), which is all an answer
given now needs, and every purchase time of a product bought more than once (``repeats``), so that
an answer asked ``at`` a past moment (a replay) reads the latest purchase strictly before it: a
purchase made after ``at`` must not hide a product from a replay of ``at``, as the feature store's
point-in-time reads see no event at or after a row's time.
"""

from __future__ import annotations

import bisect

import numpy as np
import pandas as pd

US = 1_000_000
Latest = dict[int, dict[int, int]]  # user -> product -> latest purchase (us)
Repeats = dict[int, dict[int, list[int]]]  # user -> product -> every purchase time (us), sorted


def index_purchases(buys: pd.DataFrame) -> tuple[Latest, Repeats]:
    """(latest, repeats) from a frame of purchases (user_id, product_id, ts_us); rows without a
    user, product or time are left out. Sorted and grouped in numpy: per-group pandas calls took
    8.6 s of a 10M-event catalogue's 26 s (benchmarks/results/serving.md, catalogue reload)."""
    rows = buys[["user_id", "product_id", "ts_us"]].dropna()
    if rows.empty:
        return {}, {}
    u, p, t = (rows[c].to_numpy(np.int64) for c in ("user_id", "product_id", "ts_us"))
    order = np.lexsort((t, p, u))  # by user, then product, then time
    u, p, t = u[order], p[order], t[order]
    new_pair = np.r_[True, (u[1:] != u[:-1]) | (p[1:] != p[:-1])]
    keep = new_pair | np.r_[True, t[1:] != t[:-1]]  # each time once
    u, p, t, new_pair = u[keep], p[keep], t[keep], new_pair[keep]
    start = np.flatnonzero(new_pair)
    end = np.r_[start[1:], len(u)]
    last: Latest = {}
    for uid, pid, ts in zip(u[start].tolist(), p[start].tolist(), t[end - 1].tolist(), strict=True):
        bought = last.get(uid)
        if bought is None:
            bought = last[uid] = {}
        bought[pid] = ts
    repeats: Repeats = {}
    for i in np.flatnonzero(end - start > 1).tolist():
        s, e = int(start[i]), int(end[i])
        repeats.setdefault(int(u[s]), {})[int(p[s])] = t[s:e].tolist()
    return last, repeats


def record(last: Latest, repeats: Repeats, user: int, product: int, ts_us: int) -> None:
    """Add one purchase (idempotent: a purchase applied twice is one purchase)."""
    bought = last.setdefault(user, {})
    before = bought.get(product)
    bought[product] = ts_us if before is None else max(before, ts_us)
    if before is None or before == ts_us:
        return
    times = repeats.setdefault(user, {}).setdefault(product, [before])
    i = bisect.bisect_left(times, ts_us)
    if i == len(times) or times[i] != ts_us:
        times.insert(i, ts_us)


def latest_before(last: dict[int, int], repeats: dict[int, list[int]], before_us: int) -> dict[int, int]:
    """One user's latest purchase per product strictly before ``before_us``."""
    out = {}
    for pid, ts in list(last.items()):  # a snapshot: POST /events may add to it meanwhile
        if ts < before_us:
            out[pid] = ts
        elif (times := repeats.get(pid)) is not None:  # bought again since: the one before, if any
            i = bisect.bisect_left(times, before_us)
            if i:
                out[pid] = times[i - 1]
    return out


def purchase_flags(
    last: dict[int, int] | None, product_ids: np.ndarray, now_us: int, recent_days: float, cycle: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bought_recently, consumable_due, is_consumable) per product from one user's latest
    purchases; ``cycle``: the products' repurchase_cycle_days (NaN: not a consumable)."""
    is_cons = ~np.isnan(cycle)
    n = len(product_ids)
    if not last:
        return np.zeros(n, bool), np.zeros(n, bool), is_cons
    # A snapshot in one C-level call (POST /events may add to the dict meanwhile), then one
    # sorted lookup for all candidates instead of a dict lookup per product.
    items = list(last.items())
    got = np.array([p for p, _ in items], np.int64)
    ts = np.array([t for _, t in items], np.int64)
    order = np.argsort(got)
    got, ts = got[order], ts[order]
    pids = np.asarray(product_ids, np.int64)
    pos = np.clip(np.searchsorted(got, pids), 0, len(got) - 1)
    hit = got[pos] == pids
    age_days = (now_us - ts[pos]) / (86_400 * US)
    bought = hit & ((age_days <= recent_days) | is_cons)
    with np.errstate(invalid="ignore"):  # NaN cycles: not consumables, never due
        due = hit & is_cons & (age_days >= cycle)
    return bought, due, is_cons
