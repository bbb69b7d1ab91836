"""The carousel pipeline on the demo world, whose right answer is known (user u likes category u % 6)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from serving.demo import N_CATEGORIES
from serving.errors import NotFoundError
from serving.impressions import read_impressions
from serving.pipeline import PipelineConfig, Recommender, variant_hash
from serving.schemas import CarouselRequest
from serving.sources import Models


def _cats(world, slots) -> list[str]:
    products = world["catalog"].products
    return [products.loc[s.product_id, "category"] for s in slots]


def test_personalized_carousel_leads_with_the_users_category(world) -> None:
    rec = world["rec"]
    hits = total = 0
    for user in range(0, 60, 7):
        if user % 7 == 3:  # opted out of personalization
            continue
        out = rec.carousel(CarouselRequest(user_id=user, stream_id=0, k=8))
        assert out.personalized and out.fallback is None and not out.degraded
        ranked = [s for s in out.slots if s.reason == "ranked"]
        cats = _cats(world, ranked)
        hits += sum(c == f"c{user % N_CATEGORIES}" for c in cats)
        total += len(cats)
    # The per-category cap is 3, so at most 3 of the ranked slots can be the liked category.
    assert total > 0 and hits / total >= 0.35, f"only {hits}/{total} ranked slots in the liked category"


def test_slots_obey_the_rules(world) -> None:
    out = world["rec"].carousel(CarouselRequest(user_id=8, stream_id=1, k=10))
    slots = [s.slot for s in out.slots]
    assert slots == sorted(slots) and len(set(slots)) == len(slots) and len(slots) == 10
    products = world["catalog"].products
    assert all(products.loc[s.product_id, "stock"] > 0 for s in out.slots)
    on_air = set(world["catalog"].on_air[1].product_ids.tolist())
    assert {s.product_id for s in out.slots} <= on_air
    assert max(Counter(_cats(world, out.slots)).values()) <= 3
    pinned = world["catalog"].on_air[1]
    first_pinned = int(pinned.product_ids[~np.isnan(pinned.pinned_slot)][0])
    if products.loc[first_pinned, "stock"] > 0:
        assert out.slots[0].product_id == first_pinned and out.slots[0].reason == "pinned"


def test_a_product_shown_in_several_segments_is_a_candidate_while_one_is_on_air(world) -> None:
    """Streams list a product once per segment it is shown in. The carousel's candidates are the
    rows on air now, one per product: an earlier, finished segment must neither hide the product
    nor take a place on the ranker's shortlist."""
    from dataclasses import replace

    from serving.candidates import on_air_rows

    cat = world["catalog"]
    sp = cat.on_air[1]
    at = datetime.fromtimestamp(int(sp.on_air_from.max()) / 1e6 + 60, UTC)
    req = CarouselRequest(user_id=8, stream_id=1, k=10, at=at)
    before = world["rec"].carousel(req)
    assert len(before.slots) == 10
    # every product also in an earlier segment of the same stream, listed first, over before now
    n, hour = len(sp.product_ids), 3_600_000_000
    twice = replace(
        sp,
        product_ids=np.r_[sp.product_ids, sp.product_ids],
        pinned_slot=np.r_[np.full(n, np.nan), sp.pinned_slot],
        on_air_from=np.r_[sp.on_air_from - 3 * hour, sp.on_air_from],
        on_air_to=np.r_[sp.on_air_from - 2 * hour, sp.on_air_to],
        attributes={k: np.r_[v, v] for k, v in sp.attributes.items()} if sp.attributes else None,
    )
    cat.on_air[1] = twice
    after = world["rec"].carousel(req)
    key = [(s.product_id, s.slot, s.reason, round(s.p_convert, 9)) for s in before.slots]
    assert [(s.product_id, s.slot, s.reason, round(s.p_convert, 9)) for s in after.slots] == key
    # the rule itself: on-air rows only, the first of a product's
    ids = np.array([5, 6, 5, 7, 6])
    assert on_air_rows(ids, np.array([False, True, True, True, True])).tolist() == [1, 2, 3]
    assert on_air_rows(ids[:4], np.array([True, True, False, True])).tolist() == [0, 1, 3]
    assert on_air_rows(np.array([1, 2]), np.array([True, True])) is None  # every row: no copy
    assert on_air_rows(ids, np.zeros(5, bool)).tolist() == []


def test_exclude_and_k_are_honoured(world) -> None:
    first = world["rec"].carousel(CarouselRequest(user_id=2, stream_id=0, k=5))
    ex = [s.product_id for s in first.slots]
    second = world["rec"].carousel(CarouselRequest(user_id=2, stream_id=0, k=5, exclude=ex))
    assert len(second.slots) == 5 and not set(ex) & {s.product_id for s in second.slots}


