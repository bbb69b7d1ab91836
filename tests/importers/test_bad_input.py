"""Truncated, garbled and foreign files: a clear error naming file and line, or an exact quarantine."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.data_model import read_table
from pipelines.importers import InputFormatError, import_logs

GOOD = [
    f"{i % 5},{100 + i % 9},{i % 4},{('pv', 'fav', 'cart', 'buy')[i % 4]},{1511544070 + i}" for i in range(60)
]


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_truncated_last_line_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    src = write(tmp_path / "UserBehavior.csv", "\n".join(GOOD[:3]) + "\n1,100,2,pv,15115")
    with pytest.raises(InputFormatError) as err:
        import_logs("taobao", src, tmp_path / "out")
    assert f"{src}:4:" in str(err.value) and "--allow-truncated" in str(err.value)
    assert err.value.exit_code == 2
    assert not (tmp_path / "out" / "events.parquet").exists()


def test_allow_truncated_quarantines_the_cut_line(tmp_path: Path) -> None:
    src = write(tmp_path / "UserBehavior.csv", "\n".join(GOOD[:3]) + "\n1,100,2,p")
    report = import_logs("taobao", src, tmp_path / "out", allow_truncated=True, max_quarantine_share=0.5)
    assert (report.read, report.accepted, report.quarantined) == (4, 3, 1)
    (row,) = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert (row["row"], row["raw"]) == (4, "1,100,2,p")
    assert row["reason"].startswith("truncated last line: expected 5 fields")


def test_a_complete_last_line_without_newline_is_fine(tmp_path: Path) -> None:
    src = write(tmp_path / "UserBehavior.csv", "\n".join(GOOD[:3]))
    assert import_logs("taobao", src, tmp_path / "out").accepted == 3


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    blob = gzip.compress(("\n".join(GOOD * 50) + "\n").encode())
    src = write(tmp_path / "UserBehavior.csv.gz", blob[: len(blob) // 2])
    with pytest.raises(
        InputFormatError, match=r"UserBehavior\.csv\.gz:\d+: the file ends early or is corrupt"
    ):
        import_logs("taobao", src, tmp_path / "out")


@pytest.mark.parametrize(
    ("fmt", "content", "expected"),
    [
        ("taobao", b"\x89PNG\r\n\x1a\n\x00\x00binary", "does not look like a taobao"),
        (
            "taobao",
            "timestamp,visitorid,event,itemid,transactionid\n1,2,view,3,\n",
            "does not look like a taobao",
        ),
        ("retailrocket", "1,10,5,pv,1511544070\n", "the header must name"),
        ("movielens", "a;b;c\n", "not a MovieLens ratings file"),
        ("yoochoose", "1\t2\n", "expected 4 fields"),
    ],
)
def test_a_foreign_or_garbled_file_is_an_error_naming_line_one(
    tmp_path: Path, fmt: str, content: bytes | str, expected: str
) -> None:
    src = write(tmp_path / "input.dat", content)
    with pytest.raises(InputFormatError, match=expected) as err:
        import_logs(fmt, src, tmp_path / "out")
    assert str(err.value).startswith(f"{src}:1:")


def test_bad_lines_inside_a_good_file_are_quarantined_with_their_numbers(tmp_path: Path) -> None:
    lines = list(GOOD[:10])
    lines[3] = ""  # blank
    lines[5] = "1,100,2,pv,15115\xff\xfe"  # not UTF-8
    lines[7] = "1,100,2,pv,1511544070,extra"
    blob = (
        "\n".join(lines).encode("utf-8", "surrogateescape").replace("\xff\xfe".encode(), b"\xff\xfe") + b"\n"
    )
    src = write(tmp_path / "UserBehavior.csv", blob)
    report = import_logs("taobao", src, tmp_path / "out", max_quarantine_share=0.5)
    assert (report.read, report.accepted, report.quarantined) == (10, 7, 3)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(r["row"], r["reason"]) for r in q] == [
        (4, "blank line"),
        (6, "not valid UTF-8 text"),
        (8, "expected 5 fields separated by ',', found 6"),
    ]
    assert q[1]["raw"].startswith("1,100,2,pv,15115")


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        ("", "blank line"),
        ("user_id,item_id,category_id,behavior_type,timestamp", "unknown behavior_type"),  # a header
        ("1,100,2,teleport,1511544070", "unknown behavior_type"),
    ],
)
def test_a_good_file_whose_first_line_alone_is_bad_is_imported_with_it_quarantined(
    tmp_path: Path, first: str, reason: str
) -> None:
    """Line 1 decided alone whether a file was of the format: one bad first line refused a whole
    good file (exit 2). Now most of the opening lines must fail for that; otherwise line 1 is
    quarantined with its reason like any other line."""
    src = write(tmp_path / "UserBehavior.csv", "\n".join([first, *GOOD[:19]]) + "\n")
    report = import_logs("taobao", src, tmp_path / "out")
    assert (report.read, report.accepted, report.quarantined) == (20, 19, 1)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [r["row"] for r in q] == [1] and q[0]["reason"].startswith(reason), q
    # Mostly bad opening lines are still another format: refused, naming line 1.
    mixed = "\n".join([first, *(["a,b"] * 6), *GOOD[:13]]) + "\n"
    with pytest.raises(InputFormatError, match="does not look like a taobao") as err:
        import_logs("taobao", write(tmp_path / "other.csv", mixed), tmp_path / "out2")
    assert str(err.value).startswith(f"{tmp_path / 'other.csv'}:1:")


@pytest.mark.parametrize(
    ("fmt", "name", "lines"),
    [
        (
            "taobao",
            "UserBehavior.csv",
            ["+1,+10,5,pv,+1511544070", "2,11,6,buy,1511544071", "++3,12,7,pv,1511544072"],
        ),
        (
            "movielens",
            "u.data",
            ["+196\t+242\t+3\t+881250949", "186\t302\t5\t891717742", "++22\t377\t4\t878887116"],
        ),
        (
            "retailrocket",
            "events.csv",
            [
                "timestamp,visitorid,event,itemid,transactionid",
                "+1433221332117,+257597,view,+355908,",
                "1433224214164,992329,addtocart,248676,",
                "1433224214999,++992329,transaction,248676,4000",
            ],
        ),
        (
            "yoochoose",
            "yoochoose-buys.dat",
            [
                "+1,2014-04-07T11:00:00.000Z,+10,+1046,+2",
                "2,2014-04-07T11:00:00.000Z,11,50,1",
                "++3,2014-04-07T11:00:00.000Z,12,9,1",
            ],
        ),
    ],
)
def test_a_plus_sign_on_an_integer_is_read_as_the_validators_read_it(
    tmp_path: Path, fmt: str, name: str, lines: list[str]
) -> None:
    """'+1' was an unparseable integer (quarantined; on line 1 the whole file 'did not look like'
    its format) while '+3' as a rating or a price was read: now integers read it too, everywhere
    the validators parse, and a doubled sign is still quarantined with its reason."""
    src = write(tmp_path / name, "\n".join(lines) + "\n")
    report = import_logs(fmt, src, tmp_path / "out", max_quarantine_share=0.5)
    assert (report.read, report.accepted, report.quarantined) == (3, 2, 1)
    first = read_table(tmp_path / "out", "events").to_pylist()[0]
    assert (first["user_id"], first["product_id"]) in {(1, 10), (196, 242), (257597, 355908)}
    (row,) = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert row["reason"] == "unparseable user_id" and row["raw"] == lines[-1]


def test_output_dir_with_data_is_refused_unless_overwrite(tmp_path: Path) -> None:
    src = write(tmp_path / "UserBehavior.csv", "\n".join(GOOD[:5]) + "\n")
    import_logs("taobao", src, tmp_path / "out")
    with pytest.raises(InputFormatError, match="already holds data"):
        import_logs("taobao", src, tmp_path / "out")
    assert import_logs("taobao", src, tmp_path / "out", overwrite=True).accepted == 5


def test_over_the_threshold_only_the_rejected_lines_are_written(tmp_path: Path) -> None:
    src = write(tmp_path / "UserBehavior.csv", "\n".join(GOOD[:5] + ["x"] * 5) + "\n")
    report = import_logs("taobao", src, tmp_path / "out", max_quarantine_share=0.2)
    assert not report.ok and not report.written
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["quarantine.rejected.parquet"]
    assert pq.read_table(tmp_path / "out" / "quarantine.rejected.parquet").column("row").to_pylist() == [
        6,
        7,
        8,
        9,
        10,
    ]


bad_line = st.one_of(
    st.just(""),
    st.text(alphabet=st.characters(blacklist_characters="\n\r,", codec="utf-8"), max_size=30),  # one field
    st.lists(st.text(alphabet="abc,;x9 ", max_size=4), min_size=2, max_size=8)
    .map(",".join)
    .filter(lambda s: s.count(",") != 4),
    st.sampled_from(
        [
            "1,2,3,teleport,1511544070",
            "1,2,3,pv,-5",
            "1,2,3,pv,soon",
            "a,2,3,pv,1511544070",
            "1,,3,pv,1511544070",
        ]
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(st.integers(1, len(GOOD) - 1), bad_line), max_size=12),
    st.sampled_from([64, 200, 1 << 16]),
)
def test_garbled_lines_are_exactly_the_quarantined_ones(
    tmp_path: Path, garble: list[tuple[int, str]], block: int
) -> None:
    lines = list(GOOD)
    for i, text in garble:
        lines[i] = text
    bad = sorted({i + 1 for i, _ in garble})
    work = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example: hypothesis may replay an example
    out = work / "out"
    src = write(work / "UserBehavior.csv", "\n".join(lines) + "\n")
    report = import_logs("taobao", src, out, max_quarantine_share=1.0, block_size=block)
    assert report.read == len(GOOD) == report.accepted + report.quarantined
    q = pq.read_table(out / "quarantine.parquet").to_pylist() if bad else []
    assert [r["row"] for r in q] == bad
    assert all(r["reason"] and r["raw"] == lines[r["row"] - 1] for r in q)
    assert report.events == len(GOOD) - len(bad)


def test_multi_character_separator_lines_are_counted_right(tmp_path: Path) -> None:
    lines = [
        "1::10::5::978300760",
        "1::11::3",
        "2::12::4::978300761::x",
        "2:13:4:978300762",
        "3::14::1::978300763",
    ]
    src = write(tmp_path / "ratings.dat", "\n".join(lines) + "\n")
    report = import_logs("movielens", src, tmp_path / "out", max_quarantine_share=1.0)
    assert (report.read, report.accepted, report.quarantined) == (5, 2, 3)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(r["row"], r["reason"], r["raw"]) for r in q] == [
        (2, "expected 4 fields separated by '::', found 3", "1::11::3"),
        (3, "expected 4 fields separated by '::', found 5", "2::12::4::978300761::x"),
        (4, "expected 4 fields separated by '::', found 1", "2:13:4:978300762"),
    ]
