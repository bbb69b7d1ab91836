"""Serving benchmark: /carousel against a no-op BentoML endpoint in the same server, and push
audience ranking of 1M users x 20 products.

HTTP: starts ``bentoml serve serving.service:Slotcast`` on the demo world (``--per-stream`` on-air
products per stream) and drives it with ``wrk`` from a second process on loopback, alternating
no-op and carousel rounds so that machine noise hits both; reports medians and their ratio. Two
no-ops: ``/noop`` (``{"x": 1}`` in, a dict out: BentoML's bare floor) and ``/noop/carousel`` (the
carousel's request model in, a fixed 8-slot CarouselResponse out: BentoML plus the carousel's
schemas, without the pipeline).
Push: in-process, ``Recommender.push`` for one product over an audience of ``--push-users``.

By default the carousel runs on the built-in demo world (``SLOTCAST_MODEL_SOURCE=demo``: a
logistic ranker and in-memory features standing in for the real ones). ``--state DIR`` runs it on
a built pipeline state instead, as ``slotcast serve`` would: the MLflow champion (ALS + LightGBM),
the Feast online store and the world's catalogue, with requests for real users in streams at
moments when ``--min-on-air`` or more products are on air (``benchmarks/serving_requests.py``).
The service appends its impression log under that state's ``serving/``.

    .venv/bin/python -m benchmarks.bench_serving --rounds 3 --duration 10
    .venv/bin/python -m benchmarks.bench_serving --state STATE --skip-push
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
    done = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": _ms(lat.get("50", "")), "p99_ms": _ms(lat.get("99", "")),
            "requests": float(done.group(1)) if done else 0.0,
            "non2xx": float(errors.group(1)) if errors else 0.0, "socket_errors": 1.0 if sock else 0.0}  # fmt: skip


def server_cpu_s(marker: str) -> float:
    """CPU seconds (user + system) used so far by every process whose environment holds ``marker``
    (the service's own state directory): the BentoML parent and its workers. CPU per request is the
    steady figure on a shared box, where wall-clock throughput depends on everyone else's load."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() not in (proc / "environ").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone, or not ours to read
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
    return total / tick


def bench_http(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from pipelines.service_process import running_service

    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="slotcast-bench-"))
    (work / "noop.lua").write_text(LUA_NOOP)
    common = {
        "BENTOML_DO_NOT_TRACK": "true", "OPENBLAS_NUM_THREADS": "1",
        "SLOTCAST_RERANK_SHORTLIST": str(args.rerank_shortlist),
        "SLOTCAST_RERANK_ON_AIR": str(not args.shortlist_streams).lower(),
        "SLOTCAST_BENCH_MARKER": str(work),  # finds the server's processes for server_cpu_s
    }  # fmt: skip
    if args.state is not None:
        from benchmarks.serving_requests import lua_script, state_requests

        bodies = state_requests(Path(args.state) / "data", args.state_requests, args.min_on_air)
        (work / "carousel.lua").write_text(lua_script("carousel", bodies))
        (work / "noop_carousel.lua").write_text(lua_script("noop/carousel", bodies))
        env = {**common, "SLOTCAST_STATE_DIR": str(Path(args.state).resolve())}
    else:
        (work / "carousel.lua").write_text(
            LUA_CAROUSEL.replace("%USERS%", str(args.users - 1)).replace("%STREAMS%", str(args.streams - 1))
        )
        (work / "noop_carousel.lua").write_text(
            (work / "carousel.lua").read_text().replace('"/carousel"', '"/noop/carousel"')
        )
        env = {
            **common, "SLOTCAST_STATE_DIR": str(work / "state"), "SLOTCAST_MODEL_SOURCE": "demo",
            "SLOTCAST_FEATURE_SOURCE": "demo", "SLOTCAST_DEMO_USERS": str(args.users),
            "SLOTCAST_DEMO_PRODUCTS": str(args.products), "SLOTCAST_DEMO_STREAMS": str(args.streams),
            "SLOTCAST_DEMO_PER_STREAM": str(args.per_stream),
        }  # fmt: skip
    routes = {"noop": "noop", "noop_carousel": "noop/carousel", "carousel": "carousel"}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in routes}
    with running_service(env=env, log_path=work / "service.log", workers=args.workers) as base:
        for name, route in routes.items():  # warm-up
            run_wrk(f"{base}/{route}", work / f"{name}.lua", args.concurrency, 2, args.threads)
        for r in range(args.rounds):
            for name, route in routes.items():
                cpu = server_cpu_s(str(work))
                res = run_wrk(
                    f"{base}/{route}", work / f"{name}.lua", args.concurrency, args.duration, args.threads
                )
                res["server_cpu_ms"] = (server_cpu_s(str(work)) - cpu) * 1000 / max(res["requests"], 1.0)
                results[name].append(res)
                print(f"round {r + 1} {name:13s} {res['rps']:8.1f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                      f"p99 {res['p99_ms']:6.2f} ms  server CPU {res['server_cpu_ms']:5.2f} ms/req  "
                      f"non-2xx {int(res['non2xx'])}", flush=True)  # fmt: skip
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


