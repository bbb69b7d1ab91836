"""`slotcast data import` / `data validate` through the CLI: messages and exit codes (0, 1, 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main

LINES = [f"{i % 5},{100 + i % 9},{i % 4},pv,{1511544070 + i}" for i in range(40)]


def test_import_then_validate_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "UserBehavior.csv"
    src.write_text("\n".join(LINES[:19] + ["garbled"] + LINES[20:]) + "\n")
    out = tmp_path / "data"
    assert (
        main(
            ["data", "import", "--format", "taobao", "--input", str(src), "--out", str(out), "--no-progress"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "read = accepted + quarantined: 40 = 39 + 1 lines" in text
    assert "UserBehavior.csv:20: expected 5 fields" in text
    assert main(["data", "validate", "--data", str(out)]) == 0
    text = capsys.readouterr().out
    assert "events: read = accepted + quarantined: 39 = 39 + 0" in text


def test_threshold_exit_1_and_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "UserBehavior.csv"
    src.write_text("\n".join(LINES[:30] + ["x"] * 10) + "\n")
    args = ["data", "import", "-f", "taobao", "-i", str(src), "-o", str(tmp_path / "a"), "--no-progress"]
    assert main(args) == 1
    assert "25.00% of the lines were quarantined" in capsys.readouterr().err.replace("\n", " ")
    assert (
        main([*args[:-3], "-o", str(tmp_path / "b"), "--max-quarantine-share", "0.3", "--no-progress"]) == 0
    )
    capsys.readouterr()
    assert main(["data", "import", "-f", "retailrocket", "-i", str(src), "-o", str(tmp_path / "c")]) == 2
    assert "the header must name" in capsys.readouterr().err
    assert main(["data", "import", "-f", "parquet", "-i", str(src)]) == 2
    capsys.readouterr()
    # File content quoted in a message must not be read as rich markup (a '[/x]' would crash the printout).
    odd = tmp_path / "events.csv"
    odd.write_text("[/x],[bold]\n")
    assert main(["data", "import", "-f", "retailrocket", "-i", str(odd), "-o", str(tmp_path / "d")]) == 2
    assert "found '[/x],[bold]'" in capsys.readouterr().err


@pytest.mark.slow
def test_installed_command_names_file_and_line_of_a_truncated_input(tmp_path: Path) -> None:
    src = tmp_path / "UserBehavior.csv"
    src.write_text("\n".join(LINES[:5]) + "\n1,100,2,pv,151")
    exe = Path(sys.executable).with_name("slotcast")
    env = {**os.environ, "SLOTCAST_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    proc = subprocess.run(
        [str(exe), "data", "import", "-f", "taobao", "-i", str(src), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{src}:6: the file ends mid-line" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [
            str(exe),
            "data",
            "import",
            "-f",
            "taobao",
            "-i",
            str(src),
            "--allow-truncated",
            "--max-quarantine-share",
            "0.2",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        tmp_path / "state" / "data" / "events.parquet"
    ).exists()  # the default --out is $SLOTCAST_STATE_DIR/data


def test_validate_exit_1_over_threshold_and_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa

    from features.data_model import write_table

    d = tmp_path / "data"
    write_table(
        d,
        "users",
        pa.table({"user_id": [1, 2], "consent_personalization": [True] * 2, "consent_marketing": [True] * 2}),
    )
    write_table(d, "products", pa.table({"product_id": [1, 2], "price": [5.0, -5.0]}))
    write_table(
        d,
        "events",
        pa.table(
            {
                "event_id": [1],
                "ts": pa.array([1_700_000_000_000_000], pa.timestamp("us", tz="UTC")),
                "user_id": [1],
                "type": ["like"],
            }
        ),
    )
    assert main(["data", "validate", "--data", str(d), "--dry-run", "--max-quarantine-share", "0.6"]) == 0
    assert "products: read = accepted + quarantined: 2 = 1 + 1" in capsys.readouterr().out
    assert not (d / "quarantine.parquet").exists()  # a dry run writes nothing
    assert main(["data", "validate", "--data", str(d)]) == 1
    assert "quarantined share above 5.00% in products" in capsys.readouterr().err.replace("\n", " ")
    assert (d / "quarantine.rejected.parquet").exists() and not (d / "quarantine.parquet").exists()
