import gzip

import numpy as np
import pandas as pd
import pytest

import coinswarm as cs
from coinswarm import errors
from coinswarm.data.catalog import find_entry, resolve_path, verify_checksum


def test_catalog_name_loads_validated_frame(btc_1h):
    assert list(btc_1h.columns) == ["open", "high", "low", "close", "volume"]
    assert (btc_1h.dtypes == np.float64).all()
    assert btc_1h.index.name == "time" and str(btc_1h.index.tz) == "UTC"
    assert btc_1h.index[0] == pd.Timestamp("2018-01-01", tz="UTC")
    assert btc_1h.index[-1] == pd.Timestamp("2024-12-31 23:00", tz="UTC")


def test_gap_report_matches_dataset_readme():
    df = cs.load_ohlcv("binance:BTC/USDT:1h")
    gaps = df.attrs["gaps"]
    assert (gaps["missing_bars"], gaps["n_gaps"], gaps["longest_gap_bars"]) == (128, 28, 33)
    assert gaps["longest_gap_after"].startswith("2018-02-08T00:00")


def test_gap_policies():
    with pytest.raises(errors.GapError, match="128 missing 1h bars"):
        cs.load_ohlcv("binance:BTC/USDT:1h", gaps="raise")
    filled = cs.load_ohlcv("binance:BTC/USDT:1h", gaps="ffill")
    assert filled.attrs["filled_bars"] == 128
    assert (np.diff(filled.index.as_unit("s").asi8) == 3600).all()
    flat = filled.loc["2018-02-08 01:00":"2018-02-09 09:00"]
    assert (flat["volume"] == 0).all() and (flat["open"] == flat["close"]).all()


def test_ambiguous_and_unknown_names():
    with pytest.raises(errors.DatasetNotFoundError, match="several data sets"):
        cs.load_ohlcv("binance:BTC/USDT:5m")
    with pytest.raises(errors.DatasetNotFoundError, match="unknown data set"):
        cs.load_ohlcv("kraken:DOGE/EUR:1h")
    assert len(cs.load_ohlcv("binance:BTC/USDT:5m:2024-01_2024-09")) == 71_769


def test_perp_and_coinbase_names():
    perp = cs.load_ohlcv("binance-perp:BTC/USDT:1h")
    assert len(perp) == 46_591
    coinbase = cs.load_ohlcv("coinbase:BTC/USD:1h")
    assert coinbase.index[0] == pd.Timestamp("2017-07-01 11:00", tz="UTC")
    funding = cs.load_funding("binance-perp:BTC/USDT")
    assert len(funding) == 5_819 and funding.abs().max() <= 0.003 + 1e-12


def test_data_dir_env_var(tmp_path, monkeypatch, btc_csv_path):
    (tmp_path / "ohlcv").mkdir()
    (tmp_path / "ohlcv" / btc_csv_path.name).write_bytes(btc_csv_path.read_bytes()[:])
    monkeypatch.setenv("COINSWARM_DATA_DIR", str(tmp_path))
    entry = find_entry("binance:BTC/USDT:1h")
    assert resolve_path(entry).parent.parent == tmp_path
    verify_checksum(entry, resolve_path(entry))


def test_checksum_mismatch_is_typed(tmp_path, btc_csv_path):
    bad = tmp_path / "x.csv.gz"
    bad.write_bytes(btc_csv_path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(errors.ChecksumError):
        verify_checksum(find_entry("binance:BTC/USDT:1h"), bad)


def _write(tmp_path, lines: list[str], name="bad.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def real_rows(btc_csv_path) -> list[str]:
    with gzip.open(btc_csv_path, "rt") as fh:
        return [next(fh).strip() for _ in range(11)]  # header + 10 real bars


def _replace(row: str, col: int, value: str) -> str:
    cells = row.split(",")
    cells[col] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    "mutate, error, fragment",
    [
        (lambda r: r.__setitem__(4, _replace(r[4], 4, "")), errors.MissingValueError, "close"),
        (lambda r: r.__setitem__(4, _replace(r[4], 4, "1e9")), errors.InconsistentBarError,
         "outside"),
        (lambda r: r.__setitem__(4, _replace(r[4], 2, "1")), errors.InconsistentBarError,
         "high 1.0 < low"),
        (lambda r: r.__setitem__(4, _replace(r[4], 1, "-5")), errors.NonPositivePriceError,
         "open -5.0"),
        (lambda r: r.__setitem__(4, _replace(r[4], 5, "-1")), errors.NegativeVolumeError,
         "negative"),
        (lambda r: r.__setitem__(4, r[3]), errors.DuplicateTimestampError, "repeats"),
        (lambda r: r.__setitem__(4, _replace(r[4], 0, "1502942400000")),
         errors.UnsortedTimestampError, "earlier"),
        (lambda r: r.__setitem__(4, _replace(r[4], 0, str(int(r[4].split(",")[0]) + 1))),
         errors.OffGridTimestampError, "grid"),
        (lambda r: r.__setitem__(4, _replace(r[4], 4, "abc")), errors.SchemaError,
         "not a number"),
    ],
)
def test_malformed_candles_raise_typed_errors_naming_row(tmp_path, real_rows, mutate, error,
                                                         fragment):
    rows = list(real_rows)
    mutate(rows)
    path = _write(tmp_path, rows)
    with pytest.raises(error, match=fragment) as info:
        cs.load_ohlcv(path, timeframe="1h")
    assert "bad.csv" in str(info.value)
    assert info.value.row == 3 and "CSV line 5" in str(info.value)


def test_missing_column_is_schema_error(tmp_path, real_rows):
    rows = [",".join(r.split(",")[:5]) for r in real_rows]
    with pytest.raises(errors.SchemaError, match="missing column"):
        cs.load_ohlcv(_write(tmp_path, rows))


def test_start_end_inclusive(btc_1h):
    window = cs.load_ohlcv("binance:BTC/USDT:1h", start="2020-03-12", end="2020-03-12")
    assert len(window) == 24 and window.index[-1].hour == 23