def lightgbm_ranker(tables: dict, trees: int) -> object:
    """A LightGBM ranker on the demo world's features, shaped like the demo pipeline's champion
    (10 leaves; ~260 trees after early stopping), served the way a bundle is (SingleThreadRanker):
    the demo's logistic ranker costs nothing, a real forest is a large part of a carousel."""
    import numpy as np
    import pandas as pd

    from models.ranker import LightGBMRanker, RankerConfig
    from serving.adapters import SingleThreadRanker
    from serving.demo import FEATURES

    rng = np.random.default_rng(0)
    n = 20_000
    X = pd.DataFrame({
        "als_score": rng.normal(0, 1, n), "price": rng.uniform(5, 100, n),
        "product_conversion": rng.uniform(0, 0.6, n), "user_activity": rng.poisson(2, n).astype(float),
    })[FEATURES]  # fmt: skip
    z = 1.5 * X["als_score"] + 4 * X["product_conversion"] - 0.01 * X["price"] + rng.logistic(size=n)
    config = RankerConfig(n_estimators=trees, num_leaves=10, early_stopping_rounds=None, num_threads=1)
    return SingleThreadRanker(LightGBMRanker(config).fit(X, (z > 0).astype(int)))


def _percentiles(cpu: list[float], wall: list[float]) -> dict[str, float]:
    import numpy as np

    return {"cpu_p50_ms": float(np.median(cpu) * 1000), "cpu_p99_ms": float(np.percentile(cpu, 99) * 1000),
            "wall_p50_ms": float(np.median(wall) * 1000), "wall_p99_ms": float(np.percentile(wall, 99) * 1000)}  # fmt: skip


def bench_inprocess_state(args: argparse.Namespace) -> dict[str, float]:
    """The same on a built state: the app ``slotcast serve`` runs (MLflow champion, Feast online
    store, the world's catalogue), called without HTTP."""
    from benchmarks.serving_requests import state_requests
    from serving.runtime import SlotcastApp
    from serving.schemas import CarouselRequest
    from serving.settings import ServingSettings

    app = SlotcastApp.from_settings(
        ServingSettings(
            state_dir=Path(args.state).resolve(),
            rerank_shortlist=args.rerank_shortlist,
            rerank_on_air=not args.shortlist_streams,
        )
    )
    ok, why = app.ready()
    if not ok:
        sys.exit(f"the service on {args.state} is not ready: {why}")
    n = args.inprocess_requests
    reqs = [
        CarouselRequest.model_validate(b)
        for b in state_requests(Path(args.state) / "data", n + 50, args.min_on_air, seed=1)
    ]
    cpu, wall, personal = [], [], 0
    for i, req in enumerate(reqs):
        c, w = time.process_time(), time.perf_counter()
        out = app.carousel(req)
        if i >= 50:  # warm-up excluded
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
            personal += out.personalized and not out.degraded
    app.close()
    print(f"in-process on {args.state}: {personal} of {n} answers personalized and not degraded")
    return _percentiles(cpu, wall)


