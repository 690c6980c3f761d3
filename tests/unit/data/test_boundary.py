"""Issue 17, data: every malformed file, frame or bound is a typed error naming what is valid."""

import gzip

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm.data.catalog import CatalogName, data_roots, parse_catalog_name
from coinswarm.data.validate import timeframe_ms
from coinswarm.errors import ConfigError, DataError, DatasetNotFoundError, SchemaError

HEADER = "timestamp,open,high,low,close,volume\n"


def _csv(tmp_path, name, text, gz=False):
    path = tmp_path / name
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _rows(stamps):
    return "".join(f"{t},10,11,9,10.5,1\n" for t in stamps)


def test_header_only_csv_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="header but no rows"):
        cs.load_ohlcv(_csv(tmp_path, "h.csv", HEADER))
    with pytest.raises(DataError, match="empty"):
        cs.load_ohlcv(_csv(tmp_path, "e.csv", ""))


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gzip.compress((HEADER + _rows([0, 3_600_000])).encode())[:30])
    with pytest.raises(DataError, match="c.csv.gz: cannot read the file"):
        cs.load_ohlcv(path)
    (tmp_path / "n.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        cs.load_ohlcv(tmp_path / "n.csv.gz")


@pytest.mark.parametrize(("scale", "unit"), [(1_000, "microseconds"), (1_000_000, "nanoseconds")])
def test_microsecond_and_nanosecond_timestamps_are_named(tmp_path, scale, unit):
    stamps = [1_700_000_000_000 * scale, 1_700_003_600_000 * scale]
    with pytest.raises(DataError, match=f"looks like {unit}") as info:
        cs.load_ohlcv(_csv(tmp_path, "u.csv", HEADER + _rows(stamps)))
    assert info.value.row == 0 and info.value.column == "timestamp"


def test_second_timestamps_are_named(tmp_path):
    with pytest.raises(DataError, match="look like seconds"):
        cs.load_ohlcv(_csv(tmp_path, "s.csv", HEADER + _rows([1_700_000_000, 1_700_003_600])))


def test_iso_timestamps_are_accepted_like_epoch_ms(tmp_path):
    ms = [1_704_067_200_000 + k * 3_600_000 for k in range(3)]
    iso = ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+00:00", "2024-01-01 02:00"]
    a = cs.load_ohlcv(_csv(tmp_path, "ms.csv", HEADER + _rows(ms)))
    b = cs.load_ohlcv(_csv(tmp_path, "iso.csv", HEADER + _rows(iso)))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(DataError, match="neither epoch milliseconds nor an ISO-8601") as info:
        cs.load_ohlcv(_csv(tmp_path, "bad.csv", HEADER + _rows(["2024-01-01", "yesterday"])))
    assert info.value.row == 1


def test_missing_column_names_it(btc_1h):
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['volume'\]"):
        cs.validate_ohlcv(btc_1h.iloc[:50].drop(columns="volume"))


def test_naive_non_utc_and_empty_frames_are_refused(btc_1h):
    frame = btc_1h.iloc[:50]
    with pytest.raises(DataError, match="tz-naive"):
        cs.validate_ohlcv(frame.tz_localize(None))
    with pytest.raises(DataError, match="not UTC"):
        cs.validate_ohlcv(frame.tz_convert("Europe/Paris"))
    with pytest.raises(DataError, match="empty"):
        cs.validate_ohlcv(frame.iloc[:0])
    with pytest.raises(DataError, match="DatetimeIndex"):
        cs.validate_ohlcv(frame.reset_index(drop=True))
    with pytest.raises(ConfigError, match="DataFrame"):
        cs.validate_ohlcv(frame.to_numpy())
    assert cs.validate_ohlcv(frame).missing_bars == 0


def test_start_after_the_data_states_the_range_that_exists():
    with pytest.raises(DataError, match=r"no bars between start='2030'.*the data covers 2017-08-17.*2024-12-31"):
        cs.load_ohlcv("binance:BTC/USDT:1h", start="2030")


def test_end_before_start_and_impossible_dates_are_config_errors():
    with pytest.raises(ConfigError, match="before start"):
        cs.load_ohlcv("binance:BTC/USDT:1h", start="2024", end="2023")
    with pytest.raises(ConfigError, match="start='2024-13-01' is not an ISO-8601"):
        cs.load_ohlcv("binance:BTC/USDT:1h", start="2024-13-01")
    for bad in ("now", 2024, True, float("nan")):
        with pytest.raises(ConfigError, match="start="):
            cs.load_ohlcv("binance:BTC/USDT:1h", start=bad)


def test_partial_date_bounds_still_include_the_whole_period():
    df = cs.load_ohlcv("binance:BTC/USDT:1h", start="2023", end="2023")
    assert df.index[0] == pd.Timestamp("2023-01-01", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2023-12-31 23:00", tz="UTC")
    same = cs.load_ohlcv("binance:BTC/USDT:1h", start=pd.Timestamp("2023-01-01"), end="2023")
    pd.testing.assert_frame_equal(df, same)


@pytest.mark.parametrize("tf", ["0h", "-1h", "1.5h", "1y", "h", "", "2M", "9999d", 5, None])
def test_non_positive_and_unknown_timeframes_are_refused(tf):
    with pytest.raises(ConfigError, match="timeframe"):
        timeframe_ms(tf)
    with pytest.raises(ConfigError, match="timeframe"):
        cs.load_ohlcv("binance:BTC/USDT:1h", timeframe=tf) if tf is not None else timeframe_ms(tf)


def test_timeframes_that_exist():
    assert [timeframe_ms(t) for t in ("1m", "5m", "1h", "4h", "1d", "1w")] == [
        60_000, 300_000, 3_600_000, 14_400_000, 86_400_000, 604_800_000]
    assert timeframe_ms("1M") is None


def test_missing_data_dir_is_an_error_not_skipped(monkeypatch, tmp_path):
    monkeypatch.setenv("COINSWARM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match="COINSWARM_DATA_DIR .*nowhere.* is not an existing folder"):
        cs.load_ohlcv("binance:BTC/USDT:1h")
    monkeypatch.delenv("COINSWARM_DATA_DIR")
    with pytest.raises(DatasetNotFoundError, match="data_dir"):
        data_roots(tmp_path / "nowhere")


def test_one_catalog_name_parser():
    name = parse_catalog_name("binance-perp:BTC/USDT:1h")
    assert name == CatalogName("binance-perp", "BTC/USDT", "1h")
    assert name.symbol_key == "BTC/USDT:USDT" and name.funding_name == "binance-perp:BTC/USDT:funding"
    assert parse_catalog_name("binance:BTC/USDT:5m:2024-01_2024-09").period == "2024-01_2024-09"
    assert parse_catalog_name("binance:BTC/USDT:1h").symbol_key == "BTC/USDT"
    for bad in ("binance:BTCUSDT:1h", "binance::1h", "a:B/C", "a:B/C:1h:p:q", " a:B/C:1h", "a:/C:1h"):
        assert parse_catalog_name(bad, strict=False) is None
        with pytest.raises(ConfigError, match="not a catalog name"):
            parse_catalog_name(bad)


def test_validate_arrays_refuses_mismatched_lengths():
    from coinswarm.data.validate import validate_arrays

    ts = np.array([0, 3_600_000], dtype=np.int64)
    values = {c: np.ones(2) for c in ("open", "high", "low", "close", "volume")}
    values["volume"] = np.ones(3)
    with pytest.raises(SchemaError, match="differ in length"):
        validate_arrays(ts, values)
    with pytest.raises(DataError, match="no bars"):
        validate_arrays(ts[:0], {c: v[:0] for c, v in values.items()})
