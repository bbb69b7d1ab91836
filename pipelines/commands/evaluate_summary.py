"""The console summary `slotcast evaluate` prints: replay, off-policy estimates per log with the
comparisons' verdicts, the simulator's truth, and the notes."""

from __future__ import annotations

from typing import Any


def print_summary(console: Any, result: dict[str, Any], k: int) -> None:
    from rich.table import Table

    if result["replay"]:  # none when the logging policy is evaluated alone
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
        if block.get("reward_model"):
            console.print(f"{kind}: DR reward model: {block['reward_model']}")
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