def bench_inprocess(args: argparse.Namespace) -> dict[str, float]:
    """CPU time of one carousel in the pipeline (no HTTP): robust to a machine shared with others."""
    if args.state is not None:
        return bench_inprocess_state(args)

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
    if args.ranker == "lightgbm":
        models = Models(**{**models.__dict__, "ranker": lightgbm_ranker(tables, args.trees)})
    rec = Recommender(
        lambda: (models, None), DemoFeatureSource(tables), Catalog(tables), None,
        PipelineConfig(rerank_shortlist=args.rerank_shortlist, rerank_on_air=not args.shortlist_streams),
    )  # fmt: skip
    cpu, wall = [], []
    for i in range(args.inprocess_requests + 50):
        req = CarouselRequest(user_id=i % args.users, stream_id=i % args.streams, k=8)
        c, w = time.process_time(), time.perf_counter()
        rec.carousel(req)
        if i >= 50:  # warm-up excluded
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
    return _percentiles(cpu, wall)


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
    p.add_argument(
        "--ranker",
        choices=("demo", "lightgbm"),
        default="lightgbm",
        help="in-process ranker: the demo's logistic one, or a LightGBM forest as a bundle serves it",
    )
    p.add_argument("--trees", type=int, default=260, help="trees of the in-process LightGBM ranker")
    p.add_argument(
        "--rerank-shortlist",
        type=int,
        default=50,
        help="with --shortlist-streams: candidates the ranker scores per carousel (SLOTCAST_RERANK_SHORTLIST)",
    )
    p.add_argument(
        "--shortlist-streams",
        action="store_true",
        help="shortlist a stream's on-air products too (SLOTCAST_RERANK_ON_AIR=false; before 2026-11-23 "
        "the only way, and the one the earlier serving figures measured); default: rerank them all",
    )
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        help="a built pipeline state (slotcast pipeline run): serve its champion and Feast store, not the demo world",
    )
    p.add_argument(
        "--min-on-air", type=int, default=90, help="with --state: products on air per requested moment"
    )
    p.add_argument(
        "--state-requests", type=int, default=2000, help="with --state: distinct request bodies for wrk"
    )
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--skip-push", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(f"# slotcast serving benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, cmd: {' '.join(sys.argv)}")
    ip = bench_inprocess(args)
    what = (f"{args.state}, champion bundle, >= {args.min_on_air} on air" if args.state is not None
            else f"demo world, {args.per_stream} on-air candidates, {args.ranker} ranker")  # fmt: skip
    reranked = (
        f"shortlist {args.rerank_shortlist}" if args.shortlist_streams else "every on-air product reranked"
    )
    print(f"in-process carousel ({what}, {reranked}): CPU p50 {ip['cpu_p50_ms']:.2f} ms p99 "
          f"{ip['cpu_p99_ms']:.2f} ms; wall p50 {ip['wall_p50_ms']:.2f} ms p99 {ip['wall_p99_ms']:.2f} ms", flush=True)  # fmt: skip
    if not args.skip_http:
        h = bench_http(args)
        for name in h:
            m = h[name]
            print(f"median {name:13s} {m['rps']:.1f} req/s p50 {m['p50_ms']:.2f} ms p99 {m['p99_ms']:.2f} ms, "
                  f"server CPU {m['server_cpu_ms']:.2f} ms/req")  # fmt: skip
        for noop in ("noop", "noop_carousel"):
            ratio = h["carousel"]["rps"] / h[noop]["rps"]
            cpu_ratio = h[noop]["server_cpu_ms"] / h["carousel"]["server_cpu_ms"]
            print(f"carousel/{noop} throughput ratio {ratio:.2f} (target >= 0.60); server CPU ratio "
                  f"{noop}/carousel {cpu_ratio:.2f} (the throughput ratio a CPU-bound server would show)")  # fmt: skip
        print("carousel p99 target <= 20 ms at concurrency 8")
    if not args.skip_push:
        r = bench_push(args)
        print(f"median push ranking {args.push_users} x {args.push_products}: {r['median_s']:.2f} s (target <= 10 s); "
              f"catalogue load {r['catalog_load_s']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
