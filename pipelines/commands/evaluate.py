"""`slotcast evaluate`: offline A/B evaluation (replay on held-out time + off-policy estimates).

Policies: popular, random (no model needed), als, als+ranker (the champion bundle, or --bundle),
champion, challenger (MLflow model `slotcast` by alias). The logging policy's own value is always
reported from the logs. A policy that cannot be built is skipped with the reason, never silently.
When DATA holds a simulator truth (DATA/truth), every policy's true value on the logged requests
is reported beside its estimates.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

log = logging.getLogger(__name__)

KNOWN_POLICIES = ("popular", "random", "logging", "als", "als+ranker", "champion", "challenger")
DEFAULT_POLICIES = "popular,als,als+ranker,champion,challenger"


class PolicyUnavailable(Exception):
    """A requested policy that cannot be evaluated here (no model, no features): skipped with this reason."""


def _parse_policies(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in KNOWN_POLICIES]
    if unknown:
        raise typer.BadParameter(
            f"unknown policy {unknown}; known: {', '.join(KNOWN_POLICIES)}", param_hint="--policies"
        )
    if not names:
        raise typer.BadParameter("no policy named", param_hint="--policies")
    return list(dict.fromkeys(names))


class _Bundles:
    """Bundles loaded once per alias (or from --bundle), with the reason when one is not there."""

    def __init__(self, settings: Any, bundle_dir: Path | None) -> None:
        self.settings, self.bundle_dir = settings, bundle_dir
        self._cache: dict[str, Any] = {}  # alias -> (key, bundle) or the reason it is unavailable
        self._by_key: dict[str, Any] = {}
        self.specs: dict[tuple[str, str], Any] = {}  # (bundle key, what) -> policy spec, shared by names
        self.features: dict[tuple[str, str], Any] = {}  # (feature service, as of) -> one feature cache

    def get(self, alias: str) -> Any:
        return self.resolve(alias)[1]

    def resolve(self, alias: str) -> tuple[str, Any]:
        """(key, bundle): aliases naming the same model version get the same key and the same bundle."""
        if alias not in self._cache:
            self._cache[alias] = self._load(alias)
        found = self._cache[alias]
        if isinstance(found, PolicyUnavailable):
            raise found
        return found  # type: ignore[no-any-return]

    def _load(self, alias: str) -> Any:
        from models.bundle import Bundle
        from models.errors import SlotcastModelError

        try:
            if alias == "default" and self.bundle_dir is not None:
                path = Bundle.find(self.bundle_dir)
                return self._keep(f"dir {path}", lambda: Bundle.load(path))
            from training import tracking
            from training.registry import load_bundle, version_by_alias

            name = self.settings.registered_model
            client = tracking.configure(self.settings)
            ref = "champion" if alias == "default" else alias
            mv = version_by_alias(client, name, ref)
            if mv is None:
                return PolicyUnavailable(
                    f"no MLflow model {name}@{ref} (run `slotcast train`, then `slotcast promote`)"
                )
            return self._keep(f"{name} version {mv.version}", lambda: load_bundle(name, ref))
        except SlotcastModelError as exc:
            return PolicyUnavailable(f"bundle {alias!r} cannot be loaded: {exc}")
        except Exception as exc:  # noqa: BLE001 - an unreachable MLflow store skips the model, not the evaluation
            return PolicyUnavailable(f"bundle {alias!r} unavailable: {type(exc).__name__}: {exc}")

    def _keep(self, key: str, load: Any) -> tuple[str, Any]:
        if key not in self._by_key:
            self._by_key[key] = load()
        return key, self._by_key[key]


def _feature_fn(bundle: Any, settings: Any, as_of: Any, caches: dict[tuple[str, str], Any]) -> Any:
    """The ranker's feature lookup (the Feast store built by `slotcast features build`), one cache per
    feature service and as-of time, so every ranker on that service shares one point-in-time lookup."""
    if bundle.ranker is None:
        raise PolicyUnavailable("the bundle has no ranker")
    from training.evaluation.ranker_features import CONTEXT_FEATURES, context_feature_fn

    if set(bundle.ranker.feature_names) <= set(CONTEXT_FEATURES):
        return context_feature_fn()  # trained without the feature store: nothing to look up
    try:
        from features.retrieval import FeastFeatureReader
        from features.settings import FeatureSettings

        fs = FeatureSettings(state_dir=settings.state_dir)  # type: ignore[call-arg]
        if not fs.registry_path.exists():
            raise PolicyUnavailable(f"no feature store at {fs.registry_path} (run `slotcast features build`)")
        # DuckDB's ASOF join over the same offline sources: Feast's file store reads and sorts every
        # source table per call (8.8 GB at 10M events); both engines return the same rows
        # (tests/features/test_retrieval_duckdb.py)
        reader = FeastFeatureReader(fs, offline_engine="duckdb")
    except ImportError as exc:
        raise PolicyUnavailable(f"feature retrieval unavailable: {exc}") from exc
    from training.evaluation.ranker_features import PointInTimeFeatures

    key = (bundle.manifest.feature_service, str(as_of))
    if key not in caches:
        caches[key] = PointInTimeFeatures(reader, bundle.manifest.feature_service, as_of)
    return caches[key]


def _build_policy(
    name: str, bundles: _Bundles, settings: Any, as_of: Any, popular_factory: Any, notes: list[str]
) -> Any:
    from training.evaluation.policies import ALSPolicy, PopularPolicy, RandomPolicy, RankerPolicy

    if name == "popular":
        return PopularPolicy.from_events
    if name == "random":
        return RandomPolicy()
    alias = {"als": "default", "als+ranker": "default"}.get(name, name)
    if alias == "default" and bundles.bundle_dir is None:
        alias = "champion"  # the same model: one download, one spec
    key, bundle = bundles.resolve(alias)

    def shared(what: str, make: Any) -> Any:
        # names resolving to one model version get one spec: evaluate() then scores it once
        if (key, what) not in bundles.specs:
            bundles.specs[(key, what)] = make()
        return bundles.specs[(key, what)]

    def als_policy() -> Any:
        return shared("als", lambda: lambda train: ALSPolicy(bundle.als, popular_factory(train), name=name))

    if name == "als":
        return als_policy()
    try:
        features = _feature_fn(bundle, settings, as_of, bundles.features)
    except PolicyUnavailable as exc:
        if name == "als+ranker":
            raise
        # champion / challenger without a usable ranker are still their ALS stage: evaluate that, and say so
        notes.append(f"{name}: evaluated as its ALS stage only ({exc})")
        return als_policy()
    # Every logged candidate (a stream's on-air products) reaches the ranker, as serving reranks them
    # all for a personal answer (SLOTCAST_RERANK_ON_AIR; benchmarks/bench_shortlist.py measured why).
    # Serving's fallback answers keep the shortlist; their value did not depend on it.
    return shared("ranker", lambda: lambda train: RankerPolicy(
        ALSPolicy(bundle.als, popular_factory(train)), bundle.ranker, features, n_candidates=None, name=name,
        popularity=bundle.popularity,
    ))  # fmt: skip


def _truth(data: Path, reward: str) -> Any:
    """The simulator's truth as run.Truth, when DATA has one."""
    from pipelines.simulator.truth import TrueWorld

    world = TrueWorld.load(data)

    def truth(kind: str, requests: Any, slates: Any) -> Any:
        import numpy as np

        users = requests["user_id"].to_numpy(np.int64)
        filled = slates >= 0
        out = np.zeros(slates.shape)
        u = np.broadcast_to(users[:, None], slates.shape)[filled]
        slots = np.broadcast_to(np.arange(slates.shape[1]), slates.shape)[filled]
        # each request is judged by its user's tastes on its day (worlds with taste drift)
        when = np.broadcast_to(_ts_us(requests)[:, None], slates.shape)[filled]
        try:
            if kind == "push":
                if reward != "purchased":
                    return None  # the truth module answers push purchases only
                out[filled] = world.push_purchase_prob(u, slates[filled], when)
                # a push to a user who has churned is sent but never opened (pipelines/simulator/pushes.py)
                out *= _around(world, requests)[:, None]
            elif reward == "clicked":
                out[filled] = world.click_prob(u, slates[filled], slots, when)
            else:
                out[filled] = world.purchase_prob(
                    u, slates[filled], slots, _streams(requests, slates.shape, filled), when
                )
        except KeyError as exc:  # a service log may name users or products this world never had
            log.warning("no simulator truth for the %s log: %s", kind, exc)
            return None
        return out.sum(axis=1)

    return truth