def test_unknown_user_gets_a_cold_start_answer(world) -> None:
    out = world["rec"].carousel(CarouselRequest(user_id=10**9, stream_id=0, k=6))
    assert not out.personalized and out.fallback == "cold_start" and len(out.slots) == 6
    assert "cold_start" in world["fallbacks"]


def test_opted_out_and_deleted_users_get_no_personal_answer(world) -> None:
    out = world["rec"].carousel(CarouselRequest(user_id=3, stream_id=0, k=6))
    assert (out.personalized, out.fallback) == (False, "no_consent")
    world["deleted"].add(8)
    out = world["rec"].carousel(CarouselRequest(user_id=8, stream_id=0, k=6))
    assert (out.personalized, out.fallback) == (False, "deleted")
    assert all(s.reason in ("fallback", "pinned", "explore") for s in out.slots)


def test_an_opted_out_or_deleted_user_gets_what_an_anonymous_viewer_gets(world) -> None:
    """Nothing of the user's own is used: not their segment's popularity (derived from their
    history), not the bought-recently rule (their purchases). Their slots are those of a user the
    service has never seen, in the same stream at the same moment (exploration is off here)."""
    rec, catalog = world["rec"], world["catalog"]
    at = datetime.now(UTC)
    stream = 0
    on_air = set(catalog.stream_products(stream).product_ids.tolist())
    opted_out = [u for u in range(600) if catalog.knows_user(u) and not catalog.consent(u)[0]]
    # Users whose own data would change the answer: a segment of their own, a recent purchase on air.
    segments = {catalog.segment(u) for u in opted_out}
    bought = [u for u in opted_out if on_air & set(catalog.last_purchase.get(u, {}))]
    assert len(segments) > 1 and bought, "the test world must hold such users"

    def slots(user: int) -> list[tuple[int, int]]:
        out = rec.carousel(CarouselRequest(user_id=user, stream_id=stream, k=8, at=at))
        assert not out.personalized
        return [(s.product_id, s.slot) for s in out.slots]

    class BySegment:  # popularity that differs per segment, as a real segment model's does
        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner = inner

        def top(self, n, segment=None, candidates=None, exclude=None):  # type: ignore[no-untyped-def]
            ids, scores = self.inner.top(n, candidates=candidates, exclude=exclude)
            return (ids, scores) if segment is None else (ids, -np.asarray(scores))

    champion = world["models"]["champion"]
    world["models"]["champion"] = Models(
        **{**champion.__dict__, "popularity": BySegment(champion.popularity)}
    )
    anonymous = slots(10**9)
    for user in opted_out[:20] + bought[:5]:
        assert slots(user) == anonymous, user
    world["deleted"].add(bought[0])
    catalog_consent = catalog.consent
    catalog.consent = lambda u: (True, catalog_consent(u)[1])  # consent given, but deleted
    try:
        assert slots(bought[0]) == anonymous
    finally:
        catalog.consent = catalog_consent


def test_unknown_stream_is_404(world) -> None:
    with pytest.raises(NotFoundError) as err:
        world["rec"].carousel(CarouselRequest(user_id=1, stream_id=999))
    assert err.value.http_status == 404 and err.value.field == "stream_id"


def test_streamless_shop_uses_the_given_candidates_or_the_model(world) -> None:
    cands = list(range(30, 50))
    out = world["rec"].carousel(CarouselRequest(user_id=4, candidates=cands, k=4))
    assert {s.product_id for s in out.slots} <= set(cands)
    out = world["rec"].carousel(CarouselRequest(user_id=4, k=4))
    assert len(out.slots) == 4


def test_online_store_outage_degrades_instead_of_failing(world) -> None:
    world["features"].fail = True
    out = world["rec"].carousel(CarouselRequest(user_id=1, stream_id=0, k=5))
    assert out.degraded and len(out.slots) == 5
    assert "online_store" in world["fallbacks"]


def test_every_answer_is_in_the_impression_log(world) -> None:
    ids = [world["rec"].carousel(CarouselRequest(user_id=u, stream_id=0, k=4)).request_id for u in range(5)]
    world["rec"].impressions.close()
    logged = {r["request_id"]: r for r in read_impressions(world["impressions"])}
    assert set(ids) <= set(logged)
    rec = logged[ids[0]]
    assert len(rec["items"]) == len(rec["slots"]) == len(rec["propensities"]) == 4
    assert rec["variant"] == "champion" and rec["model_version"]


