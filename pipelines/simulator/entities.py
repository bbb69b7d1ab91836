"""The static side of a world: users, products, streams with their on-air schedules, communities.

Everything here is drawn once per run, vectorised; ``World`` carries the latent parameters (for
behaviour and truth), the canonical tables, and the index structures the daily simulation needs.
IDs are ``index + 1`` so that nothing downstream can rely on an id being a row number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.simulator.behaviour import COEFS, NEVER_LOGIT, Params
from pipelines.simulator.config import (
    COMMUNITY_KINDS,
    CONSUMABLE_CATEGORIES,
    DAY_US,
    HOUR_US,
    NEVER,
    USER_TYPES,
    SimConfig,
)

REGIONS = np.array(["north", "south", "east", "west", "central"])
# Popularity b_i ~ N(-0.3, POPULARITY_SD) + HOT_BOOST for a HOT_SHARE of products. It raises both
# clicks (it is part of affinity) and air time (on-air draw weight exp(ON_AIR_WEIGHT * b)). The
# top 1% of products then draw 20-40% of clicks at catalog sizes from hundreds to 50k.
POPULARITY_SD, HOT_BOOST, HOT_SHARE, ON_AIR_WEIGHT = 0.95, 1.5, 0.012, 0.5


@dataclass
class Schedule:
    """Streams split into equal segments; each segment has a fixed on-air product set."""

    stream_start_us: np.ndarray  # [S]
    stream_end_us: np.ndarray  # [S]
    stream_category: np.ndarray  # [S]
    stream_day: np.ndarray  # [S] day index the stream starts on
    stream_seg_offset: np.ndarray  # [S] index of the stream's first segment
    stream_nseg: np.ndarray  # [S]
    seg_stream: np.ndarray  # [G]
    seg_start_us: np.ndarray  # [G]
    seg_end_us: np.ndarray  # [G]
    seg_items: np.ndarray  # [G, n_max] product indices, -1 padded
    seg_n: np.ndarray  # [G] products on air
    seg_pin_col: np.ndarray  # [G] column of the pinned product in seg_items, -1 if none
    seg_pin_slot: np.ndarray  # [G] the slot it is pinned to, -1 if none


@dataclass
class Memberships:
    community: np.ndarray  # [M] community index
    user: np.ndarray  # [M] user index
    join_us: np.ndarray  # [M]
    leave_us: np.ndarray  # [M] int64 max when the user stays


@dataclass
class World:
    config: SimConfig
    params: Params
    schedule: Schedule
    memberships: Memberships
    community_category: np.ndarray  # [K]
    tables: dict[str, pa.Table]


STAYS_US = np.iinfo(np.int64).max


def _ts(days: np.ndarray, start_us: int) -> np.ndarray:
    return (start_us + np.round(np.asarray(days, dtype=np.float64) * DAY_US)).astype(np.int64)


def _tastes(rng: np.random.Generator, n: int, centroids: np.ndarray, cat_weights: np.ndarray) -> np.ndarray:
    """``n`` users' tastes: 0.9 x a favourite category's centroid, half the time 0.45 x a second's, noise."""
    fav = rng.choice(len(centroids), size=n, p=cat_weights)
    fav2 = rng.choice(len(centroids), size=n, p=cat_weights)
    has2 = rng.random(n) < 0.5
    return (
        0.9 * centroids[fav]
        + 0.45 * has2[:, None] * centroids[fav2]
        + rng.normal(0, 0.35, (n, centroids.shape[1]))
    )


def _drift(cfg: SimConfig, rng: np.random.Generator, centroids: np.ndarray, cat_weights: np.ndarray):
    """Taste drift: ``drift_share`` of the users get new tastes, drawn afresh from the same prior,
    from a whole day in the last ``1 - drift_after`` of the period on (Params.user_switch_day)."""
    n = cfg.users
    moves = rng.random(n) < cfg.drift_share
    first = min(cfg.days - 1, max(1, int(np.ceil(cfg.drift_after * cfg.days))))
    switch = np.where(moves, rng.integers(first, cfg.days, n), np.inf)
    return {
        "user_next_factors": _tastes(rng, n, centroids, cat_weights).astype(np.float32),
        "user_switch_day": switch.astype(np.float32),
    }


