"""The end-to-end pipeline's steps, bound to the functions the CLI commands use.

data -> validate -> features -> train (ALS + ranker, registered as challenger) -> promote (the
gate: champion only if the challenger beats it on the held-out split, or the first one) ->
evaluate (replay + off-policy report comparing champion and challenger, logged to MLflow).

Each step reads only its own config section and its upstream steps' digests (pipelines.runner),
so changing, say, ``train`` reruns train, evaluate and promote but not the feature build.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipelines.runner import Step, StepResult, file_digest

Say = Callable[[str], None]


class StepFailed(RuntimeError):
    exit_code = 1


def _data_dir(state_dir: Path, cfg: Mapping[str, Any]) -> Path:
    d = cfg["data"]
    if d["source"] == "dir":
        if not d.get("dir"):
            raise StepFailed("data.source is 'dir' but data.dir is not set")
        return Path(d["dir"])
    return state_dir / "data"


def _feature_settings(state_dir: Path, cfg: Mapping[str, Any]) -> Any:
    from features.settings import FeatureSettings

    f = cfg["features"]
    extra = {"redis_url": f["redis_url"]} if f.get("redis_url") else {}
    return FeatureSettings(state_dir=state_dir, online_store=f["online_store"], **extra)


def _train_settings(state_dir: Path, cfg: Mapping[str, Any]) -> Any:
    from training.settings import TrainSettings

    t = cfg["train"]
    s = TrainSettings(state_dir=state_dir, label=t["label"], hpo_trials=t["hpo_trials"])
    if t.get("dask_scheduler"):
        s = s.model_copy(update={"dask_scheduler": t["dask_scheduler"]})
    return s.model_copy(
        update={
            "ranker": s.ranker.model_copy(update={"objective": t["objective"]}),
            "als": s.als.model_copy(update={"factors": t["als_factors"], "iterations": t["als_iterations"]}),
        }
    )


def build_steps(state_dir: Path, say: Say = lambda _m: None) -> list[Step]:
    """The pipeline's steps for a state directory; ``say`` receives progress lines."""

    def data(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        d = cfg["data"]
        out = _data_dir(state_dir, cfg)
        if d["source"] == "simulate":
            from pipelines.simulator import SimConfig, generate

            sim = d["simulate"]
            say(f"simulating {sim['users']:,} users x {sim['products']:,} products x {sim['days']} days")
            res = generate(SimConfig(**sim), out, progress=True)
            return StepResult({"data": str(out)}, {"rows": getattr(res, "rows", {})})
        if d["source"] == "import":
            from pipelines.importers import get_format
            from pipelines.importers.driver import import_logs

            imp = d["import"]
            if not imp:
                raise StepFailed("data.source is 'import' but the data.import section is missing")
            say(f"importing {imp['format']} from {imp['input']}")
            share = cfg["validate"]["max_quarantine_share"]
            rep = import_logs(
                get_format(imp["format"]), imp["input"], out, overwrite=True, max_quarantine_share=share
            )
            rep.raise_for_threshold()
            return StepResult(
                {"data": str(out)}, {"import": str(rep.out_dir)}, digest=file_digest([Path(imp["input"])])
            )
        if not (out / "events.parquet").exists():
            raise StepFailed(f"data.dir {out} holds no events.parquet")
        return StepResult({"data": str(out)}, {}, digest=file_digest([out]))

    def validate(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        from features.validation import ValidationRules, validate_dir

        out = Path(up["data"].outputs["data"])
        say(f"validating {out}")
        rules = ValidationRules()
        if cfg["data"]["source"] == "import" and cfg["data"]["import"]:
            from pipelines.importers import get_format

            # The importer's own earliest plausible time (MovieLens 100k is from 1997, before the
            # default 2000-01-01), or every row it accepted would be quarantined here.
            rules = ValidationRules(min_ts=get_format(cfg["data"]["import"]["format"]).min_ts)
        rep = validate_dir(out, cfg["validate"]["max_quarantine_share"], rules=rules)
        rep.raise_for_threshold()
        return StepResult({"data": str(out)}, _validation_figures(rep))

    def features(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        from features.store import build_feature_store

        fs = _feature_settings(state_dir, cfg)
        say(f"building features ({fs.online_store} online store)")
        rep = build_feature_store(up["validate"].outputs["data"], fs)
        figures = {
            "offline rows": sum(rep.offline_rows.values()),
            **{f"{k} s": round(v, 1) for k, v in rep.seconds.items()},
        }
        return StepResult({"registry": str(fs.registry_path)}, figures)

    def train(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        from features.retrieval import FeastFeatureReader
        from training.run import train as run_train

        s = _train_settings(state_dir, cfg)
        reader = FeastFeatureReader(_feature_settings(state_dir, cfg))
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        rep = run_train(Path(up["validate"].outputs["data"]), s, reader, lambda m: say(f"train: {m}"),
                        again=cfg["train"]["again"])  # fmt: skip
        k = s.k
        keep = (
            "test_auc",
            "test_logloss",
            f"test_popularity_ndcg_at_{k}",
            f"test_als_ndcg_at_{k}",
            f"test_als_ranker_ndcg_at_{k}",
        )
        figures: dict[str, Any] = {key: round(rep.metrics[key], 4) for key in keep if key in rep.metrics}
        # registered False: the latest version had the same data, settings and code (training.rerun)
        figures.update({"model version": rep.version, "mlflow run": rep.run_id, "registered": rep.registered})
        return StepResult({"mlflow": str(s.state_dir / "mlflow")}, figures, digest=f"{rep.run_id}")

    def evaluate(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        from pipelines.cli import main

        e = cfg["evaluate"]
        out = state_dir / "reports" / f"pipeline-{up['train'].digest}"
        say(f"evaluating {', '.join(e['policies'])}")
        held_out = e.get("test_fraction") or _train_settings(state_dir, cfg).split.test
        args = ["evaluate", "--data", up["validate"].outputs["data"], "--policies", ",".join(e["policies"]),
                "--k", str(e["k"]), "--out", str(out), "--test-fraction", str(held_out),
                "--n-boot", str(e["n_boot"]), "--max-users", str(e["max_users"]),
                "--max-requests", str(e["max_requests"])]  # fmt: skip
        code = main(args)
        if code == 130:  # Ctrl-C inside the nested command: the run stops, it did not fail
            raise KeyboardInterrupt
        if code != 0:
            raise StepFailed(f"`slotcast {' '.join(args)}` exited with {code}")
        return StepResult({"report": str(out / "report.html")}, _evaluation_figures(out / "metrics.json"))

    def promote(cfg: Mapping[str, Any], up: Mapping[str, StepResult]) -> StepResult:
        from features.retrieval import FeastFeatureReader
        from training.promote import promote as run_promote

        s = _train_settings(state_dir, cfg)
        fs = _feature_settings(state_dir, cfg)
        rep = run_promote(s, Path(up["validate"].outputs["data"]), lambda: FeastFeatureReader(fs),
                          force=cfg["promote"]["force"], progress=lambda m: say(f"promote: {m}"))  # fmt: skip
        r = rep.result
        figures = {"promoted": rep.promoted, "challenger": rep.challenger_version,
                   "champion before": rep.champion_version or "-", "reason": r.reason}  # fmt: skip
        return StepResult({}, figures)

    # fmt: off
    return [
        Step("data", data, (), ("data", "validate"), description="simulate a world or import a log"),
        Step("validate", validate, ("data",), ("validate",), description="validate rows, quarantine bad ones"),
        Step("features", features, ("validate",), ("features",), description="offline features, feast apply, materialize"),
        Step("train", train, ("validate", "features"), ("train",), description="ALS + LightGBM ranker, register challenger"),
        Step("promote", promote, ("validate", "train"), ("promote",), description="gate the challenger into champion"),
        Step("evaluate", evaluate, ("validate", "train", "promote"), ("evaluate",),
             description="replay + off-policy report: champion vs challenger"),
    ]
    # fmt: on


def _validation_figures(rep: Any) -> dict[str, Any]:
    counts = rep.tables.values()
    return {
        "rows read": sum(c.read for c in counts),
        "accepted": sum(c.accepted for c in counts),
        "quarantined": sum(c.quarantined for c in counts),
    }


def _evaluation_figures(metrics_json: Path) -> dict[str, Any]:
    """Replay nDCG per policy and the carousel SNIPS estimate per policy, from the report's metrics.json."""
    if not metrics_json.exists():
        return {}
    result = json.loads(metrics_json.read_text())
    figures: dict[str, Any] = {}
    for row in result.get("replay") or []:
        ndcg = (row.get("means") or {}).get("ndcg")
        if isinstance(ndcg, (int, float)):
            figures[f"replay nDCG@{row.get('k')} {row.get('policy')}"] = round(float(ndcg), 4)
    estimates = ((result.get("ope") or {}).get("carousel") or {}).get("estimates") or {}
    for policy, by_estimator in estimates.items():
        snips = by_estimator.get("snips") or by_estimator.get("on_policy")
        if snips and isinstance(snips.get("value"), (int, float)):
            figures[f"carousel value {policy}"] = round(float(snips["value"]), 5)
    # simulated worlds only: the policy's true expected value on the same held-out carousels
    for policy, value in ((result.get("truth") or {}).get("carousel") or {}).items():
        if isinstance(value, (int, float)):
            figures[f"carousel true value per 1000 {policy}"] = round(1000 * float(value), 2)
    return figures
