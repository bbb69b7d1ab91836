"""One offline evaluation over a data directory: replay on held-out time, off-policy estimates on the
logged carousels and pushes of the same held-out window, champion vs challenger, and (when a truth
is supplied) the true value of every policy on the logged requests.

The result is a plain JSON-ready dict that ``report.write_report`` renders. Nothing here imports the
simulator: a truth is passed in as a callable by the caller (pipelines may import the simulator).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.evaluation.estimators import DEFAULT_MAX_WEIGHT, RewardModel
from training.evaluation.logs import LoggedRequests, held_out_logs
from training.evaluation.metrics import PAD
from training.evaluation.ope import evaluate_policies, on_policy_value
from training.evaluation.policies import Policy, RankerPolicy, rank
from training.evaluation.ranker_features import prefetch_features, watched_on_air, with_watched_on_air
from training.evaluation.replay import default_catalog, replay, replay_users, time_split
from training.evaluation.report import calibration_table
from training.evaluation.slates import TargetSlates

log = logging.getLogger(__name__)

LOGGING = "logging"
MIN_ESS = 100  # below this many effective samples a bootstrap interval is not to be trusted
PolicySpec = Policy | Callable[[pd.DataFrame], Policy]
"""A policy, or a factory that builds one from the training-window events (popular does)."""
Truth = Callable[[str, pd.DataFrame, np.ndarray], np.ndarray | None]
"""truth(kind, requests, slates) -> expected reward of each request under that slate (None: not known)."""
RewardModelFactory = Callable[[LoggedRequests], tuple[str, RewardModel]]


class NothingToEvaluate(ValueError):
    """No policy but the logging policy, and no logged decision in the held-out window to value it on."""


@dataclass
class EvalConfig:
    k: int = 10
    test_fraction: float = 0.2
    reward: str = "purchased"
    max_weight: float | None = DEFAULT_MAX_WEIGHT
    n_boot: int = 400
    seed: int = 0
    max_users: int | None = 20_000
    # Off-policy estimates on at most about this many held-out logged requests per log (whole users
    # sampled): scoring a ranker policy looks up point-in-time features for every candidate of every
    # request, the one part of evaluation whose cost grows with the log.
    max_requests: int | None = 20_000


def empirical_reward_model(lr: LoggedRequests, prior_strength: float = 20.0) -> tuple[str, RewardModel]:
    """q(a, s) = smoothed reward rate of product a x slot effect, fitted on the log itself.

    A crude model on purpose: DR stays unbiased with correct propensities whatever q is; a better q
    (the ranker's p_convert) only narrows the interval.
    """
    lg = lr.log
    r = lg.reward
    base = float(r.mean()) if r.size else 0.0
    slot_rate = np.bincount(lg.slot, weights=r) / np.maximum(np.bincount(lg.slot), 1)
    slot_mult = slot_rate / base if base > 0 else np.ones_like(slot_rate)
    items, inv = np.unique(lg.item, return_inverse=True)
    expected = np.bincount(inv, weights=base * slot_mult[lg.slot])
    item_rate = (np.bincount(inv, weights=r) + prior_strength * base) / (
        expected + prior_strength * base + 1e-12
    )

    def q(req: np.ndarray, item: np.ndarray, slot: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(items, item), 0, max(items.size - 1, 0))
        mult = np.where(items[pos] == item, item_rate[pos], 1.0) if items.size else np.ones(item.shape)
        s = np.clip(slot, 0, slot_mult.size - 1) if slot_mult.size else slot
        return np.clip(base * (slot_mult[s] if slot_mult.size else 1.0) * mult, 0.0, 1.0)

    return "empirical item x slot rate", q


def ranker_reward_model(policy: RankerPolicy, label: str = "ranker p_convert") -> RewardModelFactory:
    """DR's q from a ranker: p_convert(user, product) x a per-slot factor fitted on the log.

    p_convert is learned per candidate without the position, so the position effect comes from the
    log; a mis-scaled q costs DR variance, never bias, while the propensities are right.
    """

    def factory(lr: LoggedRequests) -> tuple[str, RewardModel]:
        users = lr.requests["user_id"].to_numpy(np.int64)

        def score(u: np.ndarray, item: np.ndarray) -> np.ndarray:
            raw = np.asarray(policy.als_policy.als.score(u, item), dtype=np.float64)
            return policy.p_convert(u, item, raw, np.full(u.size, np.nan))

        # q depends on (user, product) only, and DR asks for it once per target policy: every pair the
        # log's candidates hold is scored in one feature lookup up front (a Feast point-in-time join
        # reads every source table per call, whatever its size), later calls are array lookups.
        r_idx, c_idx = np.nonzero(lr.candidates != PAD)
        pairs = pd.MultiIndex.from_arrays(
            [np.concatenate([users[r_idx], users[lr.log.request]]),
             np.concatenate([lr.candidates[r_idx, c_idx], lr.log.item]).astype(np.int64)]
        ).unique()  # fmt: skip
        known = (
            score(pairs.get_level_values(0).to_numpy(np.int64), pairs.get_level_values(1).to_numpy(np.int64))
            if len(pairs)
            else np.zeros(0)
        )

        def p_convert(req: np.ndarray, item: np.ndarray) -> np.ndarray:
            u, item = users[req], np.asarray(item, np.int64)
            pos = (
                pairs.get_indexer(pd.MultiIndex.from_arrays([u, item])) if len(pairs) else np.full(u.size, -1)
            )
            out = np.where(pos >= 0, known[np.maximum(pos, 0)] if known.size else 0.0, np.nan)
            miss = pos < 0
            if miss.any():  # a pair outside the log's candidates (not expected): score it directly
                out[miss] = score(u[miss], item[miss])
            return out

        # Slot effect = observed / predicted reward per slot on the log: dividing by the prediction
        # removes the better-products-on-top confound that raw per-slot rates carry.
        lg = lr.log
        pred = np.bincount(lg.slot, weights=p_convert(lg.request, lg.item))
        obs = np.bincount(lg.slot, weights=lg.reward)
        mult = np.where(pred > 0, obs / np.where(pred > 0, pred, 1.0), 1.0)

        def q(req: np.ndarray, item: np.ndarray, slot: np.ndarray) -> np.ndarray:
            return np.clip(p_convert(req, item) * mult[np.clip(slot, 0, mult.size - 1)], 0.0, 1.0)

        return label, q

    return factory


def _ope_block(
    lr: LoggedRequests,
    policies: Mapping[str, Policy],
    cfg: EvalConfig,
    reward_model: RewardModelFactory,
    comparisons: Sequence[tuple[str, str]],
    truth: Truth | None,
) -> tuple[dict[str, Any], dict[str, float], dict[str, list[float]]]:
    """One log's block. With no target policy (the logging policy alone, read off the log) there is
    nothing to weight: no reward model, no calibration table."""
    k = max(lr.log.n_slots, 1)
    users = lr.requests["user_id"].to_numpy(np.int64)
    model_name, q = reward_model(lr) if policies else (None, None)
    ranked = {key: rank(p, users, lr.candidates, k) for key, p in _distinct(policies).items()}
    targets = {name: ranked[id(p)] for name, p in policies.items()}  # one model under two names: one ranking
    warnings: list[str] = []
    estimates: dict[str, Any] = {
        LOGGING: {"on_policy": on_policy_value(lr.log, n_boot=cfg.n_boot, seed=cfg.seed).as_dict()}
    }
    pairs = [(a, b) for a, b in comparisons if a in targets and b in targets]
    ests, cmp_ = (
        evaluate_policies(lr.log, {n: TargetSlates(s) for n, s in targets.items()}, q, pairs=pairs,
                          max_weight=cfg.max_weight, n_boot=cfg.n_boot, seed=cfg.seed)
        if targets else ({}, {})
    )  # fmt: skip
    for name, est in ests.items():
        estimates[name] = {e: v.as_dict() for e, v in est.items()}
        ess = est["ips"].ess
        if ess < MIN_ESS:
            warnings.append(
                f"{lr.kind} {name}: effective sample size {ess:.0f} < {MIN_ESS}; its interval is unreliable"
            )
    cmps = [
        {"champion": a, "challenger": b, "by_estimator": {e: c.as_dict() for e, c in res.items()}}
        for (a, b), res in cmp_.items()
    ]
    true_values: dict[str, float] = {}
    if truth is not None:
        for name, slates in [*targets.items(), (LOGGING, _logged_slates(lr, k))]:
            values = truth(lr.kind, lr.requests, slates)
            if values is not None:
                true_values[name] = float(np.mean(values))
    cal = {} if q is None else calibration_table(q(lr.log.request, lr.log.item, lr.log.slot), lr.log.reward)
    block = {
        "n_requests": lr.log.n_requests,
        "n_rows": int(lr.log.item.size),
        "dropped_rows": lr.dropped,
        "reward": cfg.reward,
        "reward_model": model_name,
        "estimates": estimates,
        "comparisons": cmps,
        "warnings": warnings,
    }
    return block, true_values, cal


def _logged_slates(lr: LoggedRequests, k: int) -> np.ndarray:
    """The slates the logging policy really showed (truth of 'logging' on these requests is their mean)."""
    out = np.full((lr.log.n_requests, k), -1, dtype=np.int64)
    out[lr.log.request, lr.log.slot] = lr.log.item
    return out


def evaluate(
    tables: Mapping[str, pd.DataFrame],
    policies: Mapping[str, PolicySpec],
    cfg: EvalConfig | None = None,
    *,
    comparisons: Sequence[tuple[str, str]] = (),
    reward_model: RewardModelFactory | None = None,
    reward_policies: Sequence[str] = (),
    truth: Truth | None = None,
    notes: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Everything ``slotcast evaluate`` reports, as a JSON-ready dict.

    ``tables`` holds canonical tables as pandas frames (events required; impressions, pushes,
    stream_products, products optional). Logged carousels and pushes are restricted to the held-out
    window so that no policy is scored on decisions made over data it was fitted on. DR's reward
    model: ``reward_model``, else a ranker's p_convert (the first of ``reward_policies`` built with a
    ranker, else the first policy that has one), else the log's empirical product x slot rates; each
    block's ``reward_model`` names it. With no ``policies`` the logging policy is evaluated alone:
    its logged value per log, no replay (``NothingToEvaluate`` when no held-out log holds a decision).
    """
    cfg = cfg or EvalConfig()
    say = progress or (lambda _msg: None)
    events = tables["events"]
    train, test = time_split(events, cfg.test_fraction)
    cut = test["ts"].min()
    built = _build_policies(policies, train)
    distinct = _distinct(built)
    notes = [*notes, *_same_model_notes(built)]
    products = tables.get("products")
    catalog = products["product_id"].to_numpy(np.int64) if products is not None and len(products) else None
    if catalog is None:
        catalog = default_catalog(train, test)
    logs, log_notes = held_out_logs(tables, cut, cfg.max_requests, cfg.reward, cfg.seed)
    results: list[Any] = []
    prefetched: dict[str, int] = {}
    if built:
        users, _ = replay_users(test, max_users=cfg.max_users, seed=cfg.seed)
        prefetched = prefetch_features(distinct.values(), users, catalog, logs.values(), say)
        say(f"replay: {len(distinct)} distinct policies on held-out time")
        scored = replay(_replay_policies(distinct, test, tables.get("stream_products")), train, test, cfg.k,
                        catalog=catalog, max_users=cfg.max_users, n_boot=cfg.n_boot, seed=cfg.seed)  # fmt: skip
        by_policy = dict(zip(distinct, scored, strict=True))
        # every name gets its policy's result under its own name, so replay and off-policy rows line up
        results = [dataclasses.replace(by_policy[id(p)], policy=name) for name, p in built.items()]
    elif logs:  # the logging policy alone: it ranks no catalogue, its value is what its log holds
        notes.append(
            "no replay: the logging policy alone is valued from its logs (name another policy to replay it)"
        )
    else:
        raise NothingToEvaluate(
            "the logging policy is valued from the logged carousels and pushes, and the held-out window "
            f"holds none with a propensity ({'; '.join(log_notes) or 'no impressions or pushes table'})"
        )
    result: dict[str, Any] = {
        "params": {
            "k": cfg.k,
            "test_fraction": cfg.test_fraction,
            "reward": cfg.reward,
            "n_boot": cfg.n_boot,
            "max_weight": cfg.max_weight,
            "max_requests": cfg.max_requests,
            "policies": ",".join(built) or LOGGING,
            "test_from": str(cut),
        },  # fmt: skip
        "replay": [r.as_dict() for r in results],
        "ope": {},
        "truth": {},
        "calibration": {},
        "notes": [*notes, *log_notes],
        "feature_lookups": prefetched,
    }
    rm = reward_model or _dr_reward_model(built, reward_policies)
    for kind, lr in logs.items():
        say(f"off-policy: {kind} log, {lr.log.n_requests} requests")
        block, true_values, cal = _ope_block(lr, built, cfg, rm, comparisons, truth)
        result["ope"][kind] = block
        result["notes"].extend(block["warnings"])
        if cal:
            result["calibration"][f"{kind} reward model"] = cal
        if true_values:
            result["truth"][kind] = true_values
    result["summary"] = summary_line(result)
    return result


def _dr_reward_model(built: Mapping[str, Policy], preferred: Sequence[str]) -> RewardModelFactory:
    """The ranker of the first ``preferred`` name built with one, else of the first policy with one:
    a name that was built without its ranker (a champion evaluated as its ALS stage) must not hide
    another policy's trained ranker. The log's empirical rates only when no policy has a ranker."""
    for name in [*(n for n in preferred if n in built), *built]:
        policy = built[name]
        if isinstance(policy, RankerPolicy):
            return ranker_reward_model(policy, f"{name} ranker p_convert")
    return empirical_reward_model


def _build_policies(policies: Mapping[str, PolicySpec], train: pd.DataFrame) -> dict[str, Policy]:
    """Each distinct spec built once: names given the same spec (one bundle under two names) share a policy."""
    made: dict[int, Policy] = {}
    out: dict[str, Policy] = {}
    for name, spec in policies.items():
        if id(spec) not in made:
            made[id(spec)] = spec if hasattr(spec, "scores") else spec(train)  # type: ignore[operator,misc,assignment]
        out[name] = made[id(spec)]
    return out


def _distinct(built: Mapping[str, Policy]) -> dict[int, Policy]:
    """id -> policy, each policy once, in the order of its first name."""
    return {id(p): p for p in built.values()}


def _same_model_notes(built: Mapping[str, Policy]) -> list[str]:
    names: dict[int, list[str]] = {}
    for name, p in built.items():
        names.setdefault(id(p), []).append(name)
    return [
        f"{' and '.join(group)} are the same model: scored once, so their figures are identical"
        for group in names.values()
        if len(group) > 1
    ]


def _replay_policies(
    built: Mapping[Any, Policy], test: pd.DataFrame, stream_products: pd.DataFrame | None
) -> list[Policy]:
    """Rankers get replay's on-air context (ranker_features.with_watched_on_air) where streams exist."""
    if stream_products is None or stream_products.empty:
        return list(built.values())
    pairs: pd.DataFrame | None = None
    out: list[Policy] = []
    for p in built.values():
        if isinstance(p, RankerPolicy):
            pairs = watched_on_air(test, stream_products) if pairs is None else pairs
            p = dataclasses.replace(p, features=with_watched_on_air(p.features, pairs))
        out.append(p)
    return out


def summary_line(result: dict[str, Any]) -> str:
    parts = []
    for r in result.get("replay") or []:
        parts.append(f"{r['policy']}: recall@{r['k']} {r['means']['recall']:.3f}")
    for kind, block in (result.get("ope") or {}).items():
        for c in block.get("comparisons") or []:
            best = c["by_estimator"].get("dr") or c["by_estimator"].get("snips")
            if best:
                parts.append(
                    f"{kind} {c['challenger']} vs {c['champion']} ({best['estimator']}): {best['verdict']}"
                )
    return "; ".join(parts)


def read_tables(data_dir: str | Path, excluded_users: Iterable[int] = ()) -> dict[str, pd.DataFrame]:
    """The canonical tables evaluation uses, as pandas (absent optional tables read as empty),
    without the rows of ``excluded_users`` (the deletion ledger's: evaluation, like training,
    never reads a deleted user)."""
    from features.data_model import read_table

    names = ("events", "products", "impressions", "pushes", "stream_products")
    excluded = np.asarray(sorted({int(u) for u in excluded_users}), dtype=np.int64)
    out = {}
    for name in names:
        df = read_table(data_dir, name).to_pandas()
        if excluded.size and "user_id" in df.columns:
            df = df.loc[~df["user_id"].isin(excluded).to_numpy()].reset_index(drop=True)
        out[name] = df
    return out
