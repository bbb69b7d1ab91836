"""Push ranking: audiences honour consent, the frequency cap, deletions, quiet hours and max_users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from serving.catalog import US
from serving.demo import N_CATEGORIES
from serving.errors import NotFoundError
from serving.pipeline import PipelineConfig, Recommender
from serving.schemas import PushRequest


def test_audience_for_a_product_prefers_users_who_like_its_category(world) -> None:
    product = 4  # category c4
    out = world["rec"].push(PushRequest(community_id=1, product_id=product, max_users=40))
    assert out.direction == "users" and len(out.users.user_id) == 40
    liked = np.mean([u % N_CATEGORIES == product % N_CATEGORIES for u in out.users.user_id])
    assert liked >= 0.9, liked  # a random audience would give 1/6
    evs = out.users.expected_value
    assert evs == sorted(evs, reverse=True)


def test_consent_deletion_and_frequency_cap_are_honoured(world) -> None:
    cat = world["catalog"]
    members = np.unique(cat.communities[0])
    opted_out = {int(u) for u in members if not cat.users.loc[u, "consent_marketing"]}
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    capped = int(next(u for u in members if int(u) not in opted_out))
    ts = int((now - timedelta(days=1)).timestamp() * US)
    cat.apply_events([{"type": "push_sent", "user_id": capped, "ts_us": ts, "product_id": 1}] * 2)
    deleted = int(next(u for u in members if int(u) not in opted_out and int(u) != capped))
    world["deleted"].add(deleted)
    out = world["rec"].push(PushRequest(community_id=0, product_id=7, max_users=10**6), now=now)
    got = set(out.users.user_id)
    assert not got & opted_out and capped not in got and deleted not in got
    assert out.suppressed == {"no_consent": len(opted_out), "deleted": 1, "frequency_cap": 1}
    assert len(got) == len(members) - len(opted_out) - 2
    # An old push does not count against the cap.
    later = now + timedelta(days=8)
    assert (
        capped
        in world["rec"]
        .push(PushRequest(community_id=0, product_id=7, max_users=10**6), now=later)
        .users.user_id
    )


def test_quiet_hours_set_send_after(world) -> None:
    rec = Recommender(
        world["rec"].models, world["features"], world["catalog"], None, PipelineConfig(quiet_hours=(22, 8))
    )
    night = rec.push(
        PushRequest(segment="buyer", product_id=3, max_users=5), now=datetime(2026, 1, 5, 23, tzinfo=UTC)
    )
    assert night.send_after == datetime(2026, 1, 6, 8, tzinfo=UTC)
    day = rec.push(
        PushRequest(segment="buyer", product_id=3, max_users=5), now=datetime(2026, 1, 5, 12, tzinfo=UTC)
    )
    assert day.send_after is None


def test_quiet_hours_on_the_audiences_clock(world) -> None:
    """SLOTCAST_QUIET_HOURS_TZ: 22:00-08:00 in Shanghai (UTC+8) is 14:00-00:00 UTC; New York's
    night across the spring change of clocks ends at 08:00 EDT, 12:00 UTC (13:00 on the clock it
    started on). Before, the hours were read in UTC only: a Shanghai brand's 10:00 push waited."""

    def send_after(tz: str, now: datetime) -> datetime | None:
        config = PipelineConfig(quiet_hours=(22, 8), quiet_hours_tz=tz)
        rec = Recommender(world["rec"].models, world["features"], world["catalog"], None, config)
        return rec.push(PushRequest(segment="buyer", product_id=3, max_users=5), now=now).send_after

    shanghai = "Asia/Shanghai"
    assert send_after(shanghai, datetime(2026, 1, 5, 15, tzinfo=UTC)) == datetime(
        2026, 1, 6, 0, tzinfo=UTC
    )  # 23:00 there
    assert send_after(shanghai, datetime(2026, 1, 5, 23, tzinfo=UTC)) == datetime(
        2026, 1, 6, 0, tzinfo=UTC
    )  # 07:00 there
    assert send_after(shanghai, datetime(2026, 1, 6, 2, tzinfo=UTC)) is None  # 10:00 there (quiet in UTC)
    assert send_after("UTC", datetime(2026, 1, 6, 2, tzinfo=UTC)) == datetime(2026, 1, 6, 8, tzinfo=UTC)
    night = datetime(2026, 3, 8, 5, tzinfo=UTC)  # 00:00 EST; clocks go forward at 02:00
    assert send_after("America/New_York", night) == datetime(2026, 3, 8, 12, tzinfo=UTC)