def _streams(requests: Any, shape: tuple[int, ...], filled: Any) -> Any:
    """Each slot's stream id; -1 (TrueWorld's "no stream": the average host) where a request has none,
    row by row, so one stream-less request does not take the host effect from all the others."""
    import numpy as np
    import pandas as pd

    ids = (
        pd.to_numeric(requests["stream_id"], errors="coerce").fillna(-1).to_numpy(np.float64).astype(np.int64)
    )
    return np.broadcast_to(ids[:, None], shape)[filled]


def _ts_us(requests: Any) -> Any:
    """Each request's time in microseconds since the epoch."""
    import numpy as np
    import pandas as pd

    return pd.to_datetime(requests["ts"], utc=True).to_numpy("datetime64[us]").astype(np.int64)


def _around(world: Any, requests: Any) -> Any:
    """1 where the request's user had not churned by the request's day, else 0."""
    import numpy as np

    from pipelines.simulator.config import DAY_US

    day = (_ts_us(requests) - world.start_us) // DAY_US
    return (world.churn_day(requests["user_id"].to_numpy(np.int64)) > day).astype(np.float64)


def _service_impressions(state_dir: Path, events: Any, deleted: Any) -> Any:
    """The service's carousel impression log as an impressions table (clicks / purchases from
    events), without the answers to users in ``deleted``."""
    from serving.impressions import read_impressions
    from training.evaluation.logs import impressions_from_service

    directory = Path(state_dir) / "serving" / "impressions"
    if not directory.is_dir():
        raise typer.BadParameter(
            f"no impression log at {directory} (the service writes it)", param_hint="--service-log"
        )
    gone = {int(u) for u in deleted}
    records = (r for r in read_impressions(directory) if r.get("user_id") not in gone)
    table = impressions_from_service(records, events)
    if table.empty:
        raise typer.BadParameter(f"{directory} holds no carousel impressions", param_hint="--service-log")
    return table


