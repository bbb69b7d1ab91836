"""The DuckDB SQL of the offline feature tables.

Conventions: ``dn`` is a UTC day number (days since 1970-01-01). A daily snapshot for day ``dn``
carries ``event_timestamp = midnight after dn`` and is computed only from events strictly before that
instant, so Feast's point-in-time join (row timestamp <= label timestamp) can never see an event at
or after the label. Per-event rows (live session, last purchase) are stamped one microsecond after
their event for the same reason. Windows are RANGE frames over day numbers (exact, no loops).
Each feature query is a plain SELECT; ``features.offline`` writes it to parquet together with one
null "sentinel" row per key at 1970-01-02, because Feast's file offline store drops an entity row
altogether when every candidate row of a view is newer than the row's timestamp.
Expects the temp tables ``ev`` (events before the cut-off, with ``dn``), ``users_t``, ``products_t``,
``streams_t`` and the parameters inlined by ``features.offline``.
"""

from __future__ import annotations


def sql_path(path: object) -> str:
    """A path as a DuckDB string literal: a quote in a folder name (``/home/o'brien``) ended the
    string, and every query on the state dir failed with a parser error."""
    return "'" + str(path).replace("'", "''") + "'"


SNAP = "to_timestamp(CAST(dn + 1 AS BIGINT) * 86400)"  # midnight after day dn, UTC
DAYS = "/ 86400.0"

EVENTS = """
CREATE TEMP TABLE ev AS
SELECT user_id, ts, type, product_id, stream_id,
       coalesce(watch_seconds, 0.0) AS ws, coalesce(amount, 0.0) AS amt,
       CAST(floor(epoch(ts) / 86400) AS INTEGER) AS dn
FROM events_t WHERE ts < {cutoff}
"""

USER_DAILY = """
CREATE TEMP TABLE ud AS
SELECT user_id, dn,
  count(*) FILTER (WHERE type = 'purchase') AS purchases,
  coalesce(sum(amt) FILTER (WHERE type = 'purchase'), 0) AS spend,
  max(ts) FILTER (WHERE type <> 'push_sent') AS last_active_ts,
  max(ts) FILTER (WHERE type = 'purchase') AS last_purchase_ts,
  min(ts) AS first_ts,
  coalesce(sum(ws) FILTER (WHERE type = 'stream_view'), 0) / 60.0 AS watch_min,
  count(*) FILTER (WHERE type = 'product_click') AS clicks,
  count(*) FILTER (WHERE type = 'add_to_cart') AS carts,
  count(*) FILTER (WHERE type = 'comment') AS comments,
  count(*) FILTER (WHERE type = 'push_sent') AS push_sent,
  count(*) FILTER (WHERE type = 'push_open') AS push_open
FROM ev GROUP BY user_id, dn
"""

# Every user gets a row for each day from first activity until `horizon` days after the last
# (windows are all zero after that), plus one on the as-of day so the latest state is complete:
# every user with an event before the cut-off, and every other user who had signed up by then
# (or whose signup is unknown). A user who signs up after it is not in the store yet: as of
# an earlier date they were in the snapshot with a negative tenure.
USER_GRID = """
CREATE TEMP TABLE ug AS
WITH span AS (SELECT user_id, min(dn) AS f, max(dn) AS l FROM ud GROUP BY user_id)
SELECT user_id, CAST(unnest(range(f, least(l + {horizon}, {asof_dn}) + 1)) AS INTEGER) AS dn FROM span
UNION
SELECT user_id, {asof_dn} AS dn FROM span
UNION
SELECT user_id, {asof_dn} AS dn FROM users_t WHERE signup_ts IS NULL OR signup_ts < {cutoff}
"""

# Distinct streams watched in the last 7 days: each (user, stream, view day) covers 7 days.
USER_STREAMS_7D = """
CREATE TEMP TABLE us7 AS
WITH v AS (SELECT DISTINCT user_id, stream_id, dn FROM ev WHERE type = 'stream_view' AND stream_id IS NOT NULL),
x AS (SELECT user_id, stream_id, CAST(unnest(range(dn, dn + 7)) AS INTEGER) AS dn FROM v)
SELECT user_id, dn, count(DISTINCT stream_id) AS streams_7d FROM x GROUP BY user_id, dn
"""