def test_an_unknown_quiet_hours_zone_is_refused_by_name() -> None:
    from pydantic import ValidationError

    from serving.settings import ServingSettings

    with pytest.raises(ValidationError, match="quiet_hours_tz") as exc:
        ServingSettings(quiet_hours_tz="Mars/Olympus_Mons")
    assert "unknown time zone 'Mars/Olympus_Mons'" in str(exc.value)


def test_best_products_for_a_segment(world) -> None:
    out = world["rec"].push(PushRequest(segment="buyer", k=5))
    assert out.direction == "products" and len(out.products) == 5
    assert [p.expected_value for p in out.products] == sorted(
        (p.expected_value for p in out.products), reverse=True
    )


def test_unknown_audience_or_product_is_404(world) -> None:
    with pytest.raises(NotFoundError, match="community_id"):
        world["rec"].push(PushRequest(community_id=99, product_id=1))
    with pytest.raises(NotFoundError, match="segment"):
        world["rec"].push(PushRequest(segment="nope", k=3))
    with pytest.raises(NotFoundError) as err:
        world["rec"].push(PushRequest(community_id=1, product_id=10**9))
    assert err.value.field == "product_id"


def test_push_request_needs_exactly_one_audience() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        PushRequest(segment="buyer", community_id=1)
    with pytest.raises(ValueError, match="exactly one"):
        PushRequest(product_id=1)


def test_factor_fast_path_matches_pairwise_scores(world) -> None:
    class PairwiseOnly:  # hides the factor matrices: forces the generic ``score`` path
        def __init__(self, inner) -> None:
            self.score = inner.score

    m = world["models"]["champion"]
    slow = type(m)(**{**m.__dict__, "als": PairwiseOnly(m.als)})
    users = np.array([0, 5, 17, 10**9, 333], np.int64)  # one unknown user
    products = np.array([3, 4, 50, 10**9], np.int64)  # one unknown product
    rec = world["rec"]
    fast_p, fast_j = rec.score_audience(m, users, products)
    slow_p, slow_j = rec.score_audience(slow, users, products)
    np.testing.assert_allclose(fast_p, slow_p, rtol=1e-5)
    assert fast_j.tolist() == slow_j.tolist() and fast_p[3] == 0.0


def test_push_probabilities_follow_the_bundles_calibration(world) -> None:
    """The level of p_convert is the calibration's (fitted on the push log), the order the model's."""
    from dataclasses import replace

    from models.calibration import PlattCalibration

    champion, challenger = world["rec"].models()
    raw = world["rec"].push(PushRequest(community_id=1, product_id=4, max_users=30))
    cal = PlattCalibration(a=2.0, b=-6.0, n=1000, base_rate=0.01)
    calibrated_models = replace(champion, push_calibration=cal)
    rec = Recommender(
        lambda: (calibrated_models, None), world["features"], world["catalog"], None, PipelineConfig()
    )
    out = rec.push(PushRequest(community_id=1, product_id=4, max_users=30))
    assert out.users.user_id == raw.users.user_id  # a monotone map keeps the audience order
    raw_p = np.asarray(raw.users.p_convert)
    scores = np.log(raw_p / (1 - raw_p))  # the uncalibrated link is the plain logistic
    assert np.allclose(out.users.p_convert, cal.apply(scores), atol=1e-9)
    assert max(out.users.p_convert) < max(raw.users.p_convert)