def test_variants_are_deterministic_and_split_as_configured(world) -> None:
    assert variant_hash(42, "s") == variant_hash(42, "s") != variant_hash(42, "t")
    challenger = world["source"].load("challenger")
    models = {"c": world["models"]["champion"], "x": challenger}
    rec = Recommender(lambda: (models["c"], models["x"]), world["features"], world["catalog"], None,
                      PipelineConfig(challenger_share=0.3))  # fmt: skip
    share = np.mean([rec.variant(u, True) == "challenger" for u in range(4000)])
    assert 0.27 < share < 0.33
    out = rec.carousel(
        CarouselRequest(
            user_id=next(u for u in range(100) if rec.variant(u, True) == "challenger"), stream_id=0
        )
    )
    assert out.variant == "challenger" and out.model_version == challenger.version


def test_exploration_logs_its_propensity(tables, world) -> None:
    from serving.adapters import make_policy
    from serving.settings import ServingSettings
    from serving.sources import Models

    policy = make_policy(ServingSettings(epsilon=1.0))
    m = Models(**{**world["models"]["champion"].__dict__, "policy": policy})
    rec = Recommender(
        lambda: (m, None), world["features"], world["catalog"], world["rec"].impressions, PipelineConfig()
    )
    out = rec.carousel(CarouselRequest(user_id=1, stream_id=0, k=6), now=datetime.now(UTC))
    assert [s.reason for s in out.slots].count("explore") == 1
    rec.impressions.close()
    logged = {r["request_id"]: r for r in read_impressions(world["impressions"])}[out.request_id]
    explore_p = logged["propensities"][[s.reason for s in out.slots].index("explore")]
    assert 0 < explore_p < 1


