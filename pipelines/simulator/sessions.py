"""One simulated day of live-stream viewing: sessions, engagement, carousel requests and outcomes.

Who watches: each user who has signed up and not churned starts Poisson(activity) sessions.
Which stream: a softmax over the day's streams by the user's interest in the stream's category.
What they see: a carousel request every so often while watching, served by the logging policy
over the products on air at that moment. What they do: per shown slot, click with probability
examination(slot) * sigmoid(click_intercept + affinity), then cart and buy (behaviour.py).
"""

from __future__ import annotations

import numpy as np

from pipelines.simulator import behaviour as bh
from pipelines.simulator import policies
from pipelines.simulator.config import DAY_US
from pipelines.simulator.entities import World
from pipelines.simulator.writer import concat, event_columns

SECOND_US = 1_000_000


def _poisson_events(rng, etype, rate, sess_user, sess_stream, t0, watch_us):
    """Engagement events (comments, likes, shares) spread uniformly over each session."""
    n = rng.poisson(rate)
    idx = np.repeat(np.arange(len(n)), n)
    ts = t0[idx] + (rng.random(len(idx)) * watch_us[idx]).astype(np.int64)
    return event_columns(ts, sess_user[idx], etype, stream=sess_stream[idx])


def simulate_day(world: World, day: int, rng: np.random.Generator, first_request: int):
    """Events, impressions and purchases of ``day``; requests are numbered from ``first_request``."""
    cfg, p, sch = world.config, world.params, world.schedule
    # Who is around today: signed up before the day and not yet churned.
    alive = (p.user_signup_day <= day) & (p.user_churn_day > day)
    users = np.flatnonzero(alive)
    n_sess = rng.poisson(p.user_activity[users])
    sess_user = np.repeat(users, n_sess)
    streams = np.flatnonzero(sch.stream_day == day)
    if len(sess_user) == 0 or len(streams) == 0:
        return [], {}, {}

    # Stream choice: softmax over the day's streams by interest in their category. Every category
    # has the same number of streams a day, so that is a category draw, then a uniform stream.
    spc = cfg.streams_per_day
    interest_all = p.user_factors[sess_user] @ p.category_centroids.T
    cat = np.argmax(bh.COEFS["stream_choice"] * interest_all + rng.gumbel(size=interest_all.shape), axis=1)
    sess_stream = streams[0] + cat * spc + rng.integers(0, spc, len(cat))
    interest = interest_all[np.arange(len(cat)), cat]
    s_start, s_end = sch.stream_start_us[sess_stream], sch.stream_end_us[sess_stream]
    t0 = s_start + (rng.random(len(cat)) * (s_end - s_start - 60 * SECOND_US)).astype(np.int64)
    watch_s = rng.exponential(300.0 * np.exp(0.3 * np.clip(interest, -3, 3)))
    watch_us = np.clip((watch_s * SECOND_US).astype(np.int64), 5 * SECOND_US, s_end - t0)
    watch_s = watch_us / SECOND_US

    parts = []
    if cfg.streams:
        parts.append(event_columns(t0, sess_user, "stream_view", stream=sess_stream, watch=watch_s))
        minutes = watch_s / 60.0
        for etype, per_min in (("comment", 0.03), ("like", 0.08), ("share", 0.004)):
            parts.append(_poisson_events(rng, etype, per_min * minutes, sess_user, sess_stream, t0, watch_us))

    # Carousel requests: one on arrival, then about one per ten minutes watched.
    n_req = 1 + np.minimum(rng.poisson(watch_s / 600.0), 4)
    r_sess = np.repeat(np.arange(len(sess_user)), n_req)
    first = np.repeat(np.cumsum(n_req) - n_req, n_req)
    is_first = np.arange(len(r_sess)) == first
    r_ts = t0[r_sess] + np.where(is_first, 0, (rng.random(len(r_sess)) * watch_us[r_sess]).astype(np.int64))
    r_user, r_stream = sess_user[r_sess], sess_stream[r_sess]
    nseg = sch.stream_nseg[r_stream]
    seg_len = (sch.stream_end_us[r_stream] - sch.stream_start_us[r_stream]) // nseg
    k_in = np.clip((r_ts - sch.stream_start_us[r_stream]) // seg_len, 0, nseg - 1)
    seg = sch.stream_seg_offset[r_stream] + k_in

    k, eps = cfg.slots, cfg.epsilon
    shown, prop = policies.carousel(
        p,
        r_user,
        sch.seg_items[seg],
        sch.seg_n[seg],
        sch.seg_pin_col[seg],
        sch.seg_pin_slot[seg],
        k,
        eps,
        rng,
    )
    uu = np.broadcast_to(r_user[:, None], shown.shape)
    aff = bh.affinity(p, uu, shown)
    slots = np.broadcast_to(np.arange(k)[None, :], shown.shape)
    clicked = rng.random(shown.shape) < bh.examination(slots) * bh.click_given_exam(p, uu, shown, aff)
    boost = p.stream_boost[r_stream][:, None]
    # A stream-less shop: the same shelves rotate through the day, but nothing names a stream.
    logged_stream = r_stream if cfg.streams else np.full_like(r_stream, -1)
    carted = clicked & (rng.random(shown.shape) < bh.cart_given_click(p, uu, shown, boost, aff))
    bought = carted & (rng.random(shown.shape) < bh.buy_given_cart(p, uu))

    n_r = len(r_ts)
    impressions = {
        "ts": np.repeat(r_ts, k),
        "request": np.repeat(np.arange(first_request, first_request + n_r), k),
        "user": np.repeat(r_user, k),
        "stream": np.repeat(logged_stream, k),
        "product": shown.ravel(),
        "slot": slots.ravel(),
        "propensity": prop.ravel(),
        "clicked": clicked.ravel(),
        "purchased": bought.ravel(),
    }
    # The funnel events of each clicked slot, a little after the request.
    ri, si = np.nonzero(clicked)
    t_click = r_ts[ri] + rng.integers(1, 60, len(ri)) * SECOND_US
    prod, usr, strm = shown[ri, si], r_user[ri], logged_stream[ri]
    parts.append(event_columns(t_click, usr, "product_click", product=prod, stream=strm))
    c = carted[ri, si]
    t_cart = t_click[c] + rng.integers(5, 120, int(c.sum())) * SECOND_US
    parts.append(event_columns(t_cart, usr[c], "add_to_cart", product=prod[c], stream=strm[c]))
    b = bought[ri, si][c]
    t_buy = t_cart[b] + rng.integers(10, 300, int(b.sum())) * SECOND_US
    pb, ub = prod[c][b], usr[c][b]
    parts.append(
        event_columns(t_buy, ub, "purchase", product=pb, stream=strm[c][b], amount=p.product_price[pb])
    )
    purchases = {"user": ub, "product": pb, "ts": t_buy}
    return parts, impressions, purchases


def repurchases(world: World, due: dict[str, np.ndarray], day: int):
    """Consumables bought again today (outside any stream) by users who are still around."""
    p = world.params
    day_start = world.config.start_us + day * DAY_US
    today = (due["ts"] >= day_start) & (due["ts"] < day_start + DAY_US) if len(due.get("ts", ())) else None
    if today is None or not today.any():
        return [], {}, due
    u, i, ts = due["user"][today], due["product"][today], due["ts"][today]
    ok = p.user_churn_day[u] > day
    u, i, ts = u[ok], i[ok], ts[ok]
    rest = {k: v[~today] for k, v in due.items()}
    ev = event_columns(ts, u, "purchase", product=i, amount=p.product_price[i])
    return [ev], {"user": u, "product": i, "ts": ts}, rest


def schedule_repurchases(world: World, due: dict, purchases: list[dict], rng: np.random.Generator) -> dict:
    """Each consumable purchase is repeated after about its cycle with the user type's probability."""
    p = world.params
    bought = concat([{k: v for k, v in b.items()} for b in purchases if b])
    if not bought:
        return due
    cycle = p.product_cycle_days[bought["product"]]
    again = np.isfinite(cycle) & (rng.random(len(cycle)) < p.user_repurchase[bought["user"]])
    delay = cycle[again] * rng.lognormal(0, 0.15, int(again.sum())) * DAY_US
    new = {
        "user": bought["user"][again],
        "product": bought["product"][again],
        "ts": bought["ts"][again] + delay.astype(np.int64),
    }
    horizon = world.config.start_us + world.config.days * DAY_US
    keep = new["ts"] < horizon
    new = {k: v[keep] for k, v in new.items()}
    return concat([due, new]) or {
        "user": np.empty(0, np.int64),
        "product": np.empty(0, np.int64),
        "ts": np.empty(0, np.int64),
    }
