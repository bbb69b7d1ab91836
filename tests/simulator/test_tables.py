"""The generated tables: canonical, valid, consistent with each other, and shaped like the brief asks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq

from features.data_model import SCHEMAS, TABLES, table_path
from features.validation import validate_dir
from pipelines.simulator import TrueWorld


def _q(data_dir: Path, sql: str):
    con = duckdb.connect()
    for name in TABLES:
        con.execute(f"create view {name} as select * from read_parquet('{table_path(data_dir, name)}')")
    return con.execute(sql).fetchall()


def test_every_table_has_the_canonical_schema(small_world: Path) -> None:
    for name in TABLES:
        t = pq.read_table(table_path(small_world, name))
        assert t.schema.equals(SCHEMAS[name]), name
        assert t.num_rows > 0, name


def test_tables_pass_validation_without_quarantine(small_world: Path) -> None:
    report = validate_dir(small_world, write=False)
    lost = {n: c.quarantined for n, c in report.tables.items() if c.quarantined}
    assert lost == {}
    assert set(report.tables) == set(TABLES)


def test_events_are_time_ordered_with_unique_increasing_ids(small_world: Path) -> None:
    ev = pq.read_table(table_path(small_world, "events"), columns=["event_id", "ts"])
    ids = ev.column("event_id").to_numpy()
    ts = ev.column("ts").cast("int64").to_numpy()
    assert np.all(np.diff(ids) > 0)
    assert np.all(np.diff(ts) >= 0)


def test_events_agree_with_impressions_and_pushes(small_world: Path) -> None:
    [(clicks, stream_clicks, buys, stream_buys, sent, pushes, push_buys, push_buy_events)] = _q(
        small_world,
        """select
          (select count(*) from impressions where clicked),
          (select count(*) from events where type = 'product_click' and stream_id is not null),
          (select count(*) from impressions where purchased),
          (select count(*) from events where type = 'purchase' and stream_id is not null),
          (select count(*) from events where type = 'push_sent'),
          (select count(*) from pushes),
          (select count(*) from pushes where purchased),
          (select count(*) from events where type = 'purchase' and community_id is not null)""",
    )
    assert clicks == stream_clicks > 0
    assert buys == stream_buys > 0
    assert sent == pushes > 0
    assert push_buys == push_buy_events > 0
    # a purchase is never logged without a click, and no request shows a product twice
    [(bad, dup)] = _q(
        small_world,
        """select (select count(*) from impressions where purchased and not clicked),
                  (select count(*) from (select request_id, product_id from impressions
                                         group by all having count(*) > 1))""",
    )
    assert bad == 0 and dup == 0


def test_shown_products_were_on_air(small_world: Path) -> None:
    [(off_air,)] = _q(
        small_world,
        """select count(*) from impressions i where not exists (
             select 1 from stream_products sp where sp.stream_id = i.stream_id and sp.product_id = i.product_id
             and i.ts >= sp.on_air_from and i.ts < sp.on_air_to)""",
    )
    assert off_air == 0


def test_long_tail_conversion_and_inactivity_are_in_range(small_world: Path) -> None:
    [(top1_share,)] = _q(
        small_world,
        """with c as (select product_id, count(*) n from events where type = 'product_click' group by 1),
                r as (select n, row_number() over (order by n desc) rk from c)
           select sum(n) filter (where rk <= (select count(*) from products) / 100) / sum(n) from r""",
    )
    assert 0.2 <= top1_share <= 0.4
    [(conv,)] = _q(
        small_world,
        """select count(*) filter (where type = 'purchase' and stream_id is not null)
                / count(*) filter (where type = 'product_click') from events""",
    )
    assert 0.005 <= conv <= 0.09
    [(active, users)] = _q(
        small_world,
        """select (select count(distinct user_id) from events
                   where type in ('stream_view', 'product_click', 'purchase', 'push_open')),
                  (select count(*) from users)""",
    )
    assert 0.25 <= 1 - active / users <= 0.8  # most users are mostly inactive, but not all
    # the busiest tenth of all users makes about half of the views
    [(top_decile_share,)] = _q(
        small_world,
        """with v as (select u.user_id, count(e.user_id) n from users u
                          left join events e on e.user_id = u.user_id and e.type = 'stream_view' group by 1),
                r as (select n, ntile(10) over (order by n desc) d from v)
           select sum(n) filter (where d = 1) / sum(n) from r""",
    )
    assert top_decile_share > 0.35


def test_user_types_differ_in_buying(small_world: Path) -> None:
    truth = TrueWorld.load(small_world)
    rows = _q(small_world, "select user_id, count(*) from events where type = 'purchase' group by 1")
    users = pq.read_table(table_path(small_world, "users")).column("user_id").to_numpy()
    buys = dict(rows)
    per_user = np.array([buys.get(int(u), 0) for u in users])
    kinds = truth.user_type(users)
    rate = {k: per_user[kinds == k].mean() for k in truth.type_names}
    assert rate["viewer_only"] == 0
    assert rate["loyal_high_value"] > 3 * rate["potential"] > 0
    assert rate["potential"] > rate["sleeping"]


def test_consumables_are_bought_again_and_durables_are_not(small_world: Path) -> None:
    [(repeat_consumable, repeat_durable)] = _q(
        small_world,
        """select count(*) filter (where p.repurchase_cycle_days is not null),
                  count(*) filter (where p.repurchase_cycle_days is null)
           from events e join products p using (product_id)
           where e.type = 'purchase' and e.stream_id is null and e.community_id is null""",
    )
    assert repeat_consumable > 0 and repeat_durable == 0


def test_community_events_match_memberships(small_world: Path) -> None:
    [(joins, leaves, members, pushes_to_nonmembers, pushes_without_consent)] = _q(
        small_world,
        """select (select count(*) from events where type = 'community_join'),
                  (select count(*) from events where type = 'community_leave'),
                  (select count(*) from memberships),
                  (select count(*) from pushes p where not exists (select 1 from events e
                     where e.type = 'community_leave' and e.user_id = p.user_id
                       and e.community_id = p.community_id)
                     and not exists (select 1 from memberships m
                     where m.user_id = p.user_id and m.community_id = p.community_id)),
                  (select count(*) from pushes join users using (user_id) where not consent_marketing)""",
    )
    assert joins > 0 and leaves > 0 and members > 0
    assert pushes_to_nonmembers == 0
    assert pushes_without_consent == 0
