"""Fitting: ALS candidates, the ranker dataset, LightGBM with early stopping and optional optuna
search on the time-later validation split, and the test-split evaluation. No MLflow here (see
training/run.py), so every piece can be tested without a tracking store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.als import ALSCandidateGenerator
from models.errors import ModelFitError
from models.popularity import PopularityModel
from models.ranker import LightGBMRanker, RankerConfig
from models.vocab import IdVocab
from training.dataset import (
    CONTEXT_FEATURES,
    HistoricalReader,
    RankerData,
    TimeSplits,
    attach_features,
    candidate_rows,
    check_labels_exist,
    label_window,
    on_air_pairs,
    select_queries,
)
from training.interactions import TrainingDataError, build_interactions, event_confidence
from training.settings import TrainSettings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class FitResult:
    """Everything a training run produced, before it is bundled and logged."""

    als: ALSCandidateGenerator
    ranker: LightGBMRanker
    popularity: PopularityModel
    data: RankerData
    metrics: dict[str, float]
    per_query: dict[str, np.ndarray]
    ranker_params: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    hpo_trials: list[dict[str, Any]] = field(default_factory=list)
    ranker_backend: dict[str, str] = field(default_factory=dict)  # MLflow params ranker.fit_backend ...


def fit_als(
    events: pd.DataFrame, settings: TrainSettings, item_ids: np.ndarray, as_of: pd.Timestamp
) -> ALSCandidateGenerator:
    """ALS on the weighted events (raises ModelFitError on an empty matrix or NaN factors)."""
    inter = build_interactions(
        events, settings.weights, half_life_days=settings.half_life_days, as_of=as_of, item_ids=item_ids
    )
    if inter.nnz == 0:
        raise ModelFitError(f"no weighted user x product interactions before {as_of}: nothing to factorise")
    until_us = int(pd.Timestamp(as_of).value // 1000)  # events at or after it are new to the model
    return ALSCandidateGenerator(settings.als).fit(
        inter.matrix, IdVocab(inter.user_ids), IdVocab(inter.item_ids), history_until_us=until_us
    )


def fit_popularity(events: pd.DataFrame, settings: TrainSettings) -> PopularityModel:
    ev = events.loc[events["product_id"].notna()]
    w = event_confidence(ev, settings.weights, settings.half_life_days)
    keep = w > 0
    if not keep.any():
        raise ModelFitError("no weighted product events to fit popularity on")
    return PopularityModel().fit(ev["product_id"].to_numpy(dtype=np.int64)[keep], w[keep])


def served(frame: pd.DataFrame, score: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(rows, scores, rankable) as serving would rank each query, for the ranking metrics.

    A query whose stream has products on air is a carousel: serving ranks only those, and a product
    bought off air is outside anything its carousel could show, so those rows leave the query. Any
    other query ranks its candidate rows. The positives the candidates missed (``candidate`` False)
    stay as relevant but not rankable: they count as misses (end-to-end recall) and are never listed
    (docs/training.md, step 5). Frames without ``on_air`` / ``candidate`` have no carousel / every
    row a candidate.
    """
    score = np.asarray(score, dtype=np.float64)
    keep = np.ones(len(frame), dtype=bool)
    if "on_air" in frame.columns:
        on = frame["on_air"].fillna(0).to_numpy().astype(bool)
        carousel = pd.Series(on).groupby(frame["query_id"].to_numpy()).transform("any").to_numpy()
        keep = ~carousel | on
    rankable = (
        frame["candidate"].to_numpy().astype(bool)
        if "candidate" in frame.columns
        else np.ones(len(frame), bool)
    )
    return frame.loc[keep], score[keep], rankable[keep]


def query_topk(
    frame: pd.DataFrame, score: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, list[set[int]]]:
    """Per query with a positive among the rows serving would rank (``served``): (query ids, top-k
    product matrix by ``score``, -1 past the query's rankable rows, and the relevant sets)."""
    rows, s, rankable = served(frame, score)
    f = rows[["query_id", "product_id", "label"]].assign(_s=np.nan_to_num(s, nan=-np.inf), _ok=rankable)
    qids = np.sort(f.loc[f["label"] > 0, "query_id"].unique())
    f = f.loc[f["query_id"].isin(qids)]
    ranked = f.loc[f["_ok"]].sort_values(["query_id", "_s"], ascending=[True, False], kind="stable")
    ranked = ranked.assign(_r=ranked.groupby("query_id").cumcount())
    top = ranked.loc[ranked["_r"] < k].pivot(index="query_id", columns="_r", values="product_id")
    mat = top.reindex(index=qids, columns=range(k)).fillna(-1).to_numpy(dtype=np.int64)
    rel = f.loc[f["label"] > 0].groupby("query_id")["product_id"].apply(set).reindex(qids).tolist()
    return qids, mat, rel


