"""The demo's last act: start the service on the champion, call it once per use case, print the answers.

The service runs as a child process group (pipelines.service_process) that is taken down on exit
and on Ctrl-C, so the demo leaves no stray processes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
from rich.console import Console
from rich.table import Table

from features.data_model import table_path
from pipelines.service_process import running_service
from pipelines.settings import PipelineSettings


def pick_examples(data_dir: Path | str, state_dir: Path | str | None = None) -> dict[str, Any]:
    """A consenting, active viewer; the stream with the most products on air on the last day; a community.

    With ``state_dir``, the viewer is none the service would answer without personalization: not
    deleted, and not one who withdrew consent since the users table (``PUT /users/{id}/consent``)."""
    con = duckdb.connect()
    ev, users = table_path(data_dir, "events"), table_path(data_dir, "users")
    sp, comm = table_path(data_dir, "stream_products"), table_path(data_dir, "communities")
    left_out = sorted(_not_personal(state_dir)) if state_dir is not None else []
    user = con.execute(
        f"""select e.user_id from '{ev}' e join '{users}' u using (user_id)
            where u.consent_personalization and e.type = 'stream_view'
              and not list_contains(?::bigint[], e.user_id)
            group by e.user_id order by count(*) desc, e.user_id limit 1""",
        [left_out],
    ).fetchone()
    stream = (
        con.execute(
            f"""select stream_id from '{sp}' group by stream_id
            order by max(on_air_from) desc, count(*) desc, stream_id limit 1"""
        ).fetchone()
        if sp.exists()
        else None
    )
    community = con.execute(f"select min(community_id) from '{comm}'").fetchone() if comm.exists() else None
    out: dict[str, Any] = {"user_id": int(user[0]) if user else 1}
    if stream:
        out["stream_id"] = int(stream[0])
        # A simulated world lies in the past: ask for the moment its stream had the most products on air.
        at = con.execute(
            f"""select t.on_air_from, min(s.on_air_to) from '{sp}' t join '{sp}' s
                  on s.stream_id = t.stream_id and s.on_air_from <= t.on_air_from
                 and (s.on_air_to is null or t.on_air_from < s.on_air_to)
                where t.stream_id = ? group by t.on_air_from order by count(*) desc, t.on_air_from limit 1""",
            [out["stream_id"]],
        ).fetchone()
        if at:
            out["at"] = _whole_second_within(at[0], at[1])
    if community and community[0] is not None:
        out["community_id"] = int(community[0])
    return out


def _not_personal(state_dir: Path | str) -> set[int]:
    """The users the service answers without personalization whatever the users table says: those
    in the deletion ledger, and those who withdrew consent (given back, they start as new users)."""
    from features.consent import ConsentLedger
    from features.privacy import DeletionLedger

    consent = ConsentLedger(state_dir)
    return DeletionLedger(state_dir).user_ids() | set(consent.withdrawals())


def _whole_second_within(start: datetime, end: datetime | None) -> str:
    """``start`` rounded up to a whole second, if the products on air then still are: a time printed
    and pasted without its microseconds must not fall before the products came on air."""
    up = start + timedelta(microseconds=(1_000_000 - start.microsecond) % 1_000_000)
    if end is not None and up >= end:
        return start.isoformat()
    return up.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(console: Console, title: str, body: dict[str, Any], rows_key: str, cols: tuple[str, ...]) -> None:
    rows = body.get(rows_key) or []
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows[:10]:
        table.add_row(*(f"{r.get(c):.4f}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols))
    console.print(table)
    meta = {k: v for k, v in body.items() if k != rows_key}
    console.print(f"[dim]{json.dumps(meta, default=str)[:400]}[/dim]")


def call_service(data_dir: Path | None = None, report: str | None = None) -> None:
    """Start the service, call /carousel and /community/push once, print the answers and where things
    are: ``data_dir`` is the pipeline's data (the examples' source), ``report`` its evaluation report."""
    console = Console()
    settings = PipelineSettings()
    state = settings.state_dir.resolve()
    data_dir = Path(data_dir or state / "data")
    ex = pick_examples(data_dir, state)
    log_path = state / "serving" / "demo-service.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"starting the service (log: {log_path}) ...")
    with running_service(log_path=log_path) as base:
        carousel: dict[str, Any] = {
            "user_id": ex["user_id"],
            "k": 6,
            **{key: ex[key] for key in ("stream_id", "at") if key in ex},
        }
        console.print(f"\nPOST {base}/carousel {json.dumps(carousel)}")
        r = httpx.post(f"{base}/carousel", json=carousel, timeout=30)
        body = r.json()
        if r.status_code != 200:
            console.print(f"[red]{r.status_code}[/red] {body}")
        else:
            _show(console, "livestream carousel", body, "slots",
                  ("slot", "product_id", "score", "p_convert", "expected_value", "reason"))  # fmt: skip
        product = next((s["product_id"] for s in body.get("slots", [])), None)
        push: dict[str, Any] = {"max_users": 5}
        push.update(
            {"community_id": ex["community_id"]} if "community_id" in ex else {"segment": "high_value_loyal"}
        )
        if product is not None:
            push["product_id"] = product
        if "at" in ex:  # the carousel's moment of a simulated world: members, cap and offer as then
            push["at"] = ex["at"]
        console.print(f"\nPOST {base}/community/push {json.dumps(push)}")
        r = httpx.post(f"{base}/community/push", json=push, timeout=60)
        pb = r.json()
        if r.status_code != 200:
            console.print(f"[red]{r.status_code}[/red] {pb}")
        else:
            if pb.get("direction") == "users":
                cols = pb.get("users") or {}
                pb["users"] = [
                    dict(zip(cols, row, strict=False)) for row in zip(*cols.values(), strict=False)
                ]
                _show(
                    console,
                    "community push audience",
                    pb,
                    "users",
                    ("user_id", "product_id", "p_convert", "expected_value"),
                )
            else:
                _show(
                    console,
                    "community push products",
                    pb,
                    "products",
                    ("product_id", "p_convert", "expected_value"),
                )
    where_next(console, state, report)


def where_next(console: Console, state: Path, report: str | None) -> None:
    """The MLflow UI, the evaluation report (the pipeline's; without one, the latest of any run) and
    the OpenAPI page."""
    if report is None:
        reports = sorted((state / "reports").glob("*/report.html"), key=lambda p: p.stat().st_mtime)
        report = str(reports[-1]) if reports else "(none yet: slotcast evaluate)"
    console.print("\n[bold]Where to look next[/bold]")
    console.print(
        f"  MLflow UI:          uv run mlflow ui --backend-store-uri sqlite:///{state}/mlflow/mlflow.db  -> http://127.0.0.1:5000"
    )
    console.print(f"  evaluation report:  {report}")
    console.print("  OpenAPI page:       uv run slotcast serve, then http://127.0.0.1:3000/ (every route)")
    console.print("  (the demo service has been stopped)")