def _users(cfg: SimConfig, rng: np.random.Generator, centroids: np.ndarray, cat_weights: np.ndarray):
    n, d = cfg.users, cfg.factors
    shares = np.array([t.share for t in USER_TYPES])
    utype = rng.choice(len(USER_TYPES), size=n, p=shares / shares.sum()).astype(np.int8)
    col = {
        name: np.array([getattr(t, name) for t in USER_TYPES]) for name in USER_TYPES[0].__dataclass_fields__
    }
    uf = _tastes(rng, n, centroids, cat_weights)
    log_uf = uf + rng.normal(0, 0.5, (n, d))
    activity = np.clip(col["activity"][utype] * rng.lognormal(0, 0.5, n), 0, 0.95)
    conversion = col["conversion"][utype] + rng.normal(0, 0.3, n)
    conversion = np.where(np.isfinite(conversion), conversion, NEVER_LOGIT)
    price_sens = col["price_sensitivity"][utype] * rng.lognormal(0, 0.3, n)
    is_new = utype == [t.name for t in USER_TYPES].index("new")
    signup = np.where(is_new, rng.uniform(0, cfg.days, n), -rng.uniform(30, 730, n))
    churn_mean = col["churn_days"][utype]
    with np.errstate(invalid="ignore"):
        churn = np.where(
            np.isfinite(churn_mean), np.maximum(signup, 0) + rng.exponential(1.0, n) * churn_mean, NEVER
        )
    push_open = np.clip(col["push_open"][utype] * rng.lognormal(0, 0.3, n), 0, 0.95)
    # Built in arrow, not as a numpy object array (which drags in pandas and is slow at 1M rows).
    region_idx = pa.array(rng.integers(0, len(REGIONS), n), mask=rng.random(n) < 0.02)
    region = pa.array(REGIONS.tolist(), pa.string()).take(region_idx)
    table = pa.table(
        {
            "user_id": np.arange(1, n + 1, dtype=np.int64),
            "signup_ts": _ts(signup, cfg.start_us),
            "region": region,
            "consent_personalization": rng.random(n) < 0.92,
            "consent_marketing": rng.random(n) < 0.6,
        }
    )
    arrays = {
        "user_factors": uf.astype(np.float32),
        "user_log_factors": log_uf.astype(np.float32),
        "user_type": utype,
        "user_activity": activity.astype(np.float32),
        "user_conversion": conversion.astype(np.float32),
        "user_price_sensitivity": price_sens.astype(np.float32),
        "user_signup_day": signup.astype(np.float32),
        "user_churn_day": churn.astype(np.float32),
        "user_push_open": push_open.astype(np.float32),
        "user_repurchase": col["repurchase"][utype].astype(np.float32),
    }
    return arrays, table


