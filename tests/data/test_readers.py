"""Each reader on a tiny hand-written file, and on ../shared/datasets when present."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from item2vec.data import read_events, read_item_metadata
from item2vec.exceptions import DataError, EmptyDataError, MissingColumnError, UnknownFormatError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_generic_csv_with_column_mapping(tmp_path):
    f = write(tmp_path / "log.csv", "sess,product,ts\n1,a,100\n1,b,160\n2,a,50\n")
    df = read_events(f, "csv", session_col="sess", item_col="product", time_col="ts")
    assert df.columns == ["session_id", "item_id", "timestamp", "_order"]
    assert df["item_id"].to_list() == ["a", "b", "a"]
    assert (df["timestamp"][1] - df["timestamp"][0]).total_seconds() == 60


def test_tsv_users_without_sessions_and_string_times(tmp_path):
    f = write(tmp_path / "log.tsv", "user\titem\twhen\nu1\t10\t2024-01-01 10:00:00\nu1\t11\t2024-01-01 10:05:00\n")
    df = read_events(f, "tsv", session_col=None, user_col="user", item_col="item", time_col="when")
    assert "session_id" not in df.columns
    assert df["user_id"].to_list() == ["u1", "u1"]
    assert df["item_id"].to_list() == [10, 11]


def test_parquet(tmp_path):
    f = tmp_path / "log.parquet"
    pl.DataFrame({"session_id": [1, 1], "item_id": ["x", "y"], "timestamp": [1, 2]}).write_parquet(f)
    df = read_events(f, "parquet")
    assert df["item_id"].to_list() == ["x", "y"]


def test_diginetica_orders_by_date_plus_timeframe(tmp_path):
    f = write(
        tmp_path / "views.csv",
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n2;5;32118;243569;2016-05-10\n",
    )
    df = read_events(f, "diginetica")
    assert df["item_id"].to_list() == [81766, 31331, 32118]
    ts = df["timestamp"].to_list()
    assert (ts[1] - ts[0]).total_seconds() == pytest.approx(504.709)
    assert str(ts[2].date()) == "2016-05-10"


def test_session_rec(tmp_path):
    f = write(tmp_path / "train.tsv", "SessionId\tItemId\tTime\n7\t214\t1396839069.277\n7\t215\t1396839100.0\n")
    df = read_events(f, "session-rec")
    assert df["session_id"].to_list() == [7, 7]
    assert df["timestamp"][0].year == 2014


def test_movielens(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,4.0,964981247\r\n")
    write(tmp_path / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier Old Men, The (1995)",Comedy|Romance\n')
    df = read_events(tmp_path, "movielens")
    assert df["user_id"].to_list() == [1, 1] and df["item_id"].to_list() == [1, 3]
    md = read_item_metadata(tmp_path / "ratings.csv", "movielens")
    assert md.filter(pl.col("item_id") == 3)["title"][0] == "Grumpier Old Men, The (1995)"
    assert md.filter(pl.col("item_id") == 1)["category"][0] == "Adventure"


def test_online_retail_folder_of_daily_files(tmp_path):
    head = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    day1 = head + (
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
        "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
        "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18,17850.0,United Kingdom\n"
        "C536379,85123A,WHITE HANGING HEART,-1,2010-12-01 09:41:00,2.55,14527.0,United Kingdom\n"
    )
    day2 = head + "536400,22633,HAND WARMER,6,2010-12-02 10:00:00,1.85,,United Kingdom\n"
    (tmp_path / "2010-12-01.csv.gz").write_bytes(gzip.compress(day1.encode()))
    (tmp_path / "2010-12-02.csv").write_text(day2)
    df = read_events(tmp_path, "online-retail")
    assert df["session_id"].to_list() == ["536365", "536365", "536400"]  # POST and the cancellation dropped
    assert df["item_id"].to_list() == ["85123A", "71053", "22633"]
    cust = read_events(tmp_path, "online-retail", session="customer")
    assert cust["user_id"].to_list() == [17850, 17850]  # the row without a customer is dropped
    only_day2 = read_events(tmp_path, "online-retail", start="2010-12-02")
    assert only_day2["item_id"].to_list() == ["22633"]
    md = read_item_metadata(tmp_path, "online-retail")
    assert dict(zip(md["item_id"], md["title"], strict=True))["85123A"] == "WHITE HANGING HEART"


def test_gowalla_tab_no_header_descending_time(tmp_path):
    f = write(
        tmp_path / "checkins.txt",
        "0\t2010-10-19T23:55:27Z\t30.23\t-97.79\t22847\n0\t2010-10-18T22:17:43Z\t30.26\t-97.75\t420315\n",
    )
    df = read_events(f, "gowalla")
    assert df["item_id"].to_list() == [22847, 420315]
    assert df["timestamp"][0] > df["timestamp"][1]


def test_sasrec_lines_keep_order(tmp_path):
    f = write(tmp_path / "Video.txt", "1 5\n1 7\n2 5\n")
    df = read_events(f, "sasrec")
    assert df["user_id"].to_list() == [1, 1, 2]
    assert df["timestamp"].is_sorted()


# -- bad input ---------------------------------------------------------------
def test_unknown_format(tmp_path):
    with pytest.raises(UnknownFormatError, match="unknown event-log format 'xml'"):
        read_events(tmp_path, "xml")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_events(tmp_path / "nope.csv", "csv")


def test_empty_file(tmp_path):
    with pytest.raises(EmptyDataError, match="empty"):
        read_events(write(tmp_path / "e.csv", ""), "csv")


def test_header_only_file(tmp_path):
    with pytest.raises(EmptyDataError, match="no events"):
        read_events(write(tmp_path / "h.csv", "session_id,item_id,timestamp\n"), "csv")


def test_missing_column_names_expected_and_found(tmp_path):
    f = write(tmp_path / "m.csv", "session_id,product,timestamp\n1,a,1\n")
    with pytest.raises(MissingColumnError, match=r"expected column\(s\) \['item_id'\].*\['session_id', 'product', 'timestamp'\]"):
        read_events(f, "csv")


def test_null_ids(tmp_path):
    f = write(tmp_path / "n.csv", "session_id,item_id,timestamp\n1,a,1\n1,,2\n")
    with pytest.raises(DataError, match="1 of 2 rows have a null item_id"):
        read_events(f, "csv")


def test_unknown_option_for_format(tmp_path):
    f = write(tmp_path / "g.txt", "0\t2010-10-19T23:55:27Z\t1\t2\t3\n")
    with pytest.raises(DataError, match="does not take that option"):
        read_events(f, "gowalla", item_col="x")


# -- the real datasets (skipped without ../shared) -------------------------------
@pytest.mark.parametrize(
    "fmt, rel, rows",
    [
        ("diginetica", "diginetica-sample/sample_train-item-views.csv", 12391),
        ("movielens", "movielens-latest-small", 100836),
        ("gowalla", "gowalla-checkins-sample/Gowalla_totalCheckins50000.txt", 50000),
        ("sasrec", "amazon-videogames-sasrec/Video.txt", 287107),
    ],
)
def test_real_datasets_row_counts(shared_datasets, fmt, rel, rows):
    df = read_events(shared_datasets / rel, fmt)
    assert df.height == rows  # the counts their READMEs state
    assert df["timestamp"].null_count() == 0


def test_real_online_retail(shared_datasets):
    df = read_events(shared_datasets / "online-retail" / "by-day", "online-retail")
    # 541,909 rows less cancellations, non-positive quantities and non-product codes
    assert 500_000 < df.height < 541_909
    assert df["session_id"].n_unique() > 18_000
    assert df["timestamp"].min().year == 2010 and df["timestamp"].max().year == 2011
