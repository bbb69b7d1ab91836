"""Pipeline wall time and peak memory at several world sizes (issue 7: 1M, 3M, 10M events).

Each size runs `slotcast pipeline run` in a fresh state directory as a child process; wall time
per step comes from the pipeline's cache records, peak RSS from the child's rusage (the largest
resident set of the process tree's processes). Time per event must not grow by more than 1.3x
from the smallest to the largest size.

    python -m benchmarks.bench_pipeline --sizes 1m,3m,10m [--keep]
    python -m benchmarks.bench_pipeline --sizes 1m,3m,10m --state ROOT[,ROOT2] --from evaluate

The second form reruns from a step on worlds a kept run left (ROOT/NAME with its config ROOT/NAME.yaml):
the steps before it stay cached, their seconds are read from the first run's records, and wall, CPU
and peak RSS are those of the rerun steps alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# Users, products and days chosen so the simulator yields roughly the named number of events.
SIZES = {
    "100k": {"users": 15_000, "products": 1_500, "days": 14},
    "1m": {"users": 100_000, "products": 5_000, "days": 21},
    "3m": {"users": 300_000, "products": 15_000, "days": 21},
    "10m": {"users": 1_000_000, "products": 50_000, "days": 21},
}


def run_size(
    name: str, spec: dict[str, int], root: Path, policies: str, from_step: str | None = None
) -> dict[str, object]:
    state = root / name
    cfg_path = root / f"{name}.yaml"
    if from_step is None:
        cfg = {
            "name": f"bench-{name}",
            "data": {"source": "simulate", "simulate": {**spec, "seed": 1}},
            "evaluate": {"policies": policies.split(","), "k": 6},
        }
        cfg_path.write_text(yaml.safe_dump(cfg))
    elif not cfg_path.exists():
        raise SystemExit(f"{cfg_path} is missing: --from reuses a world a --keep run left there")
    env = {**os.environ, "SLOTCAST_STATE_DIR": str(state), "OPENBLAS_NUM_THREADS": "1"}
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = usage0.ru_maxrss
    load = os.getloadavg()
    t0 = time.perf_counter()
    rerun = ["--from", from_step] if from_step else []
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "pipeline", "run", "--config", str(cfg_path), *rerun],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = usage1.ru_maxrss
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(
            f"{name}: pipeline failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    steps = {}
    for rec in sorted((state / "pipeline").glob("*.json")):
        r = json.loads(rec.read_text())
        steps[r["step"]] = r["seconds"]
    import pyarrow.parquet as pq

    events = pq.ParquetFile(state / "data" / "events.parquet").metadata.num_rows
    all_steps = sum(steps.values())
    return {
        "size": name,
        "events": events,
        "from": from_step or "data",
        "load_avg_at_start": [round(x, 2) for x in load],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_us_per_event": round(cpu / events * 1e6, 2),
        "peak_rss_gb": round(max(peak_kb, before) / 1024 / 1024, 2),
        "steps_s": steps,
        # every step's recorded seconds (those before --from come from the run that built the world)
        "all_steps_s": round(all_steps, 1),
        "us_per_event": round(all_steps / events * 1e6, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1m,3m,10m", help=f"comma-separated, from {', '.join(SIZES)}")
    ap.add_argument(
        "--policies", default="popular,als,als+ranker,champion", help="policies the evaluate step scores"
    )
    ap.add_argument("--keep", action="store_true", help="keep the state directories")
    ap.add_argument(
        "--state", help="comma-separated roots of kept worlds (ROOT/NAME, ROOT/NAME.yaml); needs --from"
    )
    ap.add_argument("--from", dest="from_step", help="rerun from this step on the kept worlds of --state")
    args = ap.parse_args()
    if bool(args.state) != bool(args.from_step):
        ap.error("--state and --from go together")
    roots = [Path(r) for r in args.state.split(",")] if args.state else []
    root = Path(tempfile.mkdtemp(prefix="slotcast-bench-pipeline-")) if not roots else roots[0]
    rows = []
    for name in args.sizes.split(","):
        if roots:  # the root that holds this size's world
            root = next((r for r in roots if (r / f"{name}.yaml").exists()), roots[0])
        row = run_size(name, SIZES[name], root, args.policies, args.from_step)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if len(rows) > 1:
        growth = rows[-1]["us_per_event"] / rows[0]["us_per_event"]  # type: ignore[operator]
        cpu_growth = rows[-1]["cpu_us_per_event"] / rows[0]["cpu_us_per_event"]  # type: ignore[operator]
        print(
            json.dumps(
                {
                    "time_per_event_growth": round(growth, 2),
                    "cpu_time_per_event_growth": round(cpu_growth, 2),
                    "target": "<= 1.3",
                }
            )
        )
    if not args.keep and not roots:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