def _products(cfg: SimConfig, rng: np.random.Generator, centroids: np.ndarray, cat_weights: np.ndarray):
    n, d, c = cfg.products, cfg.factors, cfg.categories
    names = cfg.category_names
    # Every category gets 2*slots launched products first, so any segment can fill a carousel.
    base = 2 * cfg.slots * c
    cat = np.concatenate([np.arange(base) % c, rng.choice(c, size=n - base, p=cat_weights)]).astype(np.int16)
    pf = centroids[cat] + rng.normal(0, 0.35, (n, d))
    # Heavy-tailed popularity: a few products draw a large share of attention.
    bias = rng.normal(-0.3, POPULARITY_SD, n) + HOT_BOOST * (rng.random(n) < HOT_SHARE)
    base_price = np.exp(rng.uniform(np.log(8), np.log(150), c))
    price = np.round(base_price[cat] * rng.lognormal(0, 0.5, n), 2) + 0.99
    med = np.array([np.median(price[cat == k]) if np.any(cat == k) else 1.0 for k in range(c)])
    rel_price = np.log(price / med[cat])
    consumable = np.isin(np.array(names)[cat], list(CONSUMABLE_CATEGORIES))
    cycle = np.where(consumable, rng.uniform(5, 40, n), np.nan)
    launched_late = (rng.random(n) < 0.12) & (np.arange(n) >= base)
    launch = np.where(launched_late, rng.uniform(0, cfg.days, n), -rng.uniform(0, 365, n))
    brand_rank = np.minimum(rng.zipf(1.6, n), 20)
    brand = np.char.add(np.char.add(np.array(names)[cat], "-brand-"), brand_rank.astype(str))
    table = pa.table(
        {
            "product_id": np.arange(1, n + 1, dtype=np.int64),
            "category": np.array(names)[cat],
            "brand": brand,
            "price": price,
            "margin": np.round(rng.uniform(0.08, 0.5, n), 3),
            "stock": rng.geometric(1 / 300, n).astype(np.int64),
            "launch_ts": _ts(launch, cfg.start_us),
            "repurchase_cycle_days": pa.array(cycle, mask=np.isnan(cycle)),  # durables: null, not NaN
        }
    )
    arrays = {
        "product_factors": pf.astype(np.float32),
        "product_bias": bias.astype(np.float32),
        "product_category": cat,
        "product_price": price,
        "product_rel_price": rel_price.astype(np.float32),
        "product_cycle_days": cycle.astype(np.float32),
        "product_launch_day": launch.astype(np.float32),
    }
    return arrays, table


def _schedule(
    cfg: SimConfig, rng: np.random.Generator, pcat: np.ndarray, bias: np.ndarray, launch: np.ndarray
):
    c, spc = cfg.categories, cfg.streams_per_day
    n_streams = cfg.days * c * spc
    day = np.repeat(np.arange(cfg.days), c * spc)
    scat = np.tile(np.repeat(np.arange(c), spc), cfg.days).astype(np.int16)
    start = cfg.start_us + day * DAY_US + rng.integers(8 * HOUR_US, 22 * HOUR_US, n_streams)
    end = start + rng.integers(1 * HOUR_US, 3 * HOUR_US, n_streams)
    host = (
        1_000_000_000
        + scat.astype(np.int64) * cfg.hosts_per_category
        + rng.integers(0, cfg.hosts_per_category, n_streams)
    )
    host_effect = rng.normal(0, COEFS["stream_boost_sd"], c * cfg.hosts_per_category)
    boost = host_effect[host - 1_000_000_000] + rng.normal(0, 0.1, n_streams)
    if not cfg.streams:
        boost = np.zeros_like(boost)  # no hosts in a stream-less shop
    nseg = rng.integers(2, 4, n_streams)
    offset = np.concatenate([[0], np.cumsum(nseg)[:-1]])
    seg_stream = np.repeat(np.arange(n_streams), nseg)
    k_in = np.arange(len(seg_stream)) - offset[seg_stream]
    seg_len = (end - start) // nseg
    seg_start = start[seg_stream] + k_in * seg_len[seg_stream]
    seg_end = np.where(k_in == nseg[seg_stream] - 1, end[seg_stream], seg_start + seg_len[seg_stream])
    lo, hi = cfg.segment_products
    g = len(seg_stream)
    seg_day = (seg_start - cfg.start_us) / DAY_US
    items, n_ok = _on_air(rng, pcat, bias, launch, scat[seg_stream], seg_day, hi, c)
    n_on = np.minimum(rng.integers(lo, hi + 1, g), n_ok)
    items = np.where(np.arange(hi)[None, :] < n_on[:, None], items, -1)
    pinned = rng.random(g) < 0.4
    pin_col = np.where(pinned, (rng.random(g) * n_on).astype(np.int64), -1)
    pin_slot = np.where(pinned, np.where(rng.random(g) < 0.75, 0, 1), -1)
    pin_slot = np.minimum(pin_slot, cfg.slots - 1)
    sched = Schedule(
        start, end, scat, day, offset, nseg, seg_stream, seg_start, seg_end, items, n_on, pin_col, pin_slot
    )
    streams = pa.table(
        {
            "stream_id": np.arange(1, n_streams + 1, dtype=np.int64),
            "host_id": host,
            "category": np.array(cfg.category_names)[scat],
            "start_ts": start,
            "end_ts": end,
        }
    )
    gi, col = np.nonzero(items >= 0)
    sp = pa.table(
        {
            "stream_id": seg_stream[gi].astype(np.int64) + 1,
            "product_id": items[gi, col] + 1,
            "on_air_from": seg_start[gi],
            "on_air_to": seg_end[gi],
            "pinned_slot": pa.array(
                np.where(col == pin_col[gi], pin_slot[gi], 0), mask=col != pin_col[gi], type=pa.int32()
            ),
        }
    )
    return sched, boost.astype(np.float32), streams, sp


