"""The evaluation report: matplotlib PNGs, one HTML page that shows them, a metrics JSON, and the
MLflow run that keeps all three as artifacts.

The input is the plain dict ``training.evaluation.run.evaluate`` returns (JSON-ready), so a report
can be re-rendered from a saved metrics.json.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

REPLAY_PLOT_METRICS = ("recall", "ndcg", "map", "hit_rate")


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _bars(
    ax,
    groups: list[str],
    series: dict[str, list[float]],
    lo: dict[str, list[float]],
    hi: dict[str, list[float]],
):  # type: ignore[no-untyped-def]
    """Grouped bars with asymmetric CI error bars; one series per policy."""
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(groups))
    for j, (name, vals) in enumerate(series.items()):
        v = np.asarray(vals, dtype=float)
        err = np.vstack([v - np.asarray(lo[name]), np.asarray(hi[name]) - v]) if name in lo else None
        ax.bar(x + (j - (n - 1) / 2) * width, v, width, yerr=err, capsize=3, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.grid(axis="y", alpha=0.3)


def plot_replay(replay: list[dict[str, Any]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {r["policy"]: [r["means"][m] for m in REPLAY_PLOT_METRICS] for r in replay}
    lo = {r["policy"]: [r["ci"][m][0] for m in REPLAY_PLOT_METRICS] for r in replay}
    hi = {r["policy"]: [r["ci"][m][1] for m in REPLAY_PLOT_METRICS] for r in replay}
    k = replay[0]["k"] if replay else "k"
    _bars(ax, [f"{m}@{k}" for m in REPLAY_PLOT_METRICS], series, lo, hi)
    ax.set_title(f"Replay on held-out time ({replay[0]['n_users'] if replay else 0} users; 95% bootstrap CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_segments(replay: list[dict[str, Any]], path: Path, metric: str = "recall") -> Path:
    plt = _plt()
    segs = sorted({s for r in replay for s in r["per_segment"]})
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {r["policy"]: [r["per_segment"].get(s, {}).get(metric, math.nan) for s in segs] for r in replay}
    users = {s: max(r["per_segment"].get(s, {}).get("users", 0) for r in replay) for s in segs}
    _bars(ax, [f"{s}\n({users[s]} users)" for s in segs], series, {}, {})
    ax.set_title(f"{metric}@{replay[0]['k'] if replay else 'k'} per segment")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ope(
    ope: dict[str, dict[str, Any]], path: Path, title: str, truth: dict[str, float] | None = None
) -> Path:
    """Estimates per policy and estimator with CI bars; the true value as a black tick when known."""
    plt = _plt()
    policies = list(ope)
    estimators = sorted({e for v in ope.values() for e in v})
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {e: [ope[p].get(e, {}).get("value", math.nan) for p in policies] for e in estimators}
    lo = {e: [ope[p].get(e, {}).get("ci_low", math.nan) for p in policies] for e in estimators}
    hi = {e: [ope[p].get(e, {}).get("ci_high", math.nan) for p in policies] for e in estimators}
    _bars(ax, policies, series, lo, hi)
    if truth:
        x = np.arange(len(policies))
        tv = [truth.get(p, math.nan) for p in policies]
        ax.scatter(x, tv, marker="_", s=900, color="black", linewidths=2.5, zorder=5, label="true value")
    ax.set_ylabel("expected reward per request")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Reliability table: mean prediction vs observed rate per quantile bin of the prediction."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(edges.size - 2, 0))
    n = np.bincount(idx, minlength=max(edges.size - 1, 1))
    ok = n > 0
    mean_p = np.bincount(idx, weights=p, minlength=n.size)[ok] / n[ok]
    rate = np.bincount(idx, weights=y, minlength=n.size)[ok] / n[ok]
    return {
        "mean_predicted": mean_p.tolist(),
        "observed_rate": rate.tolist(),
        "count": n[ok].astype(int).tolist(),
    }


def plot_calibration(cal: dict[str, list[float]], path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    mp, rate = cal["mean_predicted"], cal["observed_rate"]
    top = max([*mp, *rate, 1e-3]) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect")
    ax.plot(mp, rate, marker="o", label="model")
    ax.set_xlabel("mean predicted p_convert")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def truth_per_1000(result: dict[str, Any]) -> tuple[str, list[str], list[list[Any]]]:
    """The simulator's true value of every policy on the held-out logged requests, per 1000 requests.

    Returns (title, headers, rows): one row per policy, one column per log (carousel, push). With
    ``--reward purchased`` (the default) these are the true expected conversions; an empty row list
    when no truth was supplied.
    """
    truth = result.get("truth") or {}
    reward = (result.get("params") or {}).get("reward", "purchased")
    what = {"purchased": "conversions", "clicked": "clicks"}.get(reward, reward)
    kinds = [k for k in ("carousel", "push") if truth.get(k)]
    policies = list(dict.fromkeys(p for k in kinds for p in truth[k]))
    rows = [[p, *[1000 * truth[k][p] if p in truth[k] else "" for k in kinds]] for p in policies]
    return f"true expected {what} per 1000 requests", [f"{k} ({what})" for k in kinds], rows


def write_report(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Render PNGs, report.html and metrics.json into ``out_dir``; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    parts = [f"<h1>slotcast offline evaluation</h1><p>{html.escape(result.get('summary', ''))}</p>"]
    replay = result.get("replay") or []
    if replay:
        paths["replay"] = plot_replay(replay, out / "replay_metrics.png")
        paths["segments"] = plot_segments(replay, out / "replay_segments.png")
        metrics = ["recall", "ndcg", "map", "hit_rate", "coverage", "novelty"]
        rows = [[r["policy"], *[r["means"][m] for m in metrics]] for r in replay]
        parts += ["<h2>Replay on held-out time</h2>", _table(["policy", *metrics], rows),
                  '<img src="replay_metrics.png"><img src="replay_segments.png">']  # fmt: skip
    for kind, block in (result.get("ope") or {}).items():
        name = f"ope_{kind}.png"
        truth = (result.get("truth") or {}).get(kind)
        paths[f"ope_{kind}"] = plot_ope(
            block["estimates"], out / name, f"Off-policy value, {kind} log", truth
        )
        rows = [
            [pol, est, e["value"], e["ci_low"], e["ci_high"], e["ess"], (truth or {}).get(pol, "")]
            for pol, ests in block["estimates"].items()
            for est, e in ests.items()
        ]
        parts.append(f"<h2>Off-policy estimates: {kind} ({block['n_requests']} requests)</h2>")
        if block.get("reward_model"):  # none when the logging policy is evaluated alone
            parts.append(f"<p>DR reward model: {html.escape(block['reward_model'])}</p>")
        parts += [_table(["policy", "estimator", "value", "CI low", "CI high", "ESS", "true value"], rows),
                  f'<img src="{name}">']  # fmt: skip
        for cmp_ in block.get("comparisons") or []:
            rows = [[c["estimator"], c["champion"], c["challenger"], c["diff"], c["ci_low"], c["ci_high"], c["verdict"]]
                    for c in cmp_["by_estimator"].values()]  # fmt: skip
            parts += [f"<h3>{html.escape(cmp_['challenger'])} vs {html.escape(cmp_['champion'])}</h3>",
                      _table(["estimator", "champion", "challenger", "diff", "CI low", "CI high", "verdict"], rows)]  # fmt: skip
    title, headers, rows = truth_per_1000(result)
    if rows:
        parts += [f"<h2>Simulator ground truth: {html.escape(title)}</h2>",
                  "<p>Each policy's top-k slate on every held-out logged request, valued with the "
                  "simulator's own probabilities (TrueWorld), not estimated.</p>",
                  _table(["policy", *headers], rows)]  # fmt: skip
    for name, cal in (result.get("calibration") or {}).items():
        fname = "calibration_" + "".join(ch if ch.isalnum() else "_" for ch in name) + ".png"
        paths[f"calibration_{name}"] = plot_calibration(cal, out / fname, f"Calibration: {name}")
        parts += [f"<h2>Calibration: {html.escape(name)}</h2>", f'<img src="{fname}">']
    for note in result.get("notes") or []:
        parts.append(f"<p class='note'>{html.escape(note)}</p>")
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}" \
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}.note{color:#a60}"  # fmt: skip
    paths["html"] = out / "report.html"
    paths["html"].write_text(f"<!doctype html><meta charset=utf-8><title>slotcast evaluation</title>"
                             f"<style>{style}</style>{''.join(parts)}\n", encoding="utf-8")  # fmt: skip
    paths["json"] = out / "metrics.json"
    paths["json"].write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    return paths


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics for MLflow: replay.<policy>.<metric>, ope.<kind>.<policy>.<estimator>, diffs."""
    out: dict[str, float] = {}
    for r in result.get("replay") or []:
        for m, v in r["means"].items():
            out[f"replay.{r['policy']}.{m}"] = float(v)
    for kind, block in (result.get("ope") or {}).items():
        for pol, ests in block["estimates"].items():
            for est, e in ests.items():
                out[f"ope.{kind}.{pol}.{est}"] = float(e["value"])
        for cmp_ in block.get("comparisons") or []:
            for est, c in cmp_["by_estimator"].items():
                out[f"ope.{kind}.diff.{est}"] = float(c["diff"])
    for kind, values in (result.get("truth") or {}).items():
        for pol, v in values.items():
            out[f"truth.{kind}.{pol}"] = float(v)
    # MLflow metric names allow only [A-Za-z0-9_\-. /]
    return {
        "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in k): v
        for k, v in out.items()
        if math.isfinite(v)
    }


def log_to_mlflow(
    result: dict[str, Any], out_dir: str | Path, settings: Any = None, experiment: str = "slotcast-evaluation"
) -> str:
    """One MLflow run holding the metrics and the report directory as artifacts; returns its run id.

    The store is training's (``training.settings.TrainSettings``: SLOTCAST_MLFLOW_TRACKING_URI, else
    SQLite under the state directory), with artifacts under the state directory too.
    """
    from training import tracking
    from training.settings import TrainSettings

    base = settings if settings is not None else TrainSettings()  # type: ignore[call-arg]
    st = base.model_copy(update={"experiment_name": experiment})
    client = tracking.configure(st)
    run = client.create_run(tracking.experiment_id(client, st), run_name="evaluate")
    run_id = str(run.info.run_id)
    try:
        tracking.log_params(client, run_id, result.get("params") or {})
        tracking.log_metrics(client, run_id, flat_metrics(result))
        client.log_artifacts(run_id, str(out_dir), artifact_path="report")
    except Exception:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id)
    return run_id