def test_feature_matrix_matches_rows_by_product_id() -> None:
    import pandas as pd

    ctx = Recommender._context(
        np.array([0.1, 0.3, np.nan]), None, np.array([True, False, True]), np.array([np.nan, 0, np.nan])
    )
    assert ctx["als_rank"].tolist() == [2, 1, 3] and ctx["on_air"].tolist() == [1, 0, 1]
    feats = pd.DataFrame({"product_id": [30, 10, 99], "price": [3.0, 1.0, 9.0], "cat": ["x", "y", "z"]})
    names = ["als_score", "price", "missing", "slot"]
    X = Recommender._feature_matrix(feats, np.array([10, 20, 30]), ctx, names)
    assert list(X.columns) == names
    np.testing.assert_array_equal(X["price"].to_numpy(), [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(X["als_score"].to_numpy(), [0.1, 0.3, np.nan])
    np.testing.assert_array_equal(X["slot"].to_numpy(), [np.nan, 0, np.nan])
    assert X["missing"].isna().all()
    by_index = feats.set_index("product_id")  # features.retrieval answers indexed by product_id
    got = Recommender._feature_matrix(by_index, np.array([10, 20, 30]), ctx, ["price"])["price"]
    np.testing.assert_array_equal(got.to_numpy(), [1.0, np.nan, 3.0])
    # Indexed and in the order asked (FastOnlineReader's answer): read in place, same values;
    # an index whose ids differ is matched, never read positionally.
    numeric = pd.DataFrame(
        {"price": [1.0, 2.0, 3.0], "stock": [5.0, 0.0, 7.0]}, index=pd.Index([10, 20, 30], name="product_id")
    )
    X = Recommender._feature_array(numeric, np.array([10, 20, 30]), ctx, ["stock", "price"])
    np.testing.assert_array_equal(X, [[5.0, 1.0], [0.0, 2.0], [7.0, 3.0]])
    X = Recommender._feature_array(numeric, np.array([30, 40, 10]), ctx, ["stock", "price"])
    np.testing.assert_array_equal(X, [[7.0, 3.0], [np.nan, np.nan], [5.0, 1.0]])
    # Without a personal answer there is no ALS score, and the rank keeps the given order.
    cold = Recommender._context(
        np.array([0.5, 0.9]), "cold_start", np.array([True, True]), np.full(2, np.nan)
    )
    assert np.isnan(cold["als_score"]).all() and cold["als_rank"].tolist() == [1, 2]


def test_matrix_array_is_feature_array_from_the_stores_matrix() -> None:
    """The hot path's input (the store's float matrix in the order asked) gives the very matrix
    the DataFrame path gives: columns by name, context over the store, NaN where neither has it."""
    import pandas as pd

    from serving.ranker_input import matrix_array

    rng = np.random.default_rng(2)
    ids = np.array([7, 3, 9, 1])
    columns = ("price", "stock", "als_score", "ctr")  # the store never has als_score: context wins
    values = rng.random((4, 4))
    values[1, 3] = np.nan
    frame = pd.DataFrame(values, columns=list(columns), index=pd.Index(ids, name="product_id"))
    ctx = Recommender._context(rng.random(4), None, np.ones(4, bool), np.full(4, np.nan))
    for names in (["ctr", "price", "als_score", "unknown", "als_rank"], ["stock"], []):
        want = Recommender._feature_array(frame, ids, ctx, names)
        got = matrix_array((values, columns), ids, ctx, names)
        assert got.shape == want.shape and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


def test_a_source_answering_a_matrix_gets_the_carousel_a_frame_gets(world) -> None:
    """The pipeline reads the store's float matrix when the source offers ``online_matrix``
    (FeastFeatureSource does): same carousels as from the DataFrame, and a matrix with the wrong
    number of rows is a bug that shows (an error), not an outage answered as degraded."""
    features = world["features"]

    class MatrixSource:
        rows_off = 0

        def online(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return features.online(*args, **kwargs)

        def online_matrix(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            frame = features.online(*args, **kwargs).drop(columns="product_id")
            values = frame.to_numpy(dtype=float)
            return values[: len(values) - self.rows_off], tuple(frame.columns)

    rec = world["rec"]
    reqs = [CarouselRequest(user_id=u, stream_id=u % 3, k=8) for u in range(0, 40, 3)]
    want = [rec.carousel(r) for r in reqs]
    rec.features = source = MatrixSource()
    for r, w in zip(reqs, want, strict=True):
        got = rec.carousel(r)
        assert [(s.product_id, s.slot, s.reason, s.p_convert) for s in got.slots] == [
            (s.product_id, s.slot, s.reason, s.p_convert) for s in w.slots
        ]
    assert any(w.personalized for w in want)
    source.rows_off = 1
    with pytest.raises(ValueError, match="rows for"):
        rec.carousel(reqs[0])


def test_feature_matrix_matches_ids_beyond_float_precision() -> None:
    """Rows are checked for order on the float matrix only where every id is exact as a float:
    2**53 and 2**53 + 1 are one float, so the answer below is out of order and must be matched."""
    import pandas as pd

    big = np.array([2**53, 2**53 + 1], np.int64)
    feats = pd.DataFrame({"product_id": big[::-1], "price": [2.0, 1.0]})
    ctx = Recommender._context(np.array([0.2, 0.1]), None, np.ones(2, bool), np.full(2, np.nan))
    X = Recommender._feature_array(feats, big, ctx, ["price", "als_rank"])
    np.testing.assert_array_equal(X, [[1.0, 1.0], [2.0, 2.0]])
    shortlist = Recommender._context(
        np.array([0.1, 0.9, 0.5]), None, np.ones(3, bool), np.full(3, np.nan), rows=np.array([1, 2])
    )
    assert shortlist["als_rank"].tolist() == [1, 2] and shortlist["als_score"].tolist() == [0.9, 0.5]


def test_at_decides_what_is_on_air(world) -> None:
    from datetime import timedelta

    sp = world["catalog"].on_air[2]
    sp.on_air_to[:] = sp.on_air_from + 3_600_000_000  # every product on air for one hour only
    start = datetime.fromtimestamp(int(sp.on_air_from.min()) / 1e6, UTC)
    during = world["rec"].carousel(
        CarouselRequest(user_id=1, stream_id=2, k=5, at=start + timedelta(minutes=30))
    )
    after = world["rec"].carousel(CarouselRequest(user_id=1, stream_id=2, k=5, at=start + timedelta(hours=2)))
    assert len(during.slots) == 5 and after.slots == []
    with pytest.raises(ValueError, match="timezone"):
        CarouselRequest(user_id=1, at=datetime(2025, 1, 1))


def test_the_pipelines_no_one_is_the_feature_stores() -> None:
    """The pipeline asks the store for NO_USER when nothing personal may be used; the store's fast
    path reads no user-keyed row for exactly that id, so the two must stay one value."""
    from features.retrieval import NO_USER as STORE_NO_USER
    from serving.pipeline import NO_USER

    assert NO_USER == STORE_NO_USER


def test_the_requests_time_reaches_the_feature_lookup(world) -> None:
    """The request-time features are computed at the carousel's time: ``at`` when the request
    gives one (as on-air and recently-bought are), else now."""
    features, seen = world["features"], []

    class Recording:
        def online(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(kwargs.get("at"))
            return features.online(*args, **kwargs)

        def ping(self) -> bool:
            return True

    rec, catalog = world["rec"], world["catalog"]
    rec.features = Recording()
    user = next(u for u in range(600) if catalog.knows_user(u) and catalog.consent(u)[0])
    at = datetime(2025, 1, 5, 12, tzinfo=UTC)
    asked = {"user_id": user, "k": 4, "candidates": list(range(30))}
    assert rec.carousel(CarouselRequest(**asked, at=at)).personalized
    assert seen == [at]
    before = datetime.now(UTC)
    rec.carousel(CarouselRequest(**asked))
    assert len(seen) == 2 and seen[1] is not None and before <= seen[1] <= datetime.now(UTC)
