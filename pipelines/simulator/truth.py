"""Ground truth of a simulated world: saved next to its tables, and queried by evaluation.

``DIR/truth/world.npz`` holds the latent arrays (loaded with ``allow_pickle=False``) and
``DIR/truth/truth.json`` the scalars: the config, the user types, the response coefficients and
the logging policies' exploration rates. ``TrueWorld`` answers with the same functions the
simulator drew from (behaviour.py), so its probabilities are the ones that produced the logs.

All methods take canonical ids (not row numbers), are vectorised and broadcast; slots are 0-based.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.simulator import behaviour as bh
from pipelines.simulator.behaviour import Params
from pipelines.simulator.config import DAY_US, USER_TYPES, SimConfig
from pipelines.simulator.policies import CAROUSEL_POLICY, PUSH_POLICY

TRUTH_VERSION = 1


def save_truth(
    data_dir: str | Path, cfg: SimConfig, params: Params, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``truth/world.npz`` and ``truth/truth.json`` under ``data_dir``; return the folder."""
    out = Path(data_dir) / "truth"
    out.mkdir(parents=True, exist_ok=True)
    arrays = params.arrays()
    arrays["user_id"] = np.arange(1, len(params.user_type) + 1, dtype=np.int64)
    arrays["product_id"] = np.arange(1, len(params.product_bias) + 1, dtype=np.int64)
    arrays["stream_id"] = np.arange(1, len(params.stream_boost) + 1, dtype=np.int64)
    # Uncompressed: float factors barely compress and zlib would cost seconds at 1M users.
    np.savez(out / "world.npz", allow_pickle=False, **arrays)
    meta = {
        "version": TRUTH_VERSION,
        "config": json.loads(cfg.model_dump_json()),
        "user_types": [t.__dict__ for t in USER_TYPES],
        "coefficients": bh.COEFS,
        "never_buys_logit": bh.NEVER_LOGIT,
        "carousel": {"policy": CAROUSEL_POLICY, "epsilon": cfg.epsilon, "slots": cfg.slots},
        "push": {"policy": PUSH_POLICY, "epsilon": cfg.push_epsilon, "candidates": cfg.push_candidates},
        **(extra or {}),
    }
    (out / "truth.json").write_text(json.dumps(_finite(meta), indent=2, default=str, allow_nan=False))
    return out


def _finite(x: Any) -> Any:
    """JSON has no inf: never-churning types and never-buying offsets are written as null."""
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