def _on_air(rng, pcat, bias, launch, seg_cat, seg_day, hi: int, n_cat: int):
    """Up to ``hi`` products per segment, drawn without replacement from the segment's category
    among products launched by then, with weights exp(ON_AIR_WEIGHT * b).

    Successive sampling without replacement is the order of first occurrences in a stream of
    draws with replacement, so each segment takes 4*hi cheap weighted draws (inverse CDF) and keeps
    the first distinct launched ones; the rare segment left short (tiny categories) is redrawn
    exactly by Gumbel top-n. Returns items [G, hi] (-1 padded) and how many each segment got.
    """
    g, m = len(seg_cat), 4 * hi
    order = np.argsort(pcat, kind="stable")
    w = np.exp(ON_AIR_WEIGHT * bias[order].astype(np.float64))
    cum = np.cumsum(w)
    ends = np.searchsorted(pcat[order], np.arange(n_cat), side="right")
    starts = np.concatenate([[0], ends[:-1]])
    base = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    total = cum[ends - 1] - base
    x = base[seg_cat][:, None] + rng.random((g, m)) * total[seg_cat][:, None]
    pos = np.clip(np.searchsorted(cum, x, side="right"), starts[seg_cat][:, None], ends[seg_cat][:, None] - 1)
    prod = order[pos]
    srt = np.argsort(prod, axis=1, kind="stable")  # stable: the first draw of a product stays first
    sv = np.take_along_axis(prod, srt, axis=1)
    dup = np.zeros_like(prod, dtype=bool)
    np.put_along_axis(
        dup, srt, np.concatenate([np.zeros((g, 1), bool), sv[:, 1:] == sv[:, :-1]], axis=1), axis=1
    )
    keep = ~dup & (launch[prod] <= seg_day[:, None])
    keep &= np.cumsum(keep, axis=1) <= hi
    take = np.argsort(~keep, axis=1, kind="stable")[:, :hi]
    items = np.where(np.take_along_axis(keep, take, axis=1), np.take_along_axis(prod, take, axis=1), -1)
    n_ok = keep.sum(axis=1)
    short = np.flatnonzero(n_ok < hi)
    for r in short:  # few and small: exact Gumbel top-n over the launched pool
        pool = order[starts[seg_cat[r]] : ends[seg_cat[r]]]
        pool = pool[launch[pool] <= seg_day[r]]
        keys = ON_AIR_WEIGHT * bias[pool] + rng.gumbel(size=len(pool))
        top = pool[np.argsort(-keys, kind="stable")[:hi]]
        items[r] = -1
        items[r, : len(top)] = top
        n_ok[r] = len(top)
    return items, n_ok


