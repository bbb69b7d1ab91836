"""The slot policy: business rules, diversity and one exploration slot with exact propensities.

Given ranked candidates for one request it fills slots 0..k-1 (slot 0 is the first shown).
Everything except the exploration slot is deterministic given the candidates, so those items have
propensity 1; the exploration slot's item has the exact probability that this policy puts it there
(epsilon-greedy over an explicit pool), which is what off-policy evaluation (IPS/SNIPS/DR) needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

REASONS = ("ranked", "pinned", "explore", "repurchase_due", "fallback")
SLATE_COLUMNS = ("product_id", "slot", "score", "p_convert", "expected_value", "reason", "propensity")

# Optional candidate columns and the value an absent column means.
_DEFAULTS: dict[str, Any] = {
    "p_convert": np.nan,
    "price": np.nan,
    "margin": np.nan,
    "category": None,
    "stock": np.nan,  # unknown stock (not tracked) counts as in stock
    "on_air": True,
    "pinned_slot": np.nan,
    "bought_recently": False,
    "consumable_due": False,
    "is_consumable": False,
    "reason": None,  # a caller-given base reason, e.g. "fallback" for popularity candidates
}


class SlotPolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(8, ge=1, le=100)
    per_category_cap: int | None = Field(3, ge=1, description="max items per category; None = no cap")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="probability the exploration slot explores")
    explore_slot: int | None = Field(None, ge=0, description="0-based slot; None = the last slot")
    rank_by: Literal["expected_value", "p_convert", "score"] = "expected_value"
    value_column: Literal["price", "margin"] = "price"
    repurchase_boost: float = Field(0.5, ge=0.0, description="due consumables: key + boost * |key|")
    seed: int | None = Field(None, description="seed of the rng used when arrange() gets none")


@dataclass(frozen=True)
class Slate:
    """One answer: a frame with SLATE_COLUMNS ordered by slot, and where exploration happened."""

    frame: pd.DataFrame
    explore_slot: int | None = None
    explored: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # rule -> candidates it removed

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def product_ids(self) -> np.ndarray:
        return self.frame["product_id"].to_numpy(dtype=np.int64)

    def to_records(self) -> list[dict[str, Any]]:
        """Plain dicts (NaN as None) for pydantic responses and impression logs."""
        recs = self.frame.astype(object).where(self.frame.notna(), None).to_dict("records")
        return [{str(k): v for k, v in r.items()} for r in recs]


@dataclass(frozen=True)
class _Plan:
    """What the policy does before any randomness: fixed slots and the exploration lottery."""

    table: pd.DataFrame  # eligible candidates, with key/base_reason/expected_value columns
    fixed: dict[int, int]  # slot -> row position in table
    explore_slot: int | None
    pool: list[int]  # row positions eligible for the exploration slot, best first
    epsilon: float
    dropped: dict[str, int]


class SlotPolicy:
    def __init__(self, config: SlotPolicyConfig | None = None) -> None:
        self.config = config or SlotPolicyConfig()

    # ----- public --------------------------------------------------------------------------
    def arrange(
        self, candidates: pd.DataFrame, k: int | None = None, rng: np.random.Generator | None = None
    ) -> Slate:
        """Fill up to ``k`` slots from ``candidates`` (see module doc); deterministic given ``rng``."""
        if rng is None:
            rng = np.random.default_rng(self.config.seed)
        plan = self._plan(candidates, self.config.k if k is None else k)
        t = plan.table
        rows: list[dict[str, Any]] = []
        for slot, pos in plan.fixed.items():
            rows.append(self._row(t, pos, slot, str(t["base_reason"].iat[pos]), 1.0))
        explored = False
        if plan.explore_slot is not None and plan.pool:
            n = len(plan.pool)
            explored = bool(rng.random() < plan.epsilon)
            pos = plan.pool[int(rng.integers(n))] if explored else plan.pool[0]
            reason = "explore" if explored else str(t["base_reason"].iat[pos])
            rows.append(self._row(t, pos, plan.explore_slot, reason, self._explore_p(plan, pos)))
        frame = pd.DataFrame(rows, columns=list(SLATE_COLUMNS))
        frame = frame.sort_values("slot", kind="stable").reset_index(drop=True)
        frame = frame.astype({"product_id": "int64", "slot": "int64", "propensity": "float64"})
        return Slate(frame, plan.explore_slot, explored, plan.dropped)

    def slot_propensities(self, candidates: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
        """Every (product_id, slot, propensity) with positive probability under this policy.

        For off-policy evaluation: the target policy's probability of a logged (item, slot).
        """
        plan = self._plan(candidates, self.config.k if k is None else k)
        pid = plan.table["product_id"].to_numpy()
        out = [(int(pid[pos]), slot, 1.0) for slot, pos in plan.fixed.items()]
        if plan.explore_slot is not None:
            out += [(int(pid[pos]), plan.explore_slot, self._explore_p(plan, pos)) for pos in plan.pool]
        frame = pd.DataFrame(out, columns=["product_id", "slot", "propensity"])
        return (
            frame[frame["propensity"] > 0]
            .sort_values(["slot", "propensity"], ascending=[True, False])
            .reset_index(drop=True)
        )

    # ----- internals -----------------------------------------------------------------------
    @staticmethod
    def _explore_p(plan: _Plan, pos: int) -> float:
        n = len(plan.pool)
        return plan.epsilon / n + (1.0 - plan.epsilon) * (1.0 if pos == plan.pool[0] else 0.0)

    @staticmethod
    def _row(t: pd.DataFrame, pos: int, slot: int, reason: str, propensity: float) -> dict[str, Any]:
        return {
            "product_id": int(t["product_id"].iat[pos]),
            "slot": int(slot),
            "score": float(t["score"].iat[pos]),
            "p_convert": float(t["p_convert"].iat[pos]),
            "expected_value": float(t["expected_value"].iat[pos]),
            "reason": reason,
            "propensity": float(propensity),
        }

    def _prepare(self, candidates: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(candidates, pd.DataFrame):
            raise TypeError(f"candidates must be a pandas DataFrame, got {type(candidates).__name__}")
        missing = [c for c in ("product_id", "score") if c not in candidates.columns]
        if missing:
            raise ValueError(f"candidates lack the required column(s) {missing}")
        t = candidates.drop_duplicates("product_id", keep="first").reset_index(drop=True).copy()
        for col, default in _DEFAULTS.items():
            if col not in t.columns:
                t[col] = default
        for col in ("score", "p_convert", "price", "margin", "stock", "pinned_slot"):
            t[col] = pd.to_numeric(t[col], errors="raise").astype("float64")
        for col in ("on_air", "bought_recently", "consumable_due", "is_consumable"):
            t[col] = t[col].fillna(col == "on_air").astype(bool)
        given = t["reason"].dropna()
        bad = sorted(set(given.astype(str)) - set(REASONS))
        if bad:
            raise ValueError(f"candidates column 'reason' holds unknown reasons {bad}; allowed {REASONS}")
        return t

    def _plan(self, candidates: pd.DataFrame, k: int) -> _Plan:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        cfg = self.config
        t = self._prepare(candidates)
        t["expected_value"] = t["p_convert"] * t[cfg.value_column]
        key = t[cfg.rank_by].to_numpy(dtype=np.float64).copy()
        due = (t["is_consumable"] & t["consumable_due"]).to_numpy()
        key[due] = key[due] + cfg.repurchase_boost * np.abs(key[due])
        t["key"] = key
        t["base_reason"] = np.where(due, "repurchase_due", t["reason"].fillna("ranked").astype(str))

        in_stock = t["stock"].isna() | (t["stock"] > 0)
        gone = t["bought_recently"] & ~(t["is_consumable"] & t["consumable_due"])
        rules = {"out_of_stock": ~in_stock, "off_air": ~t["on_air"], "bought_recently": gone}
        keep = in_stock & t["on_air"] & ~gone
        dropped = {name: int((mask & ~keep).sum()) for name, mask in rules.items()}
        t = t[keep]
        # best first: rows with a key before rows without, then key, score, product id (a total order)
        t = t.assign(_has=t["key"].notna()).sort_values(
            ["_has", "key", "score", "product_id"], ascending=[False, False, False, True], na_position="last"
        )
        t = t.drop(columns="_has").reset_index(drop=True)

        k_eff = min(k, len(t))
        fixed: dict[int, int] = {}
        for pos in range(len(t)):
            ps = t["pinned_slot"].iat[pos]
            if not math.isnan(ps) and 0 <= int(ps) < k_eff and int(ps) not in fixed:
                fixed[int(ps)] = pos
        for pos in fixed.values():
            t.loc[pos, "base_reason"] = "pinned"
        x = cfg.explore_slot if cfg.explore_slot is not None else k_eff - 1
        x = min(x, k_eff - 1) if k_eff else None
        if x is not None and (x in fixed or cfg.epsilon <= 0.0):
            x = None
        cap = cfg.per_category_cap if cfg.per_category_cap is not None else math.inf
        counts: dict[Any, int] = {}
        cats = t["category"].tolist()

        def fits(pos: int) -> bool:
            c = cats[pos]
            return c is None or (isinstance(c, float) and math.isnan(c)) or counts.get(c, 0) < cap

        def take(pos: int) -> None:  # counts also when the cap is relaxed, so the pool sees it
            counts[cats[pos]] = counts.get(cats[pos], 0) + 1

        for pos in fixed.values():
            take(pos)
        free = [s for s in range(k_eff) if s not in fixed and s != x]
        pinned = set(fixed.values())
        rest = [p for p in range(len(t)) if p not in pinned]
        chosen: list[int] = []
        for p in rest:  # greedy under the category cap
            if len(chosen) == len(free):
                break
            if fits(p):
                chosen.append(p)
                take(p)
        if len(chosen) < len(free):  # the cap would leave holes: fill them with the best remaining
            for p in rest:
                if len(chosen) == len(free):
                    break
                if p not in chosen:
                    chosen.append(p)
                    take(p)
            chosen.sort()
        fixed.update(zip(free, chosen, strict=True))
        pool: list[int] = []
        if x is not None:
            remaining = [p for p in rest if p not in set(chosen)]
            pool = [p for p in remaining if fits(p)] or remaining
        return _Plan(t, dict(sorted(fixed.items())), x, pool, cfg.epsilon, dropped)