class TrueWorld:
    """The true response model of a simulated world, addressed by canonical ids."""

    def __init__(
        self,
        params: Params,
        user_ids: np.ndarray,
        product_ids: np.ndarray,
        stream_ids: np.ndarray,
        meta: dict,
    ):
        self.params = params
        self.meta = meta
        self._ids = {"user": user_ids, "product": product_ids, "stream": stream_ids}
        self.epsilon: float = meta["carousel"]["epsilon"]
        self.slots: int = meta["carousel"]["slots"]
        self.push_epsilon: float = meta["push"]["epsilon"]
        self.type_names: tuple[str, ...] = tuple(t["name"] for t in meta["user_types"])
        start = datetime.fromisoformat(meta["config"]["start"])
        self.days: int = meta["config"]["days"]
        self.start_us = int(start.replace(tzinfo=start.tzinfo or UTC).timestamp() * 1_000_000)

    @classmethod
    def load(cls, data_dir: str | Path) -> TrueWorld:
        folder = Path(data_dir) / "truth"
        npz, js = folder / "world.npz", folder / "truth.json"
        for f in (npz, js):
            if not f.exists():
                raise FileNotFoundError(
                    f"{f}: no simulator truth here (only `slotcast data generate` writes one)"
                )
        meta = json.loads(js.read_text())
        if meta.get("version") != TRUTH_VERSION:
            raise ValueError(f"{js}: truth version {meta.get('version')!r}, this code reads {TRUTH_VERSION}")
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(
            Params.from_arrays(arrays), arrays["user_id"], arrays["product_id"], arrays["stream_id"], meta
        )

    # -- id handling -----------------------------------------------------------------------------
    def _index(self, kind: str, ids) -> np.ndarray:
        known = self._ids[kind]
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
        bad = known[pos] != ids
        if np.any(bad):
            raise KeyError(
                f"{int(bad.sum())} unknown {kind}_id(s) for this world, e.g. {ids[bad].ravel()[:3].tolist()}"
            )
        return pos

    def _slots(self, slots) -> np.ndarray:
        return np.asarray(slots)

    def _day(self, ts_us) -> np.ndarray | float:
        """The day (since the start) whose tastes answer: that of ``ts_us``, or the period's end."""
        if ts_us is None:
            return float(self.days)
        return (np.asarray(ts_us, dtype=np.int64) - self.start_us) // DAY_US

    # -- the response model ----------------------------------------------------------------------
    # In a world with taste drift (SimConfig.drift_share) the answers depend on when: ``ts_us``
    # (microseconds, broadcast with the ids) picks each row's tastes; without it, the tastes at the
    # end of the period answer (what a policy deployed now faces). Without drift, time changes nothing.
    def affinity(self, user_ids, product_ids, ts_us=None) -> np.ndarray:
        """True preference: taste . product factors + product popularity (the click logit less its intercept)."""
        u, i = self._index("user", user_ids), self._index("product", product_ids)
        return bh.affinity(self.params, u, i, self._day(ts_us))

    def category_choice(self, user_ids, ts_us=None) -> np.ndarray:
        """P(a session of the user watches a stream of each category) [n, C], columns in the
        config's category order (``SimConfig.category_names``)."""
        return bh.category_choice(self.params, self._index("user", user_ids), self._day(ts_us))

    def switch_day(self, user_ids) -> np.ndarray:
        """Day (since the start) each user's tastes changed (taste drift); inf if they never did."""
        u = self._index("user", user_ids)
        if not self.params.drifts:
            return np.full(u.shape, np.inf)
        return self.params.user_switch_day[u].astype(np.float64)

    def examination(self, slots) -> np.ndarray:
        """P(the viewer examines carousel slot s), slot 0 first."""
        return bh.examination(self._slots(slots))

    def click_prob(self, user_ids, product_ids, slots, ts_us=None) -> np.ndarray:
        """P(click | product shown at slot) for a user in a stream session."""
        u, i = self._index("user", user_ids), self._index("product", product_ids)
        aff = bh.affinity(self.params, u, i, self._day(ts_us))
        return bh.examination(self._slots(slots)) * bh.click_given_exam(self.params, u, i, aff)

    def purchase_prob(self, user_ids, product_ids, slots, stream_ids=None, ts_us=None) -> np.ndarray:
        """P(purchase | product shown at slot) = examination x click x cart x buy.

        The host/stream effect on carting is that of ``stream_ids`` when given, else 0 (an average
        host); a stream id of -1 means "not in a stream" (stream-less logs) and also gets 0.
        """
        u, i = self._index("user", user_ids), self._index("product", product_ids)
        boost: np.ndarray | float = 0.0
        if stream_ids is not None:
            s = np.asarray(stream_ids, dtype=np.int64)
            live = s >= 0
            boost = np.zeros(s.shape)
            boost[live] = self.params.stream_boost[self._index("stream", s[live])]
        p = self.params
        aff = bh.affinity(p, u, i, self._day(ts_us))
        return (
            bh.examination(self._slots(slots))
            * bh.click_given_exam(p, u, i, aff)
            * bh.cart_given_click(p, u, i, boost, aff)
            * bh.buy_given_cart(p, u)
        )

    def push_purchase_prob(self, user_ids, product_ids, ts_us=None) -> np.ndarray:
        """P(purchase | product pushed) for a user who has not churned: open x click x cart x buy."""
        u, i = self._index("user", user_ids), self._index("product", product_ids)
        p = self.params
        aff = bh.affinity(p, u, i, self._day(ts_us))
        return (
            p.user_push_open[u]
            * bh.push_click_given_open(p, u, i, aff)
            * bh.cart_given_click(p, u, i, 0.0, aff)
            * bh.buy_given_cart(p, u)
        )

    def slate_value(self, user_ids, slates, stream_ids=None, ts_us=None) -> np.ndarray:
        """Expected purchases from showing ``slates`` [n, k] (product ids by slot; -1 = empty slot)."""
        slates = np.asarray(slates, dtype=np.int64)
        if slates.ndim != 2:
            raise ValueError(f"slates must be a 2-d [n, k] array of product ids, got shape {slates.shape}")
        users = np.broadcast_to(np.asarray(user_ids, dtype=np.int64)[:, None], slates.shape)
        filled = slates >= 0
        slots = np.broadcast_to(np.arange(slates.shape[1])[None, :], slates.shape)
        streams = times = None
        if stream_ids is not None:
            streams = np.broadcast_to(np.asarray(stream_ids, dtype=np.int64)[:, None], slates.shape)[filled]
        if ts_us is not None:
            times = np.broadcast_to(np.asarray(ts_us, dtype=np.int64)[:, None], slates.shape)[filled]
        prob = np.zeros(slates.shape)
        prob[filled] = self.purchase_prob(users[filled], slates[filled], slots[filled], streams, times)
        return prob.sum(axis=1)

    def user_type(self, user_ids) -> np.ndarray:
        """The latent type name of each user (loyal_high_value, potential, at_risk, sleeping, viewer_only, new)."""
        return np.asarray(self.type_names, dtype=object)[self.params.user_type[self._index("user", user_ids)]]

    def churn_day(self, user_ids) -> np.ndarray:
        """Day (relative to the first simulated day) each user leaves for good; inf if never."""
        return self.params.user_churn_day[self._index("user", user_ids)].astype(np.float64)

    def carousel_propensity(self, deterministic_hit, n_on_air) -> np.ndarray:
        """The logging policy's propensity formula: (1 - eps) * hit + eps / n_on_air."""
        return (1.0 - self.epsilon) * np.asarray(deterministic_hit, dtype=float) + self.epsilon / np.asarray(
            n_on_air
        )
