"""`slotcast privacy purge` on the MLflow registry: erasing deleted users from every version.

    uv run --frozen python -m benchmarks.bench_registry_purge [--users 1000000] [--factors 64]
        [--items 50000] [--versions 5] [--deleted 100] [--out FILE]

Registers ``--versions`` versions of a bundle of ``--users`` users x ``--factors`` ALS factors
(float32, what training saves) in a local MLflow store (SQLite + file artifacts, the default) in a
temporary state directory; puts ``--deleted`` of its users in the deletion ledger; then runs the
command in a process of its own, twice: the first purge rewrites every version, the second finds
nothing left and only fetches each version's two id files. Then the registry step alone, in
process, the same two ways (for as many users more). Side by side, a plain download of every
version (``download_artifacts``, what serving's load starts with) as the yardstick. Reports wall
times and the command's peak RSS, then checks every version: the users gone, the rest unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from benchmarks.bench_purge import erased_in, run_purge


def _bundle(users: int, factors: int, items: int, rng: np.random.Generator, out: Path) -> Path:
    """A bundle of the given size (factors drawn at random: the purge never looks at values)."""
    from models.als import ALSCandidateGenerator, ALSConfig
    from models.bundle import Bundle
    from models.popularity import PopularityModel
    from models.vocab import IdVocab

    small = sp.random(64, 64, density=0.2, format="csr", random_state=0, dtype=np.float32)
    als = ALSCandidateGenerator(ALSConfig(factors=factors, iterations=1, num_threads=1))
    als.fit(small, IdVocab(np.arange(64)), IdVocab(np.arange(64)))
    als._model.user_factors = rng.standard_normal((users, factors), dtype=np.float32)
    als._model.item_factors = rng.standard_normal((items, factors), dtype=np.float32)
    als.users, als.items = IdVocab(np.arange(users) * 7 + 3), IdVocab(np.arange(items))
    pop = PopularityModel().fit(rng.integers(items, size=100_000), None)
    return Bundle.create(als, pop, None, "ranker_v1").save(out)


def _timed_purge(state: Path) -> tuple[float, float, int]:
    wall, peak, printed = run_purge(state)
    return wall, peak, erased_in(printed, "(versions)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--deleted", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

    import mlflow

    from features.privacy import DeletionLedger
    from pipelines.purge import registry_purge
    from training.registry import load_bundle, register_bundle
    from training.settings import TrainSettings
    from training.tracking import configure, experiment_id

    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-registry-purge-") as tmp:
        state = Path(tmp) / "state"
        settings = TrainSettings(state_dir=state)  # type: ignore[call-arg]
        t = time.perf_counter()
        local = _bundle(args.users, args.factors, args.items, rng, Path(tmp) / "bundle")
        size_mb = sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) / 2**20
        client = configure(settings)
        for _ in range(args.versions):
            run = client.create_run(experiment_id(client, settings))
            register_bundle(client, run.info.run_id, local, settings.registered_model)
        print(
            f"registered {args.versions} versions of a {size_mb:.0f} MB bundle in {time.perf_counter() - t:.1f} s"
        )
        held = np.arange(args.users) * 7 + 3
        gone = rng.choice(held, size=args.deleted, replace=False)
        DeletionLedger(state).add_many(int(u) for u in gone)

        t = time.perf_counter()
        for v in range(1, args.versions + 1):  # the yardstick: fetch every version once
            with tempfile.TemporaryDirectory(dir=tmp) as dl:
                mlflow.artifacts.download_artifacts(f"models:/{settings.registered_model}/{v}", dst_path=dl)
        download = time.perf_counter() - t
        first, first_peak, erased = _timed_purge(state)
        again, again_peak, erased_again = _timed_purge(state)
        assert erased == args.versions * args.deleted and erased_again == 0, (erased, erased_again)
        # The registry step alone, in process (no interpreter start, no imports): more users deleted.
        more = rng.choice(np.setdiff1d(held, gone), size=args.deleted, replace=False)
        gone = np.concatenate([gone, more])
        step = registry_purge(settings)
        inproc = []
        for _ in range(2):  # the rewrite, then nothing new
            t = time.perf_counter()
            place = step({int(u) for u in gone}, lambda *_: None, failed := [])
            inproc.append(time.perf_counter() - t)
            assert place is not None and not failed, failed
        assert place.records == 0
        for v in range(1, args.versions + 1):
            b = load_bundle(settings.registered_model, str(v))  # checksums verify
            assert len(b.als.users) == args.users - gone.size
            assert not np.isin(b.als.users.ids, gone).any()
            keep = b.als.users.ids[:1000]
            rows = ((keep - 3) // 7).astype(np.int64)
            assert np.array_equal(b.als.user_factors[:1000], _bundle_rows(local, rows)), v

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users, "factors": args.factors, "items": args.items, "versions": args.versions,
        "deleted": args.deleted, "bundle_mb": round(size_mb),
        "download_every_version_s": round(download, 2),
        "purge_rewrite_s": round(first, 2), "purge_rewrite_peak_rss_mb": round(first_peak),
        "purge_nothing_new_s": round(again, 2), "purge_nothing_new_peak_rss_mb": round(again_peak),
        "registry_step_rewrite_s": round(inproc[0], 2), "registry_step_nothing_new_s": round(inproc[1], 2),
        "registry_step_rewrite_vs_download": round(inproc[0] / download, 2),
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _bundle_rows(bundle: Path, rows: np.ndarray) -> np.ndarray:
    """Rows of the bundle's user factors as first saved (before any purge)."""
    with np.load(bundle / "als" / "als.npz", allow_pickle=False) as data:
        return np.asarray(data["user_factors"][rows])


if __name__ == "__main__":
    raise SystemExit(main())