USER_FEATURES = """
WITH g AS (
  SELECT ug.user_id, ug.dn, ud.* EXCLUDE (user_id, dn) FROM ug LEFT JOIN ud USING (user_id, dn)
), w AS (
  SELECT user_id, dn,
    sum(coalesce(purchases, 0)) OVER w90 AS frequency_90d,
    sum(coalesce(spend, 0)) OVER w90 AS monetary_90d,
    sum(coalesce(purchases, 0)) OVER wall AS purchases_total,
    max(last_active_ts) OVER wall AS last_active_ts,
    max(last_purchase_ts) OVER wall AS last_purchase_ts,
    min(first_ts) OVER wall AS first_ts,
    sum(coalesce(watch_min, 0)) OVER w7 AS watch_minutes_7d,
    sum(coalesce(watch_min, 0)) OVER w30 AS watch_minutes_30d,
    sum(coalesce(clicks, 0)) OVER w7 AS product_clicks_7d,
    sum(coalesce(carts, 0)) OVER w7 AS carts_7d,
    sum(coalesce(comments, 0)) OVER w7 AS comments_7d,
    sum(coalesce(push_sent, 0)) OVER w30 AS push_sent_30d,
    sum(coalesce(push_open, 0)) OVER w30 AS push_open_30d
  FROM g
  WINDOW w7 AS (PARTITION BY user_id ORDER BY dn RANGE BETWEEN 6 PRECEDING AND CURRENT ROW),
         w30 AS (PARTITION BY user_id ORDER BY dn RANGE BETWEEN 29 PRECEDING AND CURRENT ROW),
         w90 AS (PARTITION BY user_id ORDER BY dn RANGE BETWEEN 89 PRECEDING AND CURRENT ROW),
         wall AS (PARTITION BY user_id ORDER BY dn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), f AS (
  SELECT w.user_id, {snap} AS event_timestamp,
    CAST((epoch({snap}) - epoch(w.last_active_ts)) {days} AS DOUBLE) AS recency_days,
    CAST(w.frequency_90d AS DOUBLE) AS frequency_90d,
    CAST(w.monetary_90d AS DOUBLE) AS monetary_90d,
    CAST(w.monetary_90d / nullif(w.frequency_90d, 0) AS DOUBLE) AS avg_order_value,
    CAST((epoch({snap}) - epoch(w.last_purchase_ts)) {days} AS DOUBLE) AS days_since_last_purchase,
    CAST(w.purchases_total AS DOUBLE) AS purchases_total,
    -- from the first event when it came before the recorded signup (a data error): never negative
    CAST((epoch({snap}) - epoch(least(u.signup_ts, w.first_ts))) {days} AS DOUBLE) AS tenure_days,
    CAST(w.watch_minutes_7d AS DOUBLE) AS watch_minutes_7d,
    CAST(w.watch_minutes_30d AS DOUBLE) AS watch_minutes_30d,
    CAST(coalesce(s.streams_7d, 0) AS DOUBLE) AS streams_watched_7d,
    CAST(w.product_clicks_7d AS DOUBLE) AS product_clicks_7d,
    CAST(w.carts_7d AS DOUBLE) AS carts_7d,
    CAST(w.comments_7d AS DOUBLE) AS comments_7d,
    CAST(w.push_open_30d / nullif(w.push_sent_30d, 0) AS DOUBLE) AS push_open_rate_30d
  FROM w LEFT JOIN users_t u USING (user_id) LEFT JOIN us7 s USING (user_id, dn)
)
SELECT *, {segment_case} AS segment FROM f ORDER BY event_timestamp, user_id
"""

