"""Community push campaigns of one simulated day, and community join/leave events.

Each community runs a campaign every ``push_every_days`` days (staggered by community). Its
audience is every member at send time who consented to marketing. The campaign's candidates are
the most popular launched products of the community's category; the push logging policy picks
one per member (policies.push). A member who is still around opens with their push_open
probability, clicks with sigmoid(push_click_intercept + affinity), then carts and buys as in a
stream without the host effect.
"""

from __future__ import annotations

import numpy as np

from pipelines.simulator import behaviour as bh
from pipelines.simulator import policies
from pipelines.simulator.config import DAY_US, HOUR_US
from pipelines.simulator.entities import World
from pipelines.simulator.writer import event_columns

MINUTE_US = 60 * 1_000_000


def campaign_candidates(world: World, day: int, communities: np.ndarray) -> np.ndarray:
    """[len(communities), M] product indices: the top-M launched products of each one's category."""
    p, m = world.params, world.config.push_candidates
    out = np.empty((len(communities), m), dtype=np.int64)
    launched = p.product_launch_day <= day
    for r, k in enumerate(communities):  # a few dozen communities: a loop over them is cheap
        pool = np.flatnonzero(launched & (p.product_category == world.community_category[k]))
        top = pool[np.argsort(-p.product_bias[pool], kind="stable")[:m]]
        out[r] = np.resize(top, m)  # tiny categories repeat candidates rather than fail
    return out


def campaign_time_us(world: World, day: int, community: np.ndarray) -> np.ndarray:
    """Send time: 10:00 to 19:00 UTC, fixed per community."""
    return world.config.start_us + day * DAY_US + (10 + (community * 7) % 10) * HOUR_US


def simulate_pushes(world: World, day: int, rng: np.random.Generator, first_push: int, consent: np.ndarray):
    """Events, pushes rows and purchases of the campaigns sent on ``day``."""
    cfg, p, mem = world.config, world.params, world.memberships
    n_comm = len(world.community_category)
    today = np.flatnonzero((np.arange(n_comm) + day) % cfg.push_every_days == 0)
    if len(today) == 0:
        return [], {}, {}
    send_us = campaign_time_us(world, day, np.arange(n_comm))
    in_campaign = np.isin(mem.community, today)
    t_send = send_us[mem.community]
    aud = np.flatnonzero(in_campaign & (mem.join_us <= t_send) & (mem.leave_us > t_send) & consent[mem.user])
    if len(aud) == 0:
        return [], {}, {}
    users, comm, ts = mem.user[aud], mem.community[aud], t_send[aud]
    cand_rows = campaign_candidates(world, day, today)
    row_of = np.full(n_comm, -1)
    row_of[today] = np.arange(len(today))
    pushed, prop = policies.push(p, users, cand_rows[row_of[comm]], cfg.push_epsilon, rng)

    around = p.user_churn_day[users] > day
    opened = around & (rng.random(len(users)) < p.user_push_open[users])
    aff = bh.affinity(p, users, pushed)
    clicked = opened & (rng.random(len(users)) < bh.push_click_given_open(p, users, pushed, aff))
    carted = clicked & (rng.random(len(users)) < bh.cart_given_click(p, users, pushed, 0.0, aff))
    bought = carted & (rng.random(len(users)) < bh.buy_given_cart(p, users))

    n = len(users)
    rows = {
        "ts": ts,
        "push": np.arange(first_push, first_push + n),
        "user": users,
        "product": pushed,
        "community": comm,
        "propensity": prop,
        "opened": opened,
        "clicked": clicked,
        "purchased": bought,
    }
    t_open = ts + (rng.exponential(45.0, n) * MINUTE_US).astype(np.int64) + MINUTE_US
    t_click = t_open + rng.integers(5, 90, n) * 1_000_000
    t_cart = t_click + rng.integers(10, 300, n) * 1_000_000
    t_buy = t_cart + rng.integers(10, 600, n) * 1_000_000
    parts = [event_columns(ts, users, "push_sent", product=pushed, community=comm)]
    for etype, mask, t in (
        ("push_open", opened, t_open),
        ("push_click", clicked, t_click),
        ("add_to_cart", carted, t_cart),
    ):
        parts.append(event_columns(t[mask], users[mask], etype, product=pushed[mask], community=comm[mask]))
    b = bought
    parts.append(
        event_columns(
            t_buy[b],
            users[b],
            "purchase",
            product=pushed[b],
            community=comm[b],
            amount=p.product_price[pushed[b]],
        )
    )
    return parts, rows, {"user": users[b], "product": pushed[b], "ts": t_buy[b]}


def membership_events(world: World) -> list[dict[str, np.ndarray]]:
    """community_join / community_leave events for changes inside the simulated period."""
    mem, start = world.memberships, world.config.start_us
    j = mem.join_us >= start
    stays = np.iinfo(np.int64).max
    left = mem.leave_us < stays
    return [
        event_columns(mem.join_us[j], mem.user[j], "community_join", community=mem.community[j]),
        event_columns(mem.leave_us[left], mem.user[left], "community_leave", community=mem.community[left]),
    ]
