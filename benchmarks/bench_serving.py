"""Serving benchmark: /carousel against a no-op BentoML endpoint in the same server, and push
audience ranking of 1M users x 20 products.

HTTP: starts ``bentoml serve serving.service:Slotcast`` on the demo world (``--per-stream`` on-air
products per stream) and drives it with ``wrk`` from a second process on loopback, alternating
no-op and carousel rounds so that machine noise hits both; reports medians and their ratio.
Push: in-process, ``Recommender.push`` for one product over an audience of ``--push-users``.

    .venv/bin/python -m benchmarks.bench_serving --rounds 3 --duration 10
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

LUA_CAROUSEL = """
math.randomseed(os.time())
request = function()
  local body = string.format('{"user_id": %d, "stream_id": %d, "k": 8}', math.random(0, %USERS%), math.random(0, %STREAMS%))
  return wrk.format("POST", "/carousel", {["Content-Type"] = "application/json"}, body)
end
"""
LUA_NOOP = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"x": 1}'
"""


def _ms(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run_wrk(url: str, script: Path, concurrency: int, duration: int, threads: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": _ms(lat.get("50", "")), "p99_ms": _ms(lat.get("99", "")),
            "non2xx": float(errors.group(1)) if errors else 0.0, "socket_errors": 1.0 if sock else 0.0}  # fmt: skip


def bench_http(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from pipelines.service_process import running_service

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="slotcast-bench-"))
    (work / "carousel.lua").write_text(
        LUA_CAROUSEL.replace("%USERS%", str(args.users - 1)).replace("%STREAMS%", str(args.streams - 1))
    )
    (work / "noop.lua").write_text(LUA_NOOP)
    env = {
        "SLOTCAST_STATE_DIR": str(work / "state"), "SLOTCAST_MODEL_SOURCE": "demo", "SLOTCAST_FEATURE_SOURCE": "demo",
        "SLOTCAST_DEMO_USERS": str(args.users), "SLOTCAST_DEMO_PRODUCTS": str(args.products),
        "SLOTCAST_DEMO_STREAMS": str(args.streams), "SLOTCAST_DEMO_PER_STREAM": str(args.per_stream),
        "BENTOML_DO_NOT_TRACK": "true", "OPENBLAS_NUM_THREADS": "1",
    }  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {"noop": [], "carousel": []}
    with running_service(env=env, log_path=work / "service.log", workers=args.workers) as base:
        for name in ("noop", "carousel"):  # warm-up
            run_wrk(f"{base}/{name}", work / f"{name}.lua", args.concurrency, 2, args.threads)
        for r in range(args.rounds):
            for name in ("noop", "carousel"):
                res = run_wrk(
                    f"{base}/{name}", work / f"{name}.lua", args.concurrency, args.duration, args.threads
                )
                results[name].append(res)
                print(f"round {r + 1} {name:9s} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                      f"p99 {res['p99_ms']:6.2f} ms  non-2xx {int(res['non2xx'])}", flush=True)  # fmt: skip
    return {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()
    }


def bench_push(args: argparse.Namespace) -> dict[str, float]:
    import numpy as np
    import pyarrow as pa

    from features.data_model import conform
    from serving.catalog import Catalog
    from serving.demo import DemoFeatureSource, DemoModelSource, FactorModel, demo_tables
    from serving.pipeline import PipelineConfig, Recommender
    from serving.schemas import PushRequest
    from serving.sources import Models

    n = args.push_users
    tables = demo_tables(n_users=200, n_products=200, seed=0)
    # A million users, all in community 0, with a week of push history for the frequency cap.
    uid = np.arange(n, dtype=np.int64)
    tables["users"] = conform(
        "users",
        pa.table(
            {"user_id": uid, "consent_personalization": np.ones(n, bool), "consent_marketing": uid % 10 != 0}
        ),
    )
    tables["memberships"] = conform(
        "memberships", pa.table({"community_id": np.zeros(n, np.int64), "user_id": uid})
    )
    t0 = time.perf_counter()
    catalog = Catalog(tables, segments={})
    load_s = time.perf_counter() - t0
    base = DemoModelSource(200, 200, 0.1, 3).load("champion")
    als = FactorModel(n, 200, dim=args.factors)
    models = Models(**{**base.__dict__, "als": als})
    rec = Recommender(
        lambda: (models, None), DemoFeatureSource(tables), catalog, None, PipelineConfig(quiet_hours=(0, 0))
    )
    req = PushRequest(community_id=0, campaign_products=list(range(args.push_products)), max_users=n)
    times = []
    for _ in range(args.push_repeats):
        t = time.perf_counter()
        out = rec.push(req, now=datetime.now(UTC))
        times.append(time.perf_counter() - t)
        print(
            f"push {n} users x {args.push_products} products: {times[-1]:.2f} s ({len(out.users.user_id)} users returned)",
            flush=True,
        )
    return {
        "median_s": statistics.median(times),
        "catalog_load_s": load_s,
        "returned": float(len(out.users.user_id)),
    }


def bench_inprocess(args: argparse.Namespace) -> dict[str, float]:
    """CPU time of one carousel in the pipeline (no HTTP): robust to a machine shared with others."""
    import numpy as np

    from serving.adapters import make_policy
    from serving.catalog import Catalog
    from serving.demo import DemoFeatureSource, DemoModelSource, demo_tables
    from serving.pipeline import PipelineConfig, Recommender
    from serving.schemas import CarouselRequest
    from serving.settings import ServingSettings
    from serving.sources import Models

    tables = demo_tables(args.users, args.products, args.streams, args.per_stream)
    base = DemoModelSource(args.users, args.products, 0.1, 3).load("champion")
    models = Models(**{**base.__dict__, "policy": make_policy(ServingSettings())})
    rec = Recommender(
        lambda: (models, None), DemoFeatureSource(tables), Catalog(tables), None, PipelineConfig()
    )
    cpu, wall = [], []
    for i in range(args.inprocess_requests + 50):
        req = CarouselRequest(user_id=i % args.users, stream_id=i % args.streams, k=8)
        c, w = time.process_time(), time.perf_counter()
        rec.carousel(req)
        if i >= 50:  # warm-up excluded
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    return {"cpu_p50_ms": float(np.median(cpu) * 1000), "cpu_p99_ms": float(np.percentile(cpu, 99) * 1000),
            "wall_p50_ms": float(np.median(wall) * 1000), "wall_p99_ms": float(np.percentile(wall, 99) * 1000)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternating no-op/carousel rounds")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=1, help="BentoML workers")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--products", type=int, default=1000)
    p.add_argument("--streams", type=int, default=10)
    p.add_argument("--per-stream", type=int, default=100, help="on-air products per stream")
    p.add_argument("--push-users", type=int, default=1_000_000)
    p.add_argument("--push-products", type=int, default=20)
    p.add_argument("--push-repeats", type=int, default=3)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--inprocess-requests", type=int, default=500)
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--skip-push", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"# slotcast serving benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, cmd: {' '.join(sys.argv)}")
    ip = bench_inprocess(args)
    print(f"in-process carousel ({args.per_stream} on-air candidates): CPU p50 {ip['cpu_p50_ms']:.2f} ms p99 "
          f"{ip['cpu_p99_ms']:.2f} ms; wall p50 {ip['wall_p50_ms']:.2f} ms p99 {ip['wall_p99_ms']:.2f} ms", flush=True)  # fmt: skip
    if not args.skip_http:
        h = bench_http(args)
        ratio = h["carousel"]["rps"] / h["noop"]["rps"]
        print(
            f"median no-op    {h['noop']['rps']:.1f} req/s p50 {h['noop']['p50_ms']:.2f} ms p99 {h['noop']['p99_ms']:.2f} ms"
        )
        print(
            f"median carousel {h['carousel']['rps']:.1f} req/s p50 {h['carousel']['p50_ms']:.2f} ms p99 {h['carousel']['p99_ms']:.2f} ms"
        )
        print(f"carousel/no-op throughput ratio {ratio:.2f} (target >= 0.60); carousel p99 target <= 20 ms")
    if not args.skip_push:
        r = bench_push(args)
        print(f"median push ranking {args.push_users} x {args.push_products}: {r['median_s']:.2f} s (target <= 10 s); "
              f"catalogue load {r['catalog_load_s']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