def ranking_scores(frame: pd.DataFrame, score: np.ndarray, k: int) -> tuple[np.ndarray, dict[str, float]]:
    """Per-query nDCG@k (the gate's metric) and mean ranking metrics of one scoring of ``frame``."""
    from training.evaluation.metrics import mean_metrics, per_user_metrics

    _, mat, rel = query_topk(frame, score, k)
    if not rel:
        return np.empty(0), {}
    pu = per_user_metrics(mat, rel, k)
    return pu["ndcg"], {f"{m}_at_{k}": v for m, v in mean_metrics(pu).items()}


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC (rank statistic, ties averaged) and log loss of probabilities ``p``."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    out: dict[str, float] = {}
    if n_pos and n_neg:
        r = rankdata(p)
        out["auc"] = float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    out["logloss"] = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
    return out


def _ranker_inputs(data: RankerData, cfg: RankerConfig) -> tuple[Any, ...]:
    """(X, y, group) of the train split and (X, y, group) of the valid split, or None for it."""
    tr, va = data.part("train", candidates_only=True), data.part("valid", candidates_only=True)
    group = data.groups("train") if cfg.objective == "lambdarank" else None
    vgroup = data.groups("valid") if cfg.objective == "lambdarank" else None
    valid = (va[data.feature_names], va["label"].to_numpy(), vgroup) if len(va) else None
    return tr[data.feature_names], tr["label"].to_numpy(), group, valid


def _fit_ranker(data: RankerData, cfg: RankerConfig) -> LightGBMRanker:
    X, y, group, valid = _ranker_inputs(data, cfg)
    return LightGBMRanker(cfg).fit(X, y, group=group, valid=valid)


def fit_final_ranker(
    data: RankerData, cfg: RankerConfig, settings: TrainSettings
) -> tuple[LightGBMRanker, dict[str, float], dict[str, str]]:
    """The bundle's ranker, its figures and where it was fitted (MLflow params ``ranker.fit_*``).

    In process, LightGBM stops early on the valid split. With ``settings.dask_scheduler``, the
    cluster fits ``n_estimators`` trees and the tree count is chosen on the valid split in process
    by the same metric and patience (``training.posthoc_stopping``)."""
    if not settings.dask_scheduler:
        ranker = _fit_ranker(data, cfg)
        return (
            ranker,
            {"ranker_best_iteration": float(ranker.best_iteration)},
            {"ranker.fit_backend": "inprocess"},
        )
    from training.dask_ranker import fit_ranker_dask_early_stopped
    from training.settings import parse_dask_scheduler, public_address

    X, y, group, valid = _ranker_inputs(data, cfg)
    if valid is None:
        raise ModelFitError("the valid split is empty: nothing to choose the Dask ranker's tree count on")
    address, n_workers = parse_dask_scheduler(settings.dask_scheduler)
    ranker, figures = fit_ranker_dask_early_stopped(
        X, y, cfg, group, valid, address, n_workers, socket_timeout_min=settings.dask_socket_timeout_min
    )
    figures["ranker_best_iteration"] = float(ranker.best_iteration)
    where = {"ranker.fit_backend": "dask", "ranker.dask_scheduler": public_address(settings.dask_scheduler),
             "ranker.dask_workers": str(int(figures["ranker_dask_workers"]))}  # fmt: skip
    return ranker, figures, where


