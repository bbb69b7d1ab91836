"""The slot policy: business rules, diversity and one exploration slot with exact propensities.

Given ranked candidates for one request it fills slots 0..k-1 (slot 0 is shown first).
Everything except the exploration slot is deterministic given the candidates, so those items have
propensity 1; the exploration slot's item has the exact probability that this policy puts it there
(epsilon-greedy over an explicit pool), which is what off-policy evaluation (IPS/SNIPS/DR) needs.

The rules, in order:
1. eligible = in stock (unknown stock counts as in stock) and on air, and not bought recently
   unless it is a consumable whose repurchase cycle is due;
2. due consumables get their ranking key boosted (key + boost * |key|), reason ``repurchase_due``;
3. candidates are ordered by the key (expected value, p_convert or score), then score, then id;
   the expected value is p_convert x price (or margin), an unknown one counting as 1, so a shop
   without prices is ordered by p_convert;
   a shortlist comes first when one is given (``shortlisted``: the candidates the ranker scored;
   the others carry stand-in scores and only fill what the shortlist cannot);
4. pinned products keep their slots (first pinned product per slot wins);
5. the other slots except the exploration slot are filled best-first under a per-category cap;
   when the cap would leave a hole it is relaxed (a full carousel beats a diverse hole);
6. the exploration slot holds the best remaining capped candidate with probability 1 - epsilon,
   or a uniformly drawn one of those remaining candidates with probability epsilon.
The work is on numpy arrays: a request costs well under a millisecond for ~100 candidates.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from models.vocab import int64_ids

# "unranked": below the ranker's shortlist (the first stage's order only; see ``shortlisted``).
REASONS = ("ranked", "pinned", "explore", "repurchase_due", "fallback", "unranked")
SLATE_COLUMNS = ("product_id", "slot", "score", "p_convert", "expected_value", "reason", "propensity")
_FLOATS = ("score", "p_convert", "price", "margin", "stock", "pinned_slot")
# Optional boolean columns and the value an absent column (or a null) means.
_BOOLS = {
    "on_air": True, "bought_recently": False, "consumable_due": False, "is_consumable": False,
    "shortlisted": True,
}  # fmt: skip


class SlotPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=8, ge=1, le=100)
    per_category_cap: int | None = Field(default=3, ge=1, description="max items per category; None = no cap")
    epsilon: float = Field(
        default=0.1, ge=0.0, le=1.0, description="probability the exploration slot explores"
    )
    explore_slot: int | None = Field(default=None, ge=0, description="0-based slot; None = the last slot")
    rank_by: Literal["expected_value", "p_convert", "score"] = "expected_value"
    value_column: Literal["price", "margin"] = "price"
    repurchase_boost: float = Field(default=0.5, ge=0.0, description="due consumables: key + boost * |key|")
    seed: int | None = Field(default=None, description="seed of the rng used when arrange() gets none")


@dataclass(frozen=True)
class Slate:
    """One answer, ordered by slot: columns SLATE_COLUMNS as arrays, a DataFrame on demand."""

    columns: dict[str, np.ndarray]
    explore_slot: int | None = None
    explored: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # rule -> candidates it removed

    def __len__(self) -> int:
        return int(self.columns["product_id"].size)

    @property
    def product_ids(self) -> np.ndarray:
        return self.columns["product_id"]

    @cached_property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({c: self.columns[c] for c in SLATE_COLUMNS})

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts (NaN as None) for pydantic responses and impression logs."""
        cols = {c: self.columns[c].tolist() for c in SLATE_COLUMNS}
        return [
            {
                c: (None if isinstance(v, float) and math.isnan(v) else v)
                for c, v in zip(SLATE_COLUMNS, row, strict=True)
            }
            for row in zip(*cols.values(), strict=True)
        ]


