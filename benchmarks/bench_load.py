"""Load: the saturation rate of /carousel, then 80% of it held for a minute with no error allowed.

    .venv/bin/python -m benchmarks.bench_load [--hold-seconds 60] [--step-seconds 6] [--workers 1]

1. Ramp: ``wrk`` (closed loop, from a second process on loopback) at concurrency 1, 2, 4, 8, 16;
   the saturation rate is the highest throughput seen (more concurrency only adds queueing).
2. Hold: an open-loop client sends requests at 80% of that rate on a fixed schedule for
   ``--hold-seconds``; each latency is measured from the request's *scheduled* time, so a stalled
   server shows up in p99 instead of silently slowing the client (no coordinated omission).
   Every non-200 answer and every transport error counts as an error.
The server is the real ``bentoml serve`` on the demo world (``pipelines.service_process``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_serving import LUA_CAROUSEL, run_wrk


def hold(base: str, rate: float, seconds: float, users: int, streams: int, pool: int = 32) -> dict[str, Any]:
    """Open loop: request i is due at t0 + i / rate; latency counts from that due time.

    The client is the standard library's keep-alive ``http.client`` (one connection per thread):
    on a 2-core box a heavier client takes CPU from the server it measures."""
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(base).hostname, urlsplit(base).port

    n = int(rate * seconds)
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    reconnects = [0]

    def send(body: str) -> tuple[int, bytes]:
        c = getattr(local, "c", None)
        fresh = c is None
        if c is None:
            c = local.c = http.client.HTTPConnection(host, port, timeout=30)
        try:
            c.request("POST", "/carousel", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            local.c = None
            c.close()
            if fresh:
                raise
            # The server closed this idle keep-alive connection (uvicorn's keep-alive timeout) before
            # the request reached it: resend once on a new connection, as HTTP clients do, and count it.
            with lock:
                reconnects[0] += 1
            return send(body)

    def one(i: int, due: float) -> None:
        body = json.dumps({"user_id": (i * 7919) % users, "stream_id": i % streams, "k": 8})
        try:
            status, text = send(body)
            ok = status == 200
            why = f"HTTP {status}: {text[:120]!r}"
        except (OSError, http.client.HTTPException) as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
            local.c = None
        with lock:
            lat.append(time.perf_counter() - due)
            if not ok:
                errors.append(why)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(pool) as ex:
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ex.submit(one, i, due)
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [float("nan")] * 99
    return {
        "target_rps": rate, "sent": n, "achieved_rps": n / wall, "errors": len(errors),
        "first_errors": errors[:3], "stale_connection_resends": reconnects[0], "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": max(lat) * 1000,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hold-seconds", type=float, default=60.0, help="how long 80%% of saturation is held")
    p.add_argument("--step-seconds", type=int, default=6, help="seconds per ramp step")
    p.add_argument("--levels", default="1,2,4,8,16", help="wrk concurrency levels of the ramp")
    p.add_argument("--share", type=float, default=0.8, help="share of the saturation rate held")
    p.add_argument("--workers", type=int, default=1, help="BentoML worker processes")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--products", type=int, default=1000)
    p.add_argument("--streams", type=int, default=10)
    p.add_argument("--per-stream", type=int, default=100, help="on-air products per stream")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    from pipelines.service_process import running_service

    work = Path(tempfile.mkdtemp(prefix="slotcast-load-"))
    lua = work / "carousel.lua"
    lua.write_text(
        LUA_CAROUSEL.replace("%USERS%", str(args.users - 1)).replace("%STREAMS%", str(args.streams - 1))
    )
    env = {
        "SLOTCAST_STATE_DIR": str(work / "state"), "SLOTCAST_MODEL_SOURCE": "demo", "SLOTCAST_FEATURE_SOURCE": "demo",
        "SLOTCAST_DEMO_USERS": str(args.users), "SLOTCAST_DEMO_PRODUCTS": str(args.products),
        "SLOTCAST_DEMO_STREAMS": str(args.streams), "SLOTCAST_DEMO_PER_STREAM": str(args.per_stream),
        "BENTOML_DO_NOT_TRACK": "true", "OPENBLAS_NUM_THREADS": "1",
    }  # fmt: skip
    report: dict[str, Any] = {"ramp": []}
    with running_service(env=env, log_path=work / "service.log", workers=args.workers) as base:
        run_wrk(f"{base}/carousel", lua, 2, 2, 1)  # warm-up
        for c in (int(x) for x in args.levels.split(",")):
            r = run_wrk(f"{base}/carousel", lua, c, args.step_seconds, min(c, 2))
            report["ramp"].append({"concurrency": c, **r})
            print(f"ramp c={c:3d}  {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
                  f"non-2xx {int(r['non2xx'])}", flush=True)  # fmt: skip
        sat = max(r["rps"] for r in report["ramp"])
        report["saturation_rps"] = sat
        print(f"saturation {sat:.1f} req/s; holding {args.share:.0%} = {args.share * sat:.1f} req/s "
              f"for {args.hold_seconds:.0f} s", flush=True)  # fmt: skip
        report["hold"] = hold(base, args.share * sat, args.hold_seconds, args.users, args.streams)
    h = report["hold"]
    print(f"hold: {h['sent']} requests at {h['achieved_rps']:.1f} req/s, errors {h['errors']}, "
          f"p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, max {h['max_ms']:.1f} ms")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0 if h["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
