"""Each log format, on small files the tests write, lands in the canonical tables as documented."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.data_model import SCHEMAS, read_table
from pipelines.importers import InputFormatError, import_logs


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def events_of(out: Path) -> list[dict]:
    return read_table(out, "events").to_pylist()


def test_taobao_behaviours_and_derived_tables(tmp_path: Path) -> None:
    src = tmp_path / "UserBehavior.csv"
    src.write_text(
        "1,10,5,pv,1511544070\n1,10,5,fav,1511544071\n2,11,6,cart,1511544072\n2,11,6,buy,1511544073\n"
    )
    report = import_logs("taobao", src, tmp_path / "out")
    assert (report.read, report.accepted, report.quarantined, report.events) == (4, 4, 0, 4)
    ev = events_of(tmp_path / "out")
    assert [e["type"] for e in ev] == ["product_click", "like", "add_to_cart", "purchase"]
    assert [e["event_id"] for e in ev] == [1, 2, 3, 4]
    assert [e["user_id"] for e in ev] == [1, 1, 2, 2]
    assert ev[0]["ts"] == utc(1511544070)
    products = read_table(tmp_path / "out", "products").to_pylist()
    assert [(p["product_id"], p["category"], p["price"]) for p in products] == [
        (10, "5", None),
        (11, "6", None),
    ]
    assert products[1]["launch_ts"] == utc(1511544072)
    users = read_table(tmp_path / "out", "users").to_pylist()
    assert [
        (u["user_id"], u["signup_ts"], u["consent_personalization"], u["consent_marketing"]) for u in users
    ] == [
        (1, utc(1511544070), True, False),
        (2, utc(1511544072), True, False),
    ]
    for table in ("users", "products", "events"):
        assert pq.read_schema(tmp_path / "out" / f"{table}.parquet").remove_metadata() == SCHEMAS[table]
    assert not (tmp_path / "out" / "quarantine.parquet").exists()


def test_a_movielens_directory_holding_ratings_csv_is_found(tmp_path: Path) -> None:
    """ml-25m/ holds ratings.csv beside movies.csv, tags.csv ...: the directory is enough."""
    (tmp_path / "ml-25m").mkdir()
    (tmp_path / "ml-25m" / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n")
    (tmp_path / "ml-25m" / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n"
    )
    report = import_logs("movielens", tmp_path / "ml-25m", tmp_path / "out")
    assert (report.read, report.accepted, report.events) == (1, 1, 2)
    assert [f.path.name for f in report.files] == ["ratings.csv"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("u.data", "196\t242\t3\t881250949\n186\t302\t5\t891717742\n22\t377\t4\t878887116\n"),
        ("ratings.dat", "196::242::3::881250949\n186::302::5::891717742\n22::377::4::878887116\n"),
        # MovieLens 20M/25M/32M and ml-latest: comma-separated, a header, half-star ratings.
        (
            "ratings.csv",
            "userId,movieId,rating,timestamp\n196,242,3.5,881250949\n186,302,5.0,891717742\n"
            "22,377,4.0,878887116\n",
        ),
        (
            "ml-100k.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            "196\t242\t3.0\t881250949.0\n186\t302\t5.0\t891717742.0\n22\t377\t4.0\t878887116.0\n",
        ),
    ],
)
def test_movielens_variants_click_and_purchase_from_high_ratings(
    tmp_path: Path, name: str, text: str
) -> None:
    src = tmp_path / name
    src.write_text(text)
    report = import_logs("movielens", src, tmp_path / "out")
    assert (report.read, report.accepted, report.events) == (3, 3, 5)
    ev = [(e["user_id"], e["product_id"], e["type"]) for e in events_of(tmp_path / "out")]
    # Each rating is a click; ratings of 4 and 5 are followed at once by a purchase.
    assert ev == [
        (196, 242, "product_click"),
        (186, 302, "product_click"),
        (186, 302, "purchase"),
        (22, 377, "product_click"),
        (22, 377, "purchase"),
    ]
    assert events_of(tmp_path / "out")[0]["ts"] == utc(881250949)  # 1997: allowed for MovieLens


@pytest.mark.parametrize("bom", ["", "\ufeff"])  # a UTF-8 byte order mark: the file re-saved by Excel
def test_retailrocket_header_events_and_milliseconds(tmp_path: Path, bom: str) -> None:
    src = tmp_path / "events.csv"
    src.write_text(
        bom + "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433224214999,992329,transaction,248676,4000\n"
    )
    report = import_logs("retailrocket", tmp_path, tmp_path / "out")  # a directory holding events.csv
    assert (report.read, report.quarantined) == (3, 0)
    ev = events_of(tmp_path / "out")
    assert [e["type"] for e in ev] == ["product_click", "add_to_cart", "purchase"]
    assert ev[0]["ts"] == dt.datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=dt.UTC)
    assert read_table(tmp_path / "out", "products").column("category").to_pylist() == [None, None]


def test_yoochoose_sessions_become_users_and_buys_carry_amounts(tmp_path: Path) -> None:
    (tmp_path / "yoochoose-clicks.dat").write_text(
        "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,S\n2,2014-04-06T18:26:00.000Z,214717007,2058\n"
    )
    (tmp_path / "yoochoose-buys.dat").write_text(
        "1,2014-04-07T11:00:00.000Z,214536502,1046,2\n2,2014-04-06T19:00:00.000Z,214717007,0,1\n"
    )
    report = import_logs("yoochoose", tmp_path, tmp_path / "out")
    assert [f.path.name for f in report.files] == ["yoochoose-clicks.dat", "yoochoose-buys.dat"]
    assert (report.read, report.events, report.users, report.products) == (5, 5, 2, 3)
    ev = events_of(tmp_path / "out")
    assert [(e["user_id"], e["type"], e["amount"]) for e in ev] == [
        (1, "product_click", None),
        (1, "product_click", None),
        (2, "product_click", None),
        (1, "purchase", 2092.0),
        (2, "purchase", None),  # price 0 means unknown
    ]
    assert ev[0]["ts"] == dt.datetime(2014, 4, 7, 10, 51, 9, 277000, tzinfo=dt.UTC)
    cats = {
        p["product_id"]: (p["category"], p["price"])
        for p in read_table(tmp_path / "out", "products").to_pylist()
    }
    assert cats == {214536502: (None, 1046.0), 214536500: ("S", None), 214717007: ("2058", None)}


def test_gzip_crlf_and_many_blocks_keep_exact_line_numbers(tmp_path: Path) -> None:
    lines = [f"{i % 7},{i % 11},{i % 3},pv,{1511544070 + i}" for i in range(500)]
    lines[123] = "garbled line"
    lines[377] = "9,9,9,teleport,1511544070"
    src = tmp_path / "UserBehavior.csv.gz"
    src.write_bytes(gzip.compress(("\r\n".join(lines) + "\r\n").encode()))
    # A 256-byte block holds ~10 lines: the two bad lines fall in different blocks.
    report = import_logs("taobao", src, tmp_path / "out", block_size=256)
    assert (report.read, report.accepted, report.quarantined) == (500, 498, 2)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(r["row"], r["reason"], r["raw"], r["source"]) for r in q] == [
        (124, "expected 5 fields separated by ',', found 1", "garbled line", "UserBehavior.csv.gz"),
        (378, "unknown behavior_type", "9,9,9,teleport,1511544070", "UserBehavior.csv.gz"),
    ]
    assert [e["event_id"] for e in events_of(tmp_path / "out")] == list(range(1, 499))


@pytest.mark.parametrize("fmt", ["taobao", "yoochoose"])
def test_an_empty_category_field_is_missing_not_a_category(tmp_path: Path, fmt: str) -> None:
    if fmt == "taobao":
        src = tmp_path / "UserBehavior.csv"
        src.write_text("1,10,,pv,1511544070\n1,10,7,pv,1511544071\n2,11, ,pv,1511544072\n")
    else:
        src = tmp_path / "yoochoose-clicks.dat"
        src.write_text(
            "1,2014-04-07T10:51:09.277Z,10,\n1,2014-04-07T10:52:09.277Z,10,7\n2,2014-04-07T10:53:09.277Z,11,\n"
        )
    report = import_logs(fmt, src, tmp_path / "out")
    assert report.accepted == 3
    products = read_table(tmp_path / "out", "products").to_pylist()
    # The first category given wins: an empty field gives none, so product 10's is the later "7".
    assert [(p["product_id"], p["category"]) for p in products] == [(10, "7"), (11, None)]


def test_yoochoose_negative_price_or_quantity_is_quarantined_not_unknown(tmp_path: Path) -> None:
    (tmp_path / "yoochoose-buys.dat").write_text(
        "1,2014-04-07T11:00:00.000Z,10,1046,2\n"
        "2,2014-04-07T11:00:00.000Z,11,-5,1\n"  # was kept as a purchase of unknown amount
        "3,2014-04-07T11:00:00.000Z,12,0,-1\n"  # price unknown: the quantity was never looked at
    )
    report = import_logs("yoochoose", tmp_path, tmp_path / "out", max_quarantine_share=1.0)
    assert (report.read, report.accepted, report.quarantined) == (3, 1, 2)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(r["row"], r["reason"]) for r in q] == [(2, "negative price"), (3, "negative quantity")]
    assert [p["product_id"] for p in read_table(tmp_path / "out", "products").to_pylist()] == [10]


def test_yoochoose_buy_of_quantity_zero_is_a_purchase_of_unknown_amount(tmp_path: Path) -> None:
    """The log leaves price and quantity at 0 on a large share of its buys: unknown, like a price of
    0, not "bought nothing". Such a buy was imported with amount 0.0 at a known price (revenue
    the buyer did bring, counted as none); now its amount is unknown (null) and the product keeps
    its price. A negative quantity is still quarantined."""
    (tmp_path / "yoochoose-buys.dat").write_text(
        "1,2014-04-07T11:00:00.000Z,10,1046,2\n"
        "2,2014-04-07T11:00:00.000Z,11,50,0\n"
        "3,2014-04-07T11:00:00.000Z,12,0,0\n"
    )
    report = import_logs("yoochoose", tmp_path, tmp_path / "out")
    assert (report.read, report.accepted, report.quarantined) == (3, 3, 0)
    bought = [(e["user_id"], e["type"], e["amount"]) for e in events_of(tmp_path / "out")]
    assert bought == [(1, "purchase", 2092.0), (2, "purchase", None), (3, "purchase", None)]
    prices = {p["product_id"]: p["price"] for p in read_table(tmp_path / "out", "products").to_pylist()}
    assert prices == {10: 1046.0, 11: 50.0, 12: None}


@pytest.mark.parametrize(
    "header",
    [
        "movieId,userId,rating,timestamp",  # another column order: was "not a MovieLens ratings file"
        " UserID , MovieID , Rating , Timestamp ",  # case and spaces (already read; kept so)
        "timestamp,rating,movieId,userId,source",  # any order, and a column it does not use
    ],
)
def test_a_ratings_csv_header_is_read_by_name_not_position(tmp_path: Path, header: str) -> None:
    values = {"userid": ["196", "186"], "movieid": ["242", "302"], "rating": ["3.5", "5.0"]}
    values |= {"timestamp": ["881250949", "891717742"], "source": ["web", "app"]}
    cols = [c.strip().lower() for c in header.split(",")]
    rows = [",".join(values[c][i] for c in cols) for i in range(2)]
    (tmp_path / "ratings.csv").write_text("\n".join([header, *rows]) + "\n")
    report = import_logs("movielens", tmp_path, tmp_path / "out")
    assert (report.read, report.accepted, report.events) == (2, 2, 3)
    ev = events_of(tmp_path / "out")
    assert [(e["user_id"], e["product_id"], e["type"]) for e in ev] == [
        (196, 242, "product_click"),
        (186, 302, "product_click"),
        (186, 302, "purchase"),
    ]
    assert ev[0]["ts"] == utc(881250949)


def test_a_ratings_csv_header_without_a_needed_column_names_it(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,timestamp\n196,242,881250949\n")
    with pytest.raises(InputFormatError, match=r"ratings.csv:1: .*header must name .*missing rating"):
        import_logs("movielens", tmp_path, tmp_path / "out")


def test_a_recbole_header_is_read_whatever_the_case(tmp_path: Path) -> None:
    (tmp_path / "ml.inter").write_text(
        "User_ID:token\tItem_ID:token\tRating:float\tTimestamp:float\n196\t242\t5.0\t881250949.0\n"
    )
    report = import_logs("movielens", tmp_path / "ml.inter", tmp_path / "out")
    assert (report.read, report.accepted, report.events) == (1, 1, 2)