def search_ranker(
    data: RankerData, settings: TrainSettings
) -> tuple[RankerConfig, list[dict[str, Any]], float]:
    """Optuna over a few ranker hyperparameters, scored on the VALIDATION split only (nDCG@k):
    (the chosen config, the trials, the configured ranker's valid nDCG). The configured ranker
    is kept unless a trial beats it there (the default lies outside the searched ranges)."""
    if settings.hpo_trials == 0:
        return settings.ranker, [], float("nan")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    va = data.part("valid")
    trials: list[dict[str, Any]] = []

    def valid_ndcg(cfg: RankerConfig) -> float:
        r = _fit_ranker(data, cfg)
        nd, _ = ranking_scores(va, r.predict(va[data.feature_names]), settings.k)
        return float(np.nanmean(nd)) if nd.size else 0.0

    def objective(trial: optuna.Trial) -> float:
        cfg = settings.ranker.model_copy(
            update={
                "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
                "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
            }
        )
        value = valid_ndcg(cfg)
        trials.append({**trial.params, "valid_ndcg": value})
        return value

    baseline = valid_ndcg(settings.ranker)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.seed))
    study.optimize(objective, n_trials=settings.hpo_trials)
    if study.best_value <= baseline:
        log.info("no trial beat the configured ranker on valid (%.4f): kept", baseline)
        return settings.ranker, trials, baseline
    return settings.ranker.model_copy(update=study.best_params), trials, baseline