def register(app: typer.Typer) -> None:
    """Add `slotcast evaluate` to the main app."""

    @app.command("evaluate")
    def evaluate_cmd(
        data: Path = typer.Option(None, "--data", help="directory of canonical parquet tables (default $SLOTCAST_STATE_DIR/data)"),
        policies: str = typer.Option(DEFAULT_POLICIES, "--policies", help=f"comma-separated, from: {', '.join(KNOWN_POLICIES)}"),
        split: str = typer.Option("time", "--split", help="how to hold data out; only 'time' (the last --test-fraction of the span)"),
        test_fraction: float = typer.Option(0.2, "--test-fraction", min=0.01, max=0.9, help="share of the time span held out"),
        k: int = typer.Option(10, "--k", min=1, help="list length for the replay metrics"),
        out: Path = typer.Option(None, "--out", help="report directory (default $SLOTCAST_STATE_DIR/reports/<UTC time>)"),
        reward: str = typer.Option("purchased", "--reward", help="logged outcome to value: purchased | clicked"),
        max_weight: float = typer.Option(1000.0, "--max-weight", min=1.0, help="propensity clipping: cap on pi/propensity"),
        n_boot: int = typer.Option(400, "--n-boot", min=50, help="bootstrap replicates for the 95% intervals"),
        max_users: int = typer.Option(5000, "--max-users", min=10, help="replay on at most this many test users (sampled)"),
        max_requests: int = typer.Option(20000, "--max-requests", min=100,
                                         help="off-policy estimates on about this many held-out logged requests per log "
                                              "(whole users sampled)"),
        bundle: Path = typer.Option(None, "--bundle", help="bundle directory for als / als+ranker (default: the champion)"),
        truth: bool = typer.Option(True, "--truth/--no-truth", help="report simulator true values when DATA/truth exists"),
        mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="log the report as an MLflow evaluation run"),
        seed: int = typer.Option(0, "--seed", help="seed of the bootstrap and of the user samples (--max-users, --max-requests)"),
        service_log: bool = typer.Option(False, "--service-log/--table-log",
                                         help="carousels from the service's impression log ($SLOTCAST_STATE_DIR/serving/"
                                              "impressions, rewards joined from DATA's events) instead of DATA's impressions table"),
    ) -> None:  # fmt: skip
        """Evaluate policies offline: replay metrics on held-out time, IPS/SNIPS/DR on the logged carousels
        and pushes, champion vs challenger with a verdict; writes an HTML report + metrics.json."""
        from rich.console import Console

        from training.evaluation.report import log_to_mlflow, write_report
        from training.evaluation.run import EvalConfig, evaluate, read_tables
        from training.settings import TrainSettings

        if split != "time":
            raise typer.BadParameter(f"{split!r}: only 'time' is supported", param_hint="--split")
        if reward not in ("purchased", "clicked"):
            raise typer.BadParameter(f"{reward!r} is not purchased or clicked", param_hint="--reward")
        names = _parse_policies(policies)
        settings = TrainSettings()  # type: ignore[call-arg]
        data = data if data is not None else settings.state_dir / "data"
        if not data.is_dir():
            raise typer.BadParameter(f"{data} is not a directory", param_hint="--data")
        if bundle is not None and not bundle.exists():
            raise typer.BadParameter(f"{bundle} does not exist", param_hint="--bundle")
        if out is None:
            out = settings.state_dir / "reports" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        elif out.exists() and not out.is_dir():  # refused before the work, not once the report is written
            raise typer.BadParameter(f"{out} is a file, not a report directory", param_hint="--out")
        console, err = Console(), Console(stderr=True)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        from training.interactions import deleted_users

        gone = deleted_users(settings.state_dir)  # evaluation, like training, reads no deleted user
        tables = read_tables(data, gone)
        if tables["events"].empty:
            raise typer.BadParameter(f"{data}/events.parquet holds no events", param_hint="--data")
        notes: list[str] = []
        if service_log:
            tables["impressions"] = _service_impressions(settings.state_dir, tables["events"], gone)
            if bad := tables["impressions"].attrs.get("malformed_records", 0):
                notes.append(f"service impression log: {bad} malformed carousel records left out")
        from training.evaluation.policies import PopularPolicy
        from training.evaluation.replay import time_split

        cut = time_split(tables["events"], test_fraction)[1]["ts"].min()
        bundles = _Bundles(settings, bundle)
        specs: dict[str, Any] = {}
        for name in names:
            if name == "logging":
                continue  # always reported: its value is read off the logs
            try:
                specs[name] = _build_policy(name, bundles, settings, cut, PopularPolicy.from_events, notes)
            except PolicyUnavailable as exc:
                msg = f"policy {name!r} skipped: {exc}"
                notes.append(msg)
                err.print(f"[yellow]{msg}[/yellow]")
        if any(n in specs for n in ("als", "als+ranker", "champion", "challenger")):
            notes.append("replay of registered bundles is optimistic when they were trained on data that covers "
                         "the held-out window (a user 'new' here may be known to the model)")  # fmt: skip
        if not specs:
            raise typer.BadParameter(
                "none of the requested policies can be evaluated here", param_hint="--policies"
            )
        built_names = list(specs)
        if "champion" in specs and "challenger" in specs:
            comparisons = [("champion", "challenger")]
        else:
            comparisons = [(built_names[0], built_names[-1])] if len(built_names) > 1 else []
        truth_fn = None
        if truth and (data / "truth").is_dir():
            truth_fn = _truth(data, reward)
        cfg = EvalConfig(k=k, test_fraction=test_fraction, reward=reward, max_weight=max_weight, n_boot=n_boot,
                         seed=seed, max_users=max_users, max_requests=max_requests)  # fmt: skip
        with console.status("evaluating") as status:
            reward_policy = next((n for n in ("champion", "als+ranker", "challenger") if n in specs), None)
            result = evaluate(tables, specs, cfg, comparisons=comparisons, truth=truth_fn, notes=notes,
                              reward_policy=reward_policy,
                              progress=lambda msg: status.update(msg))  # fmt: skip
            status.update("writing the report")
            paths = write_report(result, out)
            run_id = None
            if mlflow:
                status.update("logging to MLflow")
                run_id = log_to_mlflow(result, out, settings)
        _print_summary(console, result, k)
        console.print(
            f"report: {paths['html']}  metrics: {paths['json']}"
            + (f"  MLflow run {run_id}" if run_id else "")
        )