# Products: one row per product per day from the first event day until the 30-day windows have
# rolled past the last event (nothing but days_since_launch changes after that), and the as-of day.
# Without that bound an --as-of years after the data made a row per product per day up to it
# (54M rows and 15 GB for the demo world as of 2099). Point-in-time reads between the two take the
# last full day's row, off only in days_since_launch; no training query falls there (no events).
# No row before the product existed: its launch (or its first event, when that came earlier) must
# precede the row's timestamp and the cut-off; an unknown launch counts as always. A product
# launched later had rows with a negative days_since_launch, and a build --as-of a date before
# its launch served it.
# Conversion and cart rates are smoothed towards the catalogue-wide rate to that day.
PRODUCT_FEATURES = """
WITH pd AS (
  SELECT product_id, dn,
    count(*) FILTER (WHERE type = 'product_click') AS clicks,
    count(*) FILTER (WHERE type = 'add_to_cart') AS carts,
    count(*) FILTER (WHERE type = 'purchase') AS purchases
  FROM ev WHERE product_id IS NOT NULL GROUP BY product_id, dn
), span AS (
  SELECT coalesce(min(dn), {asof_dn}) AS f, least(coalesce(max(dn), {asof_dn}) + 30, {asof_dn}) AS l FROM ev
), days AS (
  SELECT CAST(unnest(range(f, l + 1)) AS INTEGER) AS dn FROM span
  UNION SELECT {asof_dn}
), gtot AS (
  SELECT days.dn,
    sum(coalesce(sum(pd.purchases), 0)) OVER (ORDER BY days.dn) AS cum_p,
    sum(coalesce(sum(pd.clicks), 0)) OVER (ORDER BY days.dn) AS cum_c,
    sum(coalesce(sum(pd.carts), 0)) OVER (ORDER BY days.dn) AS cum_k
  FROM days LEFT JOIN pd USING (dn) GROUP BY days.dn
), pl AS (
  SELECT p.*, CASE WHEN p.launch_ts IS NOT NULL THEN least(p.launch_ts, fe.first_ts) END AS since
  FROM products_t p LEFT JOIN (SELECT product_id, min(ts) AS first_ts FROM ev GROUP BY ALL) fe USING (product_id)
), g AS (
  SELECT p.product_id, days.dn, pd.clicks, pd.carts, pd.purchases
  FROM pl p CROSS JOIN days LEFT JOIN pd ON pd.product_id = p.product_id AND pd.dn = days.dn
  WHERE p.since IS NULL OR p.since < least(to_timestamp(CAST(days.dn + 1 AS BIGINT) * 86400), {cutoff})
), w AS (
  SELECT product_id, dn,
    sum(coalesce(purchases, 0)) OVER w7 AS popularity_7d,
    sum(coalesce(clicks, 0)) OVER w30 AS clicks_30d,
    sum(coalesce(carts, 0)) OVER w30 AS carts_30d,
    sum(coalesce(purchases, 0)) OVER w30 AS purchases_30d
  FROM g
  WINDOW w7 AS (PARTITION BY product_id ORDER BY dn RANGE BETWEEN 6 PRECEDING AND CURRENT ROW),
         w30 AS (PARTITION BY product_id ORDER BY dn RANGE BETWEEN 29 PRECEDING AND CURRENT ROW)
)
SELECT w.product_id, {snap} AS event_timestamp,
  p.price, p.margin, CAST(p.stock AS DOUBLE) AS stock, coalesce(p.category, 'unknown') AS product_category,
  p.repurchase_cycle_days,
  CAST(w.popularity_7d AS DOUBLE) AS popularity_7d,
  CAST(w.clicks_30d AS DOUBLE) AS clicks_30d,
  CAST((w.purchases_30d + {k} * coalesce(gtot.cum_p / nullif(greatest(gtot.cum_c, gtot.cum_p), 0), 0.0))
       / (greatest(w.clicks_30d, w.purchases_30d) + {k}) AS DOUBLE) AS conversion_rate,
  CAST((w.carts_30d + {k} * coalesce(gtot.cum_k / nullif(greatest(gtot.cum_c, gtot.cum_k), 0), 0.0))
       / (greatest(w.clicks_30d, w.carts_30d) + {k}) AS DOUBLE) AS cart_rate,
  CAST((epoch({snap}) - epoch(p.since)) {days} AS DOUBLE) AS days_since_launch
FROM w JOIN pl p USING (product_id) JOIN gtot USING (dn)
ORDER BY event_timestamp, product_id
"""

# Streams: hourly snapshots while live. live_viewers = distinct viewers in the last hour;
# live_conversion_rate = distinct buyers / distinct viewers since the stream started.
STREAM_FEATURES = """
WITH se AS (
  SELECT stream_id, user_id, type, CAST(floor(epoch(ts) / 3600) AS BIGINT) AS hn
  FROM ev WHERE stream_id IS NOT NULL AND type IN ('stream_view', 'purchase')
), first_seen AS (
  SELECT stream_id, user_id, type, min(hn) AS hn FROM se GROUP BY ALL
), span AS (
  SELECT s.stream_id, CAST(floor(epoch(s.start_ts) / 3600) AS BIGINT) AS f,
    least(CAST(floor(epoch(coalesce(s.end_ts, {cutoff})) / 3600) AS BIGINT),
          CAST(floor(epoch({cutoff}) / 3600) AS BIGINT) - 1) AS l,
    coalesce(s.end_ts < {cutoff}, false) AS ended
  FROM streams_t s WHERE s.start_ts < {cutoff}
), grid AS (
  -- a stream that ended gets one closing hour with no viewers, so it reads as not live afterwards
  SELECT stream_id, unnest(range(f, l + CASE WHEN ended THEN 2 ELSE 1 END)) AS hn FROM span
),
hourly AS (
  SELECT stream_id, hn, count(DISTINCT user_id) AS viewers FROM se WHERE type = 'stream_view' GROUP BY ALL
), new_ AS (
  SELECT stream_id, hn,
    count(*) FILTER (WHERE type = 'stream_view') AS new_viewers,
    count(*) FILTER (WHERE type = 'purchase') AS new_buyers
  FROM first_seen GROUP BY ALL
), w AS (
  SELECT grid.stream_id, grid.hn, coalesce(hourly.viewers, 0) AS live_viewers,
    sum(coalesce(new_.new_viewers, 0)) OVER c AS cum_viewers,
    sum(coalesce(new_.new_buyers, 0)) OVER c AS cum_buyers
  FROM grid LEFT JOIN hourly USING (stream_id, hn) LEFT JOIN new_ USING (stream_id, hn)
  WINDOW c AS (PARTITION BY grid.stream_id ORDER BY grid.hn ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT stream_id, to_timestamp(CAST(hn + 1 AS BIGINT) * 3600) AS event_timestamp,
  CAST(live_viewers AS DOUBLE) AS live_viewers,
  CAST(cum_buyers / nullif(cum_viewers, 0) AS DOUBLE) AS live_conversion_rate
FROM w ORDER BY event_timestamp, stream_id
"""

