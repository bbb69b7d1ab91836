from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import SLATE_COLUMNS, SlotPolicy, SlotPolicyConfig


def frame(n: int = 12, seed: int = 0, **cols: object) -> pd.DataFrame:
    """n candidates with distinct expected values (product i has EV rank i: 0 is best)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "product_id": 100 + np.arange(n),
            "score": rng.normal(size=n),
            "p_convert": np.linspace(0.5, 0.05, n),
            "price": 10.0,
            "margin": 2.0,
            "category": [f"c{i % 4}" for i in range(n)],
            "stock": 5,
            "on_air": True,
            "pinned_slot": np.nan,
            "bought_recently": False,
            "consumable_due": False,
            "is_consumable": False,
        }
    )
    for k, v in cols.items():
        df[k] = v
    return df


def policy(**cfg: object) -> SlotPolicy:
    base = {"k": 5, "per_category_cap": None, "epsilon": 0.0}
    return SlotPolicy(SlotPolicyConfig(**{**base, **cfg}))  # type: ignore[arg-type]


def test_ranked_by_expected_value_with_exact_columns() -> None:
    s = policy().arrange(frame(), rng=np.random.default_rng(0))
    assert list(s.frame.columns) == list(SLATE_COLUMNS)
    assert s.product_ids.tolist() == [100, 101, 102, 103, 104]
    assert s.frame["slot"].tolist() == [0, 1, 2, 3, 4]
    assert (s.frame["reason"] == "ranked").all() and (s.frame["propensity"] == 1.0).all()
    np.testing.assert_allclose(s.frame["expected_value"], s.frame["p_convert"] * 10.0)
    by_margin = policy(value_column="margin").arrange(frame(), rng=np.random.default_rng(0))
    np.testing.assert_allclose(by_margin.frame["expected_value"], by_margin.frame["p_convert"] * 2.0)


def test_an_unknown_value_counts_as_one() -> None:
    """Imported logs (MovieLens, Taobao, RetailRocket) carry no prices. Such a product was given
    no ranking key, so a shop without prices got the first stage's order (score) and never the
    ranker's p_convert. An unknown price or margin counts as 1, as in the push ranking: the
    expected value is the p_convert, and the carousel follows it."""
    score = np.linspace(-1.0, 1.0, 12)  # the first stage's order is the reverse of p_convert's
    for column in ("price", "margin"):
        df = frame(score=score, **{column: np.nan})
        s = policy(value_column=column).arrange(df, rng=np.random.default_rng(0))
        assert s.product_ids.tolist() == [100, 101, 102, 103, 104], column
        np.testing.assert_allclose(s.frame["expected_value"], s.frame["p_convert"])
    # A priced product keeps its value: an unpriced one with the same p_convert comes after it.
    mixed = frame(price=[np.nan, 10.0] * 6, p_convert=np.repeat(np.linspace(0.5, 0.05, 6), 2))
    s = policy(k=12).arrange(mixed, rng=np.random.default_rng(0))
    assert s.product_ids.tolist()[:5] == [101, 103, 105, 107, 109]
    priced = s.frame["product_id"].to_numpy() % 2 == 1
    ev, p = s.frame["expected_value"].to_numpy(), s.frame["p_convert"].to_numpy()
    np.testing.assert_allclose(ev, np.where(priced, 10.0 * p, p))


def test_out_of_stock_and_off_air_are_never_shown() -> None:
    df = frame(stock=[0, 5, np.nan, 0, 5, 5, 5, 5, 5, 5, 5, 5], on_air=[True] * 4 + [False] + [True] * 7)
    s = policy(epsilon=1.0).arrange(df, rng=np.random.default_rng(0))
    assert not {100, 103, 104} & set(s.product_ids.tolist())
    assert 102 in s.product_ids  # unknown stock is not tracked, so it counts as in stock
    assert s.dropped == {"out_of_stock": 2, "off_air": 1, "bought_recently": 0}


def test_dropped_counts_each_rule_once() -> None:
    """Out of stock wins over off air, which wins over bought recently; a product listed twice
    keeps its first row (the later duplicate's stock does not count)."""
    df = frame(
        stock=[0, 0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5],
        on_air=[False, True, False, True, True, True, True, True, True, True, True, True],
        bought_recently=[True, False, True, True, True, False, False, False, False, False, False, False],
    )
    twice = pd.concat([df, df.iloc[[5]].assign(stock=0)], ignore_index=True)
    for candidates in (df, twice):
        s = policy().arrange(candidates, rng=np.random.default_rng(0))
        assert s.dropped == {"out_of_stock": 2, "off_air": 1, "bought_recently": 2}
        assert s.product_ids.tolist() == [105, 106, 107, 108, 109]


def test_pinned_products_keep_their_slots() -> None:
    pins = [np.nan] * 12
    pins[11], pins[9], pins[8] = 2, 0, 40  # the worst product pinned to slot 2; slot 40 is beyond k
    s = policy().arrange(frame(pinned_slot=pins), rng=np.random.default_rng(0))
    got = dict(zip(s.frame["slot"], s.product_ids, strict=True))
    assert got[2] == 111 and got[0] == 109
    assert s.frame.loc[s.frame["slot"] == 2, "reason"].item() == "pinned"
    assert [got[i] for i in (1, 3, 4)] == [100, 101, 102]


def test_pinned_out_of_stock_is_still_out() -> None:
    s = policy().arrange(
        frame(pinned_slot=[np.nan] * 11 + [0], stock=[5] * 11 + [0]), rng=np.random.default_rng(0)
    )
    assert 111 not in s.product_ids


def test_category_cap_for_diversity() -> None:
    df = frame(category=["a"] * 8 + ["b", "b", "c", "d"])
    s = policy(per_category_cap=2).arrange(df, rng=np.random.default_rng(0))
    cats = df.set_index("product_id").loc[s.product_ids, "category"]
    assert Counter(cats).most_common(1)[0][1] <= 2
    assert s.product_ids.tolist() == [100, 101, 108, 109, 110]


def test_category_cap_is_relaxed_rather_than_leaving_holes() -> None:
    df = frame(n=6, category=["a"] * 5 + ["b"])
    s = policy(per_category_cap=1).arrange(df, rng=np.random.default_rng(0))
    assert len(s) == 5 and s.frame["slot"].tolist() == [0, 1, 2, 3, 4]


def test_recent_purchases_and_due_consumables() -> None:
    bought = [True, True, True] + [False] * 9
    consumable = [False, True, True] + [False] * 9
    due = [False, False, True] + [False] * 9
    s = policy().arrange(
        frame(bought_recently=bought, is_consumable=consumable, consumable_due=due),
        rng=np.random.default_rng(0),
    )
    ids = s.product_ids.tolist()
    assert 100 not in ids  # bought, not consumable
    assert 101 not in ids  # bought consumable, not due yet
    assert ids[0] == 102  # due consumable is back, boosted above the best unbought one
    assert s.frame["reason"].iat[0] == "repurchase_due"


def test_fewer_candidates_than_slots() -> None:
    s = policy(epsilon=0.5).arrange(frame(n=3), k=8, rng=np.random.default_rng(0))
    assert s.frame["slot"].tolist() == [0, 1, 2]
    assert len(policy().arrange(frame(n=3, on_air=False), rng=np.random.default_rng(0))) == 0


def test_deterministic_given_rng() -> None:
    p = policy(epsilon=0.7, per_category_cap=2)
    a = [p.arrange(frame(), rng=np.random.default_rng(s)).product_ids.tolist() for s in range(20)]
    b = [p.arrange(frame(), rng=np.random.default_rng(s)).product_ids.tolist() for s in range(20)]
    assert a == b and len({tuple(x) for x in a}) > 1


@pytest.mark.slow
def test_exploration_propensities_are_exact() -> None:
    """Monte Carlo: the empirical frequency of every (item, slot) equals its logged propensity."""
    p = policy(epsilon=0.3, per_category_cap=2, explore_slot=1)
    pins = [np.nan] * 12
    pins[7] = 3
    df = frame(pinned_slot=pins)
    rng = np.random.default_rng(12345)
    n = 4000
    counts: Counter[tuple[int, int]] = Counter()
    logged: dict[tuple[int, int], set[float]] = {}
    explored = 0
    for _ in range(n):
        s = p.arrange(df, rng=rng)
        explored += s.explored
        for pid, slot, prop in zip(s.product_ids, s.columns["slot"], s.columns["propensity"], strict=True):
            counts[(int(pid), int(slot))] += 1
            logged.setdefault((int(pid), int(slot)), set()).add(float(prop))
    assert all(len(v) == 1 for v in logged.values()), "the same (item, slot) logged two propensities"
    for key, c in counts.items():
        prop = next(iter(logged[key]))
        sd = np.sqrt(prop * (1 - prop) / n)
        assert abs(c / n - prop) <= 4 * sd + 1e-12, f"{key}: frequency {c / n:.4f} vs logged {prop:.4f}"
    explore = {k: next(iter(v)) for k, v in logged.items() if k[1] == 1}
    assert len(explore) > 2 and sum(explore.values()) == pytest.approx(1.0)
    assert abs(explored / n - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    # the offline view agrees with what arrange logs
    table = p.slot_propensities(df)
    assert {(int(a), int(b)): c for a, b, c in table.itertuples(index=False)} == pytest.approx(
        {k: next(iter(v)) for k, v in logged.items()}
    )


def test_bad_candidates_are_named() -> None:
    with pytest.raises(ValueError, match="score"):
        policy().arrange(frame().drop(columns="score"))
    with pytest.raises(ValueError, match="unknown reasons"):
        policy().arrange(frame(reason="because"))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 25),
    st.integers(1, 8),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.integers(1, 3)),
    st.integers(0, 2**31 - 1),
)
def test_slate_invariants(n: int, k: int, eps: float, cap: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    df = frame(
        n=n,
        seed=seed,
        stock=rng.integers(0, 3, n),
        on_air=rng.random(n) < 0.8,
        pinned_slot=np.where(rng.random(n) < 0.2, rng.integers(0, 10, n), np.nan),
        category=rng.choice(list("abc"), n),
        bought_recently=rng.random(n) < 0.2,
        is_consumable=rng.random(n) < 0.5,
        consumable_due=rng.random(n) < 0.5,
    )
    s = SlotPolicy(SlotPolicyConfig(k=k, epsilon=eps, per_category_cap=cap)).arrange(df, rng=rng)
    shown = df.set_index("product_id").loc[s.product_ids]
    eligible = (
        (df["stock"] > 0)
        & df["on_air"]
        & ~(df["bought_recently"] & ~(df["is_consumable"] & df["consumable_due"]))
    )
    assert s.frame["slot"].tolist() == list(range(len(s)))
    assert len(s) == min(k, int(eligible.sum()))
    assert s.product_ids.size == np.unique(s.product_ids).size
    assert (shown["stock"] > 0).all() and shown["on_air"].all()
    assert ((s.frame["propensity"] > 0) & (s.frame["propensity"] <= 1)).all()
    for pid, slot in zip(s.product_ids, s.frame["slot"], strict=True):
        pin = df.set_index("product_id").at[pid, "pinned_slot"]
        if s.frame.set_index("product_id").at[pid, "reason"] == "pinned":
            assert pin == slot


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_arrange_columns_gives_the_frames_answer(n: int, k: int, eps: float, seed: int) -> None:
    """The serving hot path hands plain arrays; the answer must be the DataFrame path's, exactly."""
    rng = np.random.default_rng(seed)
    df = frame(
        n=n,
        seed=seed,
        product_id=rng.integers(0, n, n),  # duplicates: the first row of each product wins
        stock=np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n)),
        pinned_slot=np.where(rng.random(n) < 0.2, rng.integers(0, 10, n), np.nan),
        category=rng.choice(["a", "b", None], n),
        bought_recently=rng.random(n) < 0.2,
        consumable_due=rng.random(n) < 0.5,
        is_consumable=rng.random(n) < 0.5,
        reason=rng.choice(["ranked", "fallback"], n),
    )
    p = SlotPolicy(SlotPolicyConfig(k=k, epsilon=eps, per_category_cap=2))
    want = p.arrange(df, rng=np.random.default_rng(seed))
    cols = {c: df[c].to_numpy() for c in df.columns}
    got = p.arrange_columns(cols, rng=np.random.default_rng(seed))
    pd.testing.assert_frame_equal(got.frame, want.frame)
    assert (got.dropped, got.explored) == (want.dropped, want.explored)
    assert cols["product_id"].tolist() == df["product_id"].tolist()  # the caller's arrays are untouched
