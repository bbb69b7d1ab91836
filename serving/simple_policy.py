"""A minimal slot policy with the contract of ``models.policy.SlotPolicy.arrange``, used only when
that module is not installed (the demo world, early tests). The real rules live in models/.

Rules: in stock and on air only; recently bought non-consumables out unless their repurchase is
due; pinned products keep their slot; at most ``category_cap`` per category; one exploration slot
drawn uniformly from the rest with probability ``epsilon`` (its propensity is logged)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SimplePolicyConfig:
    epsilon: float = 0.1
    category_cap: int = 3


class SimplePolicy:
    def __init__(self, config: SimplePolicyConfig) -> None:
        self.config = config

    def arrange(self, candidates: pd.DataFrame, k: int, rng: np.random.Generator) -> pd.DataFrame:
        df = candidates.copy()
        keep = (df["stock"].fillna(1) > 0) & df["on_air"].fillna(True).astype(bool)
        keep &= ~(df["bought_recently"].astype(bool) & ~df["consumable_due"].astype(bool))
        df = df[keep]
        price = df["price"].fillna(1.0)
        margin = df["margin"].fillna(1.0)
        df = df.assign(expected_value=df["p_convert"] * price * margin)
        df = df.sort_values(["expected_value", "score"], ascending=False, kind="stable")
        df["reason"] = df.get("reason", "ranked")

        slots: dict[int, int] = {}
        pinned = df[df["pinned_slot"].notna()]
        for pid, ps in zip(pinned["product_id"], pinned["pinned_slot"], strict=True):
            s = int(ps)
            if 0 <= s < k and s not in slots:
                slots[s] = int(pid)
        used = set(slots.values())
        per_cat: dict[str, int] = {}
        for pid in slots.values():
            c = str(df.loc[df["product_id"] == pid, "category"].iloc[0])
            per_cat[c] = per_cat.get(c, 0) + 1
        order: list[int] = []
        for pid, cat in zip(df["product_id"], df["category"].astype(str), strict=True):
            if len(order) + len(slots) >= k:
                break
            if int(pid) in used or per_cat.get(cat, 0) >= self.config.category_cap:
                continue
            per_cat[cat] = per_cat.get(cat, 0) + 1
            order.append(int(pid))
            used.add(int(pid))
        free = [s for s in range(k) if s not in slots]
        for s, pid in zip(free, order, strict=False):
            slots[s] = pid

        propensity = {pid: 1.0 for pid in slots.values()}
        reasons: dict[int, str] = {}
        rest = [int(p) for p in df["product_id"] if int(p) not in used]
        explore_slots = [s for s in free if s in slots]
        if rest and explore_slots and self.config.epsilon > 0:
            s = explore_slots[-1]  # the last free slot explores: least cost to the exploit slate
            if rng.random() < self.config.epsilon:
                pid = rest[int(rng.integers(len(rest)))]
                propensity.pop(slots[s], None)
                slots[s] = pid
                propensity[pid] = self.config.epsilon / len(rest)
                reasons[pid] = "explore"
            else:
                propensity[slots[s]] = 1.0 - self.config.epsilon
        by_id = df.set_index("product_id")
        rows = []
        for s in sorted(slots):
            pid = slots[s]
            r = by_id.loc[pid]
            reason = reasons.get(
                pid, "pinned" if pd.notna(r["pinned_slot"]) and int(r["pinned_slot"]) == s else r["reason"]
            )
            rows.append(
                (
                    pid,
                    s,
                    float(r["score"]),
                    float(r["p_convert"]),
                    float(r["expected_value"]),
                    reason,
                    propensity[pid],
                )
            )
        return pd.DataFrame(
            rows,
            columns=["product_id", "slot", "score", "p_convert", "expected_value", "reason", "propensity"],
        )