def build_data(
    events: pd.DataFrame,
    stream_products: pd.DataFrame,
    item_ids: np.ndarray,
    settings: TrainSettings,
    reader: HistoricalReader | None,
    progress: Progress = lambda _: None,
) -> tuple[RankerData, ALSCandidateGenerator, ALSCandidateGenerator, PopularityModel, dict[str, float]]:
    """Splits, the two ALS fits (history-only for train/valid queries, pre-test for test ones), the
    pre-test popularity (the bundle's), data."""
    timings: dict[str, float] = {}
    check_labels_exist(events, settings.label_event)
    splits = TimeSplits.from_events(events, settings.split)
    window = label_window(splits, settings.split, settings.label_window_hours)  # may refuse: before ALS
    t = time.perf_counter()
    progress("fitting ALS on the history split")
    als_hist = fit_als(events.loc[events["ts"] < splits.t_train], settings, item_ids, splits.t_train)
    progress("fitting ALS on everything before the test split")
    als_final = fit_als(events.loc[events["ts"] < splits.t_test], settings, item_ids, splits.t_test)
    # Popularity on the same events as each ALS: the ranker's baseline feature (popularity_score).
    pop_hist = fit_popularity(events.loc[events["ts"] < splits.t_train], settings)
    pop_final = fit_popularity(events.loc[events["ts"] < splits.t_test], settings)
    timings["als_fit_s"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("building ranker queries and candidates")
    rng = np.random.default_rng(settings.seed)
    queries, positives = select_queries(
        events, splits, settings.label_event, window, settings.max_queries, settings.negative_query_ratio, rng
    )
    if queries.empty:
        raise ModelFitError(f"no ranker queries with a {settings.label!r} label in any split; need more data")
    on_air = on_air_pairs(queries, stream_products)
    cand = candidate_rows(
        queries,
        positives,
        on_air,
        {"train": als_hist, "valid": als_hist, "test": als_final},
        settings.candidates_n,
        popularity_by_split={"train": pop_hist, "valid": pop_hist, "test": pop_final},
    )
    progress(f"point-in-time features for {len(cand):,} candidate rows")
    cand, names = attach_features(cand, reader, settings.feature_service)
    for c in names:
        if cand[c].dtype == object:
            cand[c] = cand[c].astype("category")
    cand["on_air"] = cand["on_air"].astype(np.int8)
    timings["dataset_build_s"] = time.perf_counter() - t
    data = RankerData(cand, names + CONTEXT_FEATURES, splits, window)
    data.stats = {
        f"{s}_{what}": float(v)
        for s in ("train", "valid", "test")
        for what, v in (
            ("rows", len(data.part(s))),
            ("queries", data.part(s)["query_id"].nunique()),
            ("positives", data.part(s)["label"].sum()),
        )  # fmt: skip
    }
    return data, als_hist, als_final, pop_final, timings


def check_trainable(data: RankerData, settings: TrainSettings) -> None:
    """Degenerate training data raises ModelFitError before anything is fitted or registered."""
    for s in ("train", "valid", "test"):
        part = data.part(s, candidates_only=True)
        if part.empty:
            raise ModelFitError(_empty_split_hint(data, settings, s))
        if part["label"].nunique() < 2:
            raise ModelFitError(
                f"the {s} split's labels are all {int(part['label'].iloc[0])}: nothing to learn or measure"
            )


def _empty_split_hint(data: RankerData, settings: TrainSettings, name: str) -> str:
    """Why split ``name`` has no ranker rows, and which settings to move which way.

    A split only holds queries whose whole label window fits inside it, and only those with a label
    event in that window (plus as many without): it fills up with more of the data's TIME, which
    the fractions split.* give out and must sum to 1. ``history`` (ALS only) is the one to take from.
    """
    hours, days = data.splits.hours(name), data.splits.days
    window = data.label_window / pd.Timedelta(hours=1)
    setting = f"label_window_hours={window:g}" if settings.label_window_hours else "the default label window"
    share, history = getattr(settings.split, name), settings.split.history
    queries = data.part(name)["query_id"].nunique()
    if queries:  # queries, but ALS (fitted on the history split) knows none of them, nothing on air
        return (f"the {name} split's {queries} queries have no candidate: ALS knows none of their users "
                f"from the history split; raise split.history (now {history:g}) and lower split.{name} "
                f"(now {share:g}) by as much, or train on more days of data")  # fmt: skip
    other = " (or --label click, a more frequent event)" if settings.label != "click" else ""
    return (f"the {name} split ({hours:.1f} h of {days:.1f} days of events) has no query with a "
            f"{settings.label} within {window:.3g} h of it ({setting}): give the "
            f"split more time by raising split.{name} (now {share:g}) and lowering split.history "
            f"(now {history:g}) by as much, so that the fractions still sum to 1 "
            f"(env SLOTCAST_SPLIT__{name.upper()}, SLOTCAST_SPLIT__HISTORY), or train on more days of "
            f"data{other}")  # fmt: skip


def fit_all(
    events: pd.DataFrame,
    stream_products: pd.DataFrame,
    item_ids: np.ndarray,
    settings: TrainSettings,
    reader: HistoricalReader | None,
    progress: Progress = lambda _: None,
) -> FitResult:
    """The whole fit: data, ranker (+ search), evaluation of three policies on the test split."""
    if events.empty:
        raise TrainingDataError("no events to train on (after quarantine and deletion exclusions)")
    data, _als_hist, als_final, popularity, timings = build_data(
        events, stream_products, item_ids, settings, reader, progress
    )
    check_trainable(data, settings)
    t = time.perf_counter()
    progress(f"ranker search ({settings.hpo_trials} trials) and fit")
    cfg, trials, default_valid = search_ranker(data, settings)
    if settings.dask_scheduler:
        from training.settings import public_address

        where = public_address(settings.dask_scheduler)
        progress(f"ranker fit on Dask ({where}), then its tree count on the valid split")
    ranker, ranker_figures, ranker_backend = fit_final_ranker(data, cfg, settings)
    timings["ranker_fit_s"] = time.perf_counter() - t

    te = data.part("test")
    k = settings.k
    metrics: dict[str, float] = {}
    per_query: dict[str, np.ndarray] = {}
    pop_score = (
        pd.Series(popularity.scores, index=popularity.product_ids).reindex(te["product_id"]).to_numpy()
    )
    policies = {
        "popularity": pop_score,
        "als": te["als_score"].to_numpy(),
        "als_ranker": ranker.predict(te[data.feature_names]),
    }
    for name, score in policies.items():
        nd, means = ranking_scores(te, score, k)
        per_query[name] = nd
        metrics.update({f"test_{name}_{m}": v for m, v in means.items()})
    if cfg.objective == "binary":
        # on the rows the ranker is ever asked about (as the calibration plot): not the missed positives
        asked = te["candidate"].to_numpy(dtype=bool)
        p_convert = policies["als_ranker"][asked]
        metrics.update(
            {
                f"test_{m}": v
                for m, v in classification_metrics(te["label"].to_numpy()[asked], p_convert).items()
            }
        )
    metrics.update(data.stats)
    metrics["hpo_default_valid_ndcg"] = default_valid  # NaN (not logged) without a search
    metrics.update(ranker_figures)
    metrics.update(timings)
    return FitResult(
        als_final,
        ranker,
        popularity,
        data,
        metrics,
        per_query,
        cfg.model_dump(),
        timings,
        trials,
        ranker_backend,
    )
