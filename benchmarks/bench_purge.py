"""`slotcast privacy purge` at size: the service's event log and a data directory's events table.

    uv run --frozen python -m benchmarks.bench_purge [--log-lines 2000000] [--table-rows 10000000]
        [--users 200000] [--deleted 100] [--out FILE]

Writes, in a temporary state directory, an event log of ``--log-lines`` records (as the service
writes them: compact JSON, 64 MiB segments) over ``--users`` users, and an events table of
``--table-rows`` rows in ``$STATE/data``; puts ``--deleted`` random users in the deletion ledger;
then runs the purge (``pipelines.purge.purge``, what the command runs) and reports wall time,
lines and rows per second, and the peak RSS of the process. Then checks the result: no record of
a deleted user is left, the other users' records and the file sizes of the log are unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEGMENT_BYTES = 64 << 20


def _write_log(directory: Path, users: np.ndarray, rng: np.random.Generator) -> list[Path]:
    directory.mkdir(parents=True)
    paths: list[Path] = []
    size, out = SEGMENT_BYTES, None
    t0 = 1_790_000_000_000_000
    types = ["product_view", "product_click", "add_to_cart", "purchase", "stream_view"]
    for i, u in enumerate(users):
        if size >= SEGMENT_BYTES:
            if out is not None:
                out.close()
            paths.append(directory / f"events-{len(paths):05d}-r0w0-1.jsonl")
            out, size = open(paths[-1], "w", encoding="utf-8"), 0  # noqa: SIM115 - closed above/below
        rec = {"event_id": i + 1, "user_id": int(u), "type": types[i % 5], "product_id": int(rng.integers(5000)),
               "stream_id": int(i % 40), "ts": "2026-11-24T08:00:00+00:00", "ts_us": t0 + i,
               "watch_seconds": None}  # fmt: skip
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        out.write(line)  # type: ignore[union-attr]
        size += len(line)
    if out is not None:
        out.close()
    return paths


# The command in a process of its own; its peak RSS from /proc (VmHWM: this process image's own;
# getrusage would count the pages of the benchmark it was forked from, 1 GB of table, too).
_CHILD = """import sys
from pathlib import Path
from pipelines.cli import main
code = main(sys.argv[1:])
print(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")))
sys.exit(code)
"""


def erased_in(printed: str, name: str) -> int:
    """The records erased in the purge command's table row for the place ending in ``name``."""
    for line in printed.splitlines():
        cells = [c.strip() for c in re.split(r"[│|]", line) if c.strip()]
        if len(cells) == 4 and cells[0].endswith(name):
            return int(cells[2].replace(",", ""))
    raise AssertionError(f"no row for {name} in:\n{printed}")


def run_purge(state: Path) -> tuple[float, float, str]:
    """``slotcast privacy purge`` on ``state`` in a process of its own: (wall seconds, peak RSS in
    MB, what it printed, one table row a line)."""
    env = {**os.environ, "SLOTCAST_STATE_DIR": str(state), "COLUMNS": "200"}
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", _CHILD, "privacy", "purge"],
                         env=env, capture_output=True, text=True, check=False)  # fmt: skip
    wall = time.perf_counter() - t
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    print(run.stdout)
    return wall, int(re.findall(r"VmHWM:\s*(\d+) kB", run.stdout)[-1]) / 1024, run.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log-lines", type=int, default=2_000_000)
    ap.add_argument("--table-rows", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--deleted", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    from features.data_model import write_table
    from features.privacy import DeletionLedger
    from pipelines.purge import purge

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-purge-") as tmp:
        state = Path(tmp)
        log_users = rng.integers(args.users, size=args.log_lines)
        t = time.perf_counter()
        segments = _write_log(state / "serving" / "events", log_users, rng)
        n = args.table_rows
        table_users = rng.integers(args.users, size=n)
        events = pa.table({
            "event_id": np.arange(n, dtype=np.int64), "ts": pa.array(np.full(n, 1_790_000_000_000_000), pa.timestamp("us", "UTC")),
            "user_id": table_users, "type": pa.array(np.array(["product_view", "purchase"])[np.arange(n) % 2]),
            "product_id": rng.integers(5000, size=n), "stream_id": rng.integers(40, size=n),
        })  # fmt: skip
        write_table(state / "data", "events", events)
        del events
        print(f"wrote {args.log_lines:,} log lines in {len(segments)} segments and {n:,} table rows "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        gone = {int(u) for u in rng.choice(args.users, size=args.deleted, replace=False)}
        DeletionLedger(state).add_many(gone)
        expect_lines = int(np.isin(log_users, list(gone)).sum())
        expect_rows = int(np.isin(table_users, list(gone)).sum())
        sizes = [p.stat().st_size for p in segments]

        wall, peak_mb, printed = run_purge(state)
        erased = [erased_in(printed, "serving"), erased_in(printed, "data")]
        assert erased == [expect_lines, expect_rows], (erased, expect_lines, expect_rows)
        assert [p.stat().st_size for p in segments] == sizes
        left = pq.read_table(state / "data" / "events.parquet", columns=["user_id"]).column("user_id")
        assert left.length() == n - expect_rows and not np.isin(left.to_numpy(), list(gone)).any()
        for path in segments:  # nothing of theirs left, the rest as written
            with open(path, "rb") as f:
                for raw in f:
                    if raw.strip():
                        assert json.loads(raw)["user_id"] not in gone
        # the logs alone again, in process, to split the wall time: nothing is left to erase
        t = time.perf_counter()
        assert purge(state, [], contextlib.nullcontext).erased == 0
        log_only = time.perf_counter() - t

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "log_lines": args.log_lines, "segments": len(segments), "log_bytes": sum(sizes),
        "table_rows": n, "users": args.users, "deleted": args.deleted,
        "erased_log_lines": expect_lines, "erased_table_rows": expect_rows,
        "purge_command_wall_s": round(wall, 2), "purge_command_peak_rss_mb": round(peak_mb),
        "log_scan_again_s": round(log_only, 2), "log_lines_per_s": round(args.log_lines / log_only),
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