def _memberships(cfg: SimConfig, rng: np.random.Generator, arrays: dict, centroids: np.ndarray):
    n_comm = cfg.categories * len(COMMUNITY_KINDS)
    comm_cat = np.repeat(np.arange(cfg.categories), len(COMMUNITY_KINDS))
    rate = np.array([t.memberships for t in USER_TYPES])[arrays["user_type"]]
    m = np.minimum(rng.poisson(rate), n_comm)
    users, comms = [], []
    for lo in range(0, cfg.users, cfg.chunk_users):  # chunks keep [users, communities] small
        hi = min(lo + cfg.chunk_users, cfg.users)
        interest = arrays["user_factors"][lo:hi] @ centroids[comm_cat].T.astype(np.float32)
        order = np.argsort(-(1.5 * interest + rng.gumbel(size=interest.shape)), axis=1)
        take = np.arange(n_comm)[None, :] < m[lo:hi, None]
        r, cidx = np.nonzero(take)
        users.append(r + lo)
        comms.append(order[r, cidx])
    user = np.concatenate(users)
    comm = np.concatenate(comms)
    signup = arrays["user_signup_day"][user].astype(np.float64)
    early = (signup < 0) & (rng.random(len(user)) < 0.8)
    lo = np.maximum(signup, 0)
    u1, u2 = rng.random(len(user)), rng.random(len(user))
    join = np.where(early, signup * (1 - u1), lo + u2 * (cfg.days - lo))
    keep = join < arrays["user_churn_day"][user]
    user, comm, join = user[keep], comm[keep], join[keep]
    leaves = rng.random(len(user)) < 0.1
    lo = np.maximum(join, 0)
    leave_day = lo + rng.random(len(user)) * (cfg.days - lo)
    join_us = _ts(join, cfg.start_us)
    leave_us = np.where(leaves, np.maximum(_ts(leave_day, cfg.start_us), join_us + 1), STAYS_US)
    mem = Memberships(comm.astype(np.int64), user.astype(np.int64), join_us, leave_us)
    stays = ~leaves
    table = pa.table(
        {
            "community_id": mem.community[stays] + 1,
            "user_id": mem.user[stays] + 1,
            "joined_ts": join_us[stays],
        }
    )
    topics = [f"{cfg.category_names[k]}-{kind}" for k in range(cfg.categories) for kind in COMMUNITY_KINDS]
    communities = pa.table({"community_id": np.arange(1, n_comm + 1, dtype=np.int64), "topic": topics})
    return mem, comm_cat, communities, table


def build_world(cfg: SimConfig, rng: np.random.Generator) -> World:
    """Draw the static world (deterministic for a given generator state)."""
    d = cfg.factors
    centroids = rng.normal(0, 1, (cfg.categories, d))
    centroids *= 1.4 / np.linalg.norm(centroids, axis=1, keepdims=True)
    cat_weights = 1.0 / np.arange(1, cfg.categories + 1) ** 0.5
    cat_weights /= cat_weights.sum()
    uarr, users = _users(cfg, rng, centroids, cat_weights)
    parr, products = _products(cfg, rng, centroids, cat_weights)
    sched, boost, streams, sp = _schedule(
        cfg, rng, parr["product_category"], parr["product_bias"], parr["product_launch_day"]
    )
    mem, comm_cat, communities, memberships = _memberships(cfg, rng, uarr, centroids)
    # Drawn last, and only when asked for: a world without drift is the same as before it existed.
    drift = _drift(cfg, rng, centroids, cat_weights) if cfg.drift_share > 0 else {}
    params = Params(
        **uarr, **parr, category_centroids=centroids.astype(np.float32), stream_boost=boost, **drift
    )
    tables = {
        "users": users,
        "products": products,
        "streams": streams,
        "stream_products": sp,
        "communities": communities,
        "memberships": memberships,
    }
    return World(cfg, params, sched, mem, comm_cat, tables)