# User x category affinity: the category's share of the user's weighted interest over 30 days.
USER_CATEGORY_FEATURES = """
WITH ce AS (
  SELECT e.user_id, coalesce(p.category, s.category) AS category, e.dn,
    CASE e.type WHEN 'purchase' THEN 5.0 WHEN 'add_to_cart' THEN 3.0 WHEN 'product_click' THEN 1.0
                WHEN 'stream_view' THEN 0.5 ELSE 0.0 END AS wt
  FROM ev e LEFT JOIN products_t p ON e.product_id = p.product_id
            LEFT JOIN streams_t s ON e.product_id IS NULL AND e.stream_id = s.stream_id
  WHERE e.type IN ('purchase', 'add_to_cart', 'product_click', 'stream_view')
), d AS (
  SELECT user_id, category, dn, sum(wt) AS wt FROM ce WHERE category IS NOT NULL GROUP BY ALL
), span AS (SELECT user_id, category, min(dn) AS f, max(dn) AS l FROM d GROUP BY ALL),
grid AS (
  SELECT user_id, category, CAST(unnest(range(f, least(l + 30, {asof_dn}) + 1)) AS INTEGER) AS dn FROM span
), w AS (
  SELECT grid.user_id, grid.category, grid.dn,
    sum(coalesce(d.wt, 0)) OVER (PARTITION BY grid.user_id, grid.category ORDER BY grid.dn
                                 RANGE BETWEEN 29 PRECEDING AND CURRENT ROW) AS w30
  FROM grid LEFT JOIN d USING (user_id, category, dn)
)
SELECT user_id, category, {snap} AS event_timestamp,
  CAST(coalesce(w30 / nullif(sum(w30) OVER (PARTITION BY user_id, dn), 0), 0) AS DOUBLE) AS category_affinity_30d
FROM w ORDER BY event_timestamp, user_id, category
"""

USER_PRODUCT_FEATURES = """
SELECT user_id, product_id, ts + INTERVAL 1 MICROSECOND AS event_timestamp,
  CAST(epoch(ts) / 86400.0 AS DOUBLE) AS last_purchase_epoch_days
FROM (SELECT DISTINCT user_id, product_id, ts FROM ev WHERE type = 'purchase' AND product_id IS NOT NULL)
ORDER BY event_timestamp, user_id, product_id
"""

# Live session: running totals per (user, stream), one row per event instant in the stream.
LIVE_SESSION_FEATURES = """
WITH x AS (
  SELECT user_id, stream_id, ts,
    count(*) FILTER (WHERE type = 'product_click') AS c,
    count(*) FILTER (WHERE type = 'add_to_cart') AS k,
    sum(ws) FILTER (WHERE type = 'stream_view') AS s
  FROM ev WHERE stream_id IS NOT NULL AND type IN ('product_click', 'add_to_cart', 'stream_view')
  GROUP BY ALL
)
SELECT user_id, stream_id, ts + INTERVAL 1 MICROSECOND AS event_timestamp,
  CAST(sum(c) OVER w AS DOUBLE) AS live_clicks,
  CAST(sum(k) OVER w AS DOUBLE) AS live_carts,
  CAST(sum(coalesce(s, 0)) OVER w AS DOUBLE) AS live_watch_seconds
FROM x
WINDOW w AS (PARTITION BY user_id, stream_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY event_timestamp
"""