@dataclass(frozen=True)
class _Plan:
    """What the policy does before any randomness; positions index the candidate arrays."""

    cols: dict[str, np.ndarray]
    fixed: dict[int, int]  # slot -> position
    explore_slot: int | None
    pool: list[int]  # positions eligible for the exploration slot, best first
    epsilon: float
    dropped: dict[str, int]

    def explore_p(self, pos: int) -> float:
        return self.epsilon / len(self.pool) + (1.0 - self.epsilon) * (pos == self.pool[0])


def _distinct(values: np.ndarray) -> list[Any]:
    """The distinct values of an object column (all of them when some cannot be hashed)."""
    items = values.tolist()
    try:
        return list(set(items))
    except TypeError:
        return items


class SlotPolicy:
    def __init__(self, config: SlotPolicyConfig | None = None) -> None:
        self.config = config or SlotPolicyConfig()

    # ----- public --------------------------------------------------------------------------
    def arrange(
        self, candidates: pd.DataFrame, k: int | None = None, rng: np.random.Generator | None = None
    ) -> Slate:
        """Fill up to ``k`` slots from ``candidates`` (see the module doc); deterministic given ``rng``.

        Columns: product_id and score are required; p_convert, price, margin (nullable), category,
        stock (nullable), on_air, pinned_slot (nullable, 0-based), bought_recently, consumable_due,
        is_consumable, shortlisted (False: ordered after every True row) and reason (a base reason
        such as "fallback") are optional.
        """
        return self._arrange(self._plan(self._frame_columns(candidates), self._k(k)), rng)

    def arrange_columns(
        self, columns: Mapping[str, Any], k: int | None = None, rng: np.random.Generator | None = None
    ) -> Slate:
        """``arrange`` on a mapping of column name -> array (the same columns, same answer).

        The serving hot path: building a DataFrame and reading its columns back cost more than the
        rules themselves (benchmarks/results/serving.md)."""
        return self._arrange(self._plan(self._array_columns(columns), self._k(k)), rng)

    def _k(self, k: int | None) -> int:
        return self.config.k if k is None else k

    def _arrange(self, plan: _Plan, rng: np.random.Generator | None) -> Slate:
        if rng is None:
            rng = np.random.default_rng(self.config.seed)
        c = plan.cols
        slots = sorted(plan.fixed)
        positions = [plan.fixed[s] for s in slots]
        reasons = [str(c["base_reason"][p]) for p in positions]
        props = [1.0] * len(slots)
        explored = False
        if plan.explore_slot is not None and plan.pool:
            explored = bool(rng.random() < plan.epsilon)
            pos = plan.pool[int(rng.integers(len(plan.pool)))] if explored else plan.pool[0]
            at = bisect.bisect_left(slots, plan.explore_slot)  # slots is a sorted list
            slots.insert(at, plan.explore_slot)
            positions.insert(at, pos)
            reasons.insert(at, "explore" if explored else str(c["base_reason"][pos]))
            props.insert(at, plan.explore_p(pos))
        idx = np.asarray(positions, dtype=np.int64)
        columns = {
            "product_id": c["product_id"][idx],
            "slot": np.asarray(slots, dtype=np.int64),
            "score": c["score"][idx],
            "p_convert": c["p_convert"][idx],
            "expected_value": c["expected_value"][idx],
            "reason": np.asarray(reasons, dtype=object),
            "propensity": np.asarray(props, dtype=np.float64),
        }
        return Slate(columns, plan.explore_slot, explored, plan.dropped)

    def slot_propensities(self, candidates: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
        """Every (product_id, slot, propensity) with positive probability under this policy.

        For off-policy evaluation: the target policy's probability of a logged (item, slot).
        """
        plan = self._plan(self._frame_columns(candidates), self._k(k))
        pid = plan.cols["product_id"]
        rows = [(int(pid[pos]), slot, 1.0) for slot, pos in plan.fixed.items()]
        if plan.explore_slot is not None:
            rows += [(int(pid[pos]), plan.explore_slot, plan.explore_p(pos)) for pos in plan.pool]
        out = pd.DataFrame(rows, columns=["product_id", "slot", "propensity"])
        out = out[out["propensity"] > 0]
        return out.sort_values(["slot", "propensity"], ascending=[True, False], kind="stable").reset_index(
            drop=True
        )

    # ----- internals -----------------------------------------------------------------------
    @staticmethod
    def _frame_columns(candidates: pd.DataFrame) -> dict[str, np.ndarray]:
        if not isinstance(candidates, pd.DataFrame):
            raise TypeError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
        return SlotPolicy._array_columns({str(c): candidates[c].to_numpy() for c in candidates.columns})

    @staticmethod
    def _array_columns(given: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The policy's working columns from the caller's: typed, defaults filled, duplicates out.
        Never writes into the caller's arrays."""
        missing = [c for c in ("product_id", "score") if c not in given]
        if missing:
            raise ValueError(f"candidates lack the required column(s) {missing}")
        cols: dict[str, np.ndarray] = {}
        try:
            cols["product_id"] = int64_ids(given["product_id"], "product ids")  # the slate echoes them
        except (TypeError, ValueError) as exc:
            raise ValueError(f"candidates column 'product_id' must hold integer ids: {exc}") from exc
        n = cols["product_id"].size
        # A scalar stands for a whole column (reason="fallback"), as it would in a DataFrame.
        given = {k: np.full(n, v, dtype=object) if np.ndim(v) == 0 else v for k, v in given.items()}
        for name in _FLOATS:
            if name not in given:
                cols[name] = np.full(n, np.nan)
                continue
            arr = np.asarray(given[name])
            try:  # the fast path first: null handling costs more than the whole policy
                cols[name] = (
                    arr
                    if arr.dtype == np.float64
                    else arr.astype(np.float64)
                    if arr.dtype.kind in "iub"
                    else pd.Series(arr).to_numpy(dtype=np.float64, na_value=np.nan)
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"candidates column {name!r} must be numeric: {exc}") from exc
        for name, default in _BOOLS.items():
            if name not in given:
                cols[name] = np.full(n, default)
                continue
            arr = np.asarray(given[name])
            if arr.dtype == np.bool_:
                cols[name] = arr
            else:
                obj = arr.astype(object)
                cols[name] = np.where(pd.isna(obj), default, obj).astype(bool)
        for name in ("category", "reason"):
            cols[name] = np.asarray(given[name]).astype(object) if name in given else np.full(n, None)
        if any(len(v) != n for v in cols.values()):
            raise ValueError("candidates columns differ in length")
        given_reasons = {r for r in _distinct(cols["reason"]) if isinstance(r, str)}
        bad = sorted(given_reasons - set(REASONS))
        if bad:
            raise ValueError(f"candidates column 'reason' holds unknown reasons {bad}; allowed {REASONS}")
        ids = np.sort(cols["product_id"])
        if n > 1 and bool((ids[1:] == ids[:-1]).any()):  # duplicates: the first row of each product wins
            _, first = np.unique(cols["product_id"], return_index=True)
            keep = np.sort(first)
            cols = {k: v[keep] for k, v in cols.items()}
        return cols

    def _plan(self, c: dict[str, np.ndarray], k: int) -> _Plan:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        cfg = self.config
        value = c[cfg.value_column]
        unknown = np.isnan(value)
        if unknown.any():  # no price (imported logs): value 1, as the push ranking counts it
            value = np.where(unknown, 1.0, value)
        c["expected_value"] = c["p_convert"] * value
        key = c[cfg.rank_by].copy()
        due = c["is_consumable"] & c["consumable_due"]
        any_due = bool(due.any())
        if any_due:
            key[due] += cfg.repurchase_boost * np.abs(key[due])
        given = c["reason"]
        # Usually one string for every row: one set of the values instead of a check per row.
        all_str = all(isinstance(r, str) for r in _distinct(given))
        if all_str and not any_due:  # the np.where below would give these values: skip its passes
            reason = given.copy()
        else:
            is_str = np.ones(len(given), bool) if all_str else [isinstance(r, str) for r in given.tolist()]
            reason = np.where(due, "repurchase_due", np.where(is_str, given, "ranked")).astype(object)
        c["base_reason"] = reason

        in_stock = np.isnan(c["stock"]) | (c["stock"] > 0)
        gone = c["bought_recently"] & ~due
        on_stage = in_stock & c["on_air"]
        keep = on_stage & ~gone
        n_in_stock, n_on_stage = int(np.count_nonzero(in_stock)), int(np.count_nonzero(on_stage))
        idx = np.flatnonzero(keep)
        dropped = {
            "out_of_stock": len(key) - n_in_stock,
            "off_air": n_in_stock - n_on_stage,
            "bought_recently": n_on_stage - len(idx),
        }
        k_key, k_score = key[idx], c["score"][idx]
        has_key = ~np.isnan(k_key)
        # best first: the shortlist before the rest, rows with a key before rows without, then key,
        # then score, then product id. A key equal for every row orders nothing: left out.
        keys = [
            c["product_id"][idx],
            -np.where(np.isnan(k_score), -np.inf, k_score),
            -np.where(has_key, k_key, 0.0),
        ]
        if not has_key.all():
            keys.append(~has_key)
        shortlisted = c["shortlisted"][idx]
        if not shortlisted.all():
            keys.append(~shortlisted)
        ordered = idx[np.lexsort(keys)]
        order = ordered.tolist()

        k_eff = min(k, len(order))
        fixed: dict[int, int] = {}
        # Only the pinned rows, visited best first (the first pinned product per slot wins).
        pins = c["pinned_slot"][ordered]
        pinned_here = ~np.isnan(pins) & (pins >= 0) & (pins < k_eff)
        for pos, ps in zip(ordered[pinned_here].tolist(), pins[pinned_here].tolist(), strict=True):
            if int(ps) not in fixed:
                fixed[int(ps)] = pos
        for pos in fixed.values():
            reason[pos] = "pinned"
        x: int | None = min(cfg.explore_slot if cfg.explore_slot is not None else k_eff - 1, k_eff - 1)
        if k_eff == 0 or x in fixed or cfg.epsilon <= 0.0:
            x = None

        cap = cfg.per_category_cap if cfg.per_category_cap is not None else math.inf
        cats = c["category"].tolist()  # list indexing: the fill loop runs per candidate
        counts: dict[Any, int] = {}
        full: set[str] = set()  # categories at the cap (only strings are capped)

        def take(pos: int) -> None:
            cat = cats[pos]
            n = counts[cat] = counts.get(cat, 0) + 1
            if n >= cap and isinstance(cat, str):
                full.add(cat)

        for pos in fixed.values():
            take(pos)
        free = [s for s in range(k_eff) if s not in fixed and s != x]
        need = len(free)
        pinned = set(fixed.values())
        rest = [p for p in order if p not in pinned] if pinned else order
        chosen: list[int] = []
        # Best first, skipping capped categories. A stream selling mostly one category walks every
        # candidate here, so the loop does one set lookup per skipped candidate and nothing else.
        if need:
            for p in rest:
                if cats[p] in full:
                    continue
                take(p)
                chosen.append(p)
                if len(chosen) == need:
                    break
        if len(chosen) < need:  # the cap would leave holes: fill them best-first
            taken = set(chosen)
            extra = [p for p in rest if p not in taken][: need - len(chosen)]
            for p in extra:
                take(p)
            taken.update(extra)
            chosen = [p for p in rest if p in taken]  # best first, as rest orders them
        fixed.update(zip(free, chosen, strict=True))
        pool: list[int] = []
        if x is not None:
            taken = set(chosen)
            remaining = [p for p in rest if p not in taken]
            pool = [p for p in remaining if cats[p] not in full] or remaining
        return _Plan(c, fixed, x, pool, cfg.epsilon, dropped)