def _print_summary(console: Any, result: dict[str, Any], k: int) -> None:
    from rich.table import Table

    t = Table(title=f"replay on held-out time (from {result['params']['test_from']})")
    t.add_column("policy", style="bold")
    for col in (f"recall@{k}", f"nDCG@{k}", f"MAP@{k}", "hit rate", "coverage", "novelty", "users"):
        t.add_column(col, justify="right")
    for r in result["replay"]:
        m = r["means"]
        t.add_row(r["policy"], *(f"{m[x]:.4f}" for x in ("recall", "ndcg", "map", "hit_rate", "coverage")),
                  f"{m['novelty']:.2f}", str(r["n_users"]))  # fmt: skip
    console.print(t)
    for kind, block in result["ope"].items():
        truth = result["truth"].get(kind, {})
        t = Table(
            title=f"off-policy value per {kind} request ({block['reward']}, {block['n_requests']} logged requests)"
        )
        for col in ("policy", "estimator", "value", "95% CI", "ESS", *(["true value"] if truth else [])):
            t.add_column(col, justify="right" if col != "policy" else "left")
        for pol, ests in block["estimates"].items():
            for est, e in ests.items():
                row = [
                    pol,
                    est,
                    f"{e['value']:.5f}",
                    f"[{e['ci_low']:.5f}, {e['ci_high']:.5f}]",
                    f"{e['ess']:.0f}",
                ]
                if truth:
                    row.append(f"{truth[pol]:.5f}" if pol in truth else "")
                t.add_row(*row)
        console.print(t)
        for c in block["comparisons"]:
            for est in ("snips", "dr"):
                if est in c["by_estimator"]:
                    x = c["by_estimator"][est]
                    console.print(f"{kind}: {c['challenger']} vs {c['champion']} ({est}): diff {x['diff']:+.5f} "
                                  f"[{x['ci_low']:+.5f}, {x['ci_high']:+.5f}] -> [bold]{x['verdict']}[/bold]")  # fmt: skip
    from training.evaluation.report import truth_per_1000

    title, headers, rows = truth_per_1000(result)
    if rows:
        t = Table(title=f"simulator ground truth: {title} (each policy's slates on the held-out requests)")
        for col in ("policy", *headers):
            t.add_column(col, justify="right" if col != "policy" else "left")
        for row in rows:
            t.add_row(row[0], *(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row[1:]))
        console.print(t)
    for note in result.get("notes") or []:
        console.print(f"[yellow]note:[/yellow] {note}")