def test_the_loaded_event_history_counts_in_microseconds(world, tables) -> None:
    """The canonical tables' timestamps are microseconds (timestamp[us], which pandas 2 keeps as
    datetime64[us]): the push_sent history loaded at start counts against the frequency cap, and the
    purchases loaded at start carry their real time (the bought-recently rule, GET /users/{id}/data)."""
    import pyarrow as pa

    from features.data_model import conform
    from serving.catalog import Catalog

    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    members = np.unique(world["catalog"].communities[0])
    capped = int(next(u for u in members if world["catalog"].users.loc[u, "consent_marketing"]))
    sent = now - timedelta(days=1)
    extra = pa.table(
        {
            "event_id": pa.array([10**12, 10**12 + 1, 10**12 + 2], pa.int64()),
            "ts": pa.array([sent, sent, sent], pa.timestamp("us", tz="UTC")),
            "user_id": pa.array([capped] * 3, pa.int64()),
            "type": ["push_sent", "push_sent", "purchase"],
            "product_id": pa.array([7, 7, 11], pa.int64()),
        }
    )
    events = pa.concat_tables([tables["events"], conform("events", extra)])
    catalog = Catalog({**tables, "events": events})
    sent_us = int(sent.timestamp() * US)
    assert catalog.last_purchase[capped][11] == sent_us
    assert catalog.recent_pushes(capped, sent_us - 1) == 2
    rec = Recommender(
        world["rec"].models, world["features"], catalog, None, PipelineConfig(quiet_hours=(0, 0))
    )
    out = rec.push(PushRequest(community_id=0, product_id=7, max_users=10**6), now=now)
    assert capped not in out.users.user_id and out.suppressed["frequency_cap"] == 1


def test_a_deleted_user_is_left_out_of_an_audience_of_any_size(world, tables) -> None:
    """Deletion holds for big audiences too: a community of more than 200,000 members used to skip
    the deletion check altogether (for speed), so a deleted member stayed in the push audience."""
    import pyarrow as pa

    from features.data_model import conform
    from serving.catalog import Catalog

    n = 200_100
    uid = np.arange(n, dtype=np.int64)
    users = pa.table(
        {"user_id": uid, "region": ["eu"] * n, "consent_personalization": np.ones(n, bool),
         "consent_marketing": np.ones(n, bool)}
    )  # fmt: skip
    members = pa.table({"community_id": np.full(n, 9, np.int64), "user_id": uid})
    catalog = Catalog(
        {**tables, "users": conform("users", users), "memberships": conform("memberships", members)}
    )
    gone = {5, 150_000}
    rec = Recommender(
        world["rec"].models, world["features"], catalog, None, PipelineConfig(quiet_hours=(0, 0)),
        is_deleted=gone.__contains__,
    )  # fmt: skip
    out = rec.push(PushRequest(community_id=9, product_id=7, max_users=10**6))
    assert not gone & set(out.users.user_id) and out.suppressed["deleted"] == 2
    assert len(out.users.user_id) == n - 2


def test_both_push_directions_write_an_impression(world) -> None:
    """Every push answer is an impression line, the products direction (segment or community alone)
    as much as the users direction."""
    from serving.impressions import read_impressions

    products = world["rec"].push(PushRequest(segment="buyer", k=3))
    users = world["rec"].push(PushRequest(community_id=1, product_id=4, max_users=5))
    world["rec"].impressions.close()
    logged = {r["request_id"]: r for r in read_impressions(world["impressions"])}
    assert users.request_id in logged
    got = logged.get(products.request_id)
    assert got is not None and got["kind"] == "push"
    assert got["items"] == [p.product_id for p in products.products]
    assert got["model_version"] == products.model_version


def test_the_best_products_of_an_audience_read_no_withdrawn_profile(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The products direction averages the members' affinities; a member who withdrew
    personalization consent is left out of that average. With every member out, nothing personal
    is left to rank by: every product's p_convert is 0 (before: the same as with their consent)."""
    from serving.consents import consent_changes

    rec = world["rec"]
    before = rec.push(PushRequest(community_id=1, k=5))
    assert max(p.p_convert for p in before.products) > 0
    changes = consent_changes(tmp_path)
    for u in rec.catalog.audience(None, 1):
        changes.add(int(u), False, None)
    rec.catalog.consent_changes = changes
    after = rec.push(PushRequest(community_id=1, k=5))
    assert [p.p_convert for p in after.products] == [0.0] * len(after.products)
    # The users direction with no consenting member: every row alike, at the model's rate for a
    # zero score (no one's profile read).
    users = rec.push(
        PushRequest(community_id=1, product_id=int(after.products[0].product_id), max_users=10_000)
    )
    assert users.users.user_id and not any(users.users.personalized)
    assert set(users.users.p_convert) == {float(rec.models()[0].push_probability(np.zeros(1))[0])}
    rec.catalog.consent_changes = None
