"""FRED + NewsAPI + RSS ingestors on the scheduler, next to a market ingestor on a local fake venue:
the recorded HTTP fixtures (tests/fixtures, served on 127.0.0.1) fill the store with macro
observations, news and their VADER sentiment; a second run writes 0 new rows; `coinswarm ingest
status` lists them all; a broken feed and a missing API key stay isolated, each with its reason."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coinswarm.adapters.fake_market import FakeMarketVenue
from coinswarm.adapters.fake_venue import CCXT_OPTIONS
from coinswarm.errors import ConfigError
from coinswarm.ingest.config import ExchangeConfig, load_config
from coinswarm.ingest.scheduler import Scheduler, build_ingestors
from coinswarm.ingest.store import ParquetStore
from tests.fixtures.http_server import fixture_server as _fixture_server
from tests.unit.ingest.test_ingest_altstore import macro, newsapi_news, rss_news
from tests.unit.ingest.test_ingest_ccxt_market import data_file

fixture_server = _fixture_server  # the recorded-reply server on 127.0.0.1 (a pytest fixture)
pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[3]
FOUR_YEARS_S = 4 * 365 * 86400  # the fixtures are of January 2024


def routes(server) -> None:
    server.route("/fred/series/observations", (200, "fred/dgs10_page1.json"), (200, "fred/dgs10_page2.json"))
    server.route("/v2/everything", (200, "newsapi/bitcoin_page1.json"))
    server.route("/rss.xml", (200, "rss/crypto_news_rss2.xml", {"Content-Type": "application/rss+xml"}))
    server.route("/atom.xml", (200, "rss/crypto_atom.xml", {"Content-Type": "application/atom+xml"}))
    server.route("/broken.xml", (200, "rss/not_a_feed.html", {"Content-Type": "text/html"}))


def config_text(url: str, tmp_path: Path) -> str:
    return f"""
store = "parquet:{tmp_path / 'store'}"
status_file = "{tmp_path / 'status.json'}"
[backoff]
base_s = 0.2
max_s = 1.0
stale_after_s = 30.0
[fred]
series = ["DGS10"]
every_s = 0.5
lookback_s = {FOUR_YEARS_S}
api_url = "{url}"
[newsapi]
query = "bitcoin"
every_s = 0.5
lookback_s = {FOUR_YEARS_S}
api_url = "{url}"
[rss]
feeds = ["{url}/rss.xml", "{url}/atom.xml", "{url}/broken.xml"]
every_s = 0.5
lookback_s = {FOUR_YEARS_S}
[news]
sentiment = true
"""


def venue() -> FakeMarketVenue:
    ticks = str(data_file("ticks", "binance_BTCUSDT_trades_2021-01-08T0000.csv.gz"))
    return FakeMarketVenue({"BTC/USDT": "binance:BTC/USDT:1m"}, trades={"BTC/USDT": ticks}, data_start="2024-04-02",
                           data_end="2024-04-04", start="2024-04-03T00:00:30", speed=20.0)


async def run_once(config, done, seconds: float = 25.0) -> tuple[dict, dict]:
    """Run the config's ingestors until ``done(by_source)`` or ``seconds``; the last status and ingestors."""
    closables, ingestors = build_ingestors(config)
    store = ParquetStore(config.store[len("parquet:"):])
    sched = Scheduler(ingestors, store, base_s=config.backoff_base_s, max_s=config.backoff_max_s,
                      stale_after_s=config.stale_after_s, status_file=config.status_file)
    task = asyncio.create_task(sched.run())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not done({i.source.name: i for i in ingestors}):
        await asyncio.sleep(0.2)
    sched.stop()
    await task
    for c in closables:
        await c.close()
    return sched.report(), {i.source.name: i for i in ingestors}


def alt_names(url: str) -> list[str]:
    host = url.split("://", 1)[1]
    return ["fred:DGS10", "newsapi:bitcoin", f"rss:{host}/rss.xml", f"rss:{host}/atom.xml"]


def test_macro_and_news_ingestors_fill_the_store_next_to_a_market(tmp_path, fixture_server, monkeypatch):
    monkeypatch.setenv("COINSWARM_FRED_API_KEY", "fred-test-key")
    monkeypatch.setenv("COINSWARM_NEWSAPI_KEY", "newsapi-test-key")
    routes(fixture_server)
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(config_text(fixture_server.url, tmp_path))
    alt = alt_names(fixture_server.url)
    broken = alt[-1].replace("atom.xml", "broken.xml")

    async def scenario():
        async with venue() as v:
            ex = ExchangeConfig("binance", ("BTC/USDT",), candles=("1m",), trades=True, every_s=0.5, lookback_s=1800.0,
                                api_url=v.url, options=dict(CCXT_OPTIONS), label="venue", clock_every_s=0.5)
            config = dataclasses.replace(load_config(cfg, env={}), exchanges=(ex,))
            first = await run_once(config, lambda by: all(by[n].rows_written > 0 for n in alt + [
                "venue:trades:BTC/USDT", "venue:candles:BTC/USDT:1m"]) and by[broken].health.errors >= 2)
            routes(fixture_server)  # the same replies again
            second = await run_once(config, lambda by: all(by[n].health.last_success_ms for n in alt))
            return first, second

    (status1, by1), (status2, by2) = asyncio.run(scenario())
    store = ParquetStore(tmp_path / "store")
    news = {r.values["url"] for r in rss_news() + newsapi_news()}
    assert store.count("macro", "fred", "DGS10") == len(macro())
    assert store.count("news") == store.count("sentiment") >= len(news) + 2  # + the Atom feed's two entries
    assert store.count("trade", "venue", "BTC/USDT") > 0 and store.count("candle", "venue", "BTC/USDT") > 0
    rows1 = {r["source"]: r for r in status1["sources"]}
    assert all(rows1[n]["healthy"] and rows1[n]["rows_written"] > 0 for n in alt), rows1
    assert not rows1[broken]["healthy"] and "not an RSS/Atom feed" in rows1[broken]["last_error"]
    assert by2["fred:DGS10"].health.last_success_ms and all(by2[n].rows_written == 0 for n in alt)
    assert store.count("macro") == len(macro())
    fred_req = next(r for r in fixture_server.requests if r.path.startswith("/fred"))
    news_req = next(r for r in fixture_server.requests if r.path == "/v2/everything")
    assert fred_req.query["api_key"] == "fred-test-key" and news_req.headers["x-api-key"] == "newsapi-test-key"
    out = subprocess.run([sys.executable, "-m", "coinswarm.cli", "ingest", "status", "--status-file",
                          str(tmp_path / "status.json"), "--json"], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1, out.stderr  # the broken feed is unhealthy
    shown = {r["source"]: r for r in json.loads(out.stdout)["sources"]}
    assert set(alt) | {broken, "venue:trades:BTC/USDT"} <= set(shown)
    assert all(shown[n]["healthy"] for n in alt) and not shown[broken]["healthy"]


def test_a_missing_key_makes_only_that_ingestor_unhealthy(tmp_path, fixture_server, monkeypatch):
    monkeypatch.delenv("COINSWARM_FRED_API_KEY", raising=False)
    monkeypatch.setenv("COINSWARM_NEWSAPI_KEY", "k")
    routes(fixture_server)
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(config_text(fixture_server.url, tmp_path))
    config = load_config(cfg, env={})
    rss = alt_names(fixture_server.url)[2]
    status, by = asyncio.run(run_once(config, lambda by: by[rss].rows_written > 0 and by["fred:DGS10"].health.errors))
    rows = {r["source"]: r for r in status["sources"]}
    assert not rows["fred:DGS10"]["healthy"] and "COINSWARM_FRED_API_KEY" in rows["fred:DGS10"]["last_error"]
    assert rows[rss]["healthy"] and rows["newsapi:bitcoin"]["healthy"]
    assert not any(r.path.startswith("/fred") for r in fixture_server.requests)  # never called without a key


@pytest.mark.parametrize("text, match", [
    ('[fred]\nseries = ["DGS 10"]\n', "series id"), ('[rss]\nfeeds = ["feeds.example.com/rss"]\n', "http"),
    ('[rss]\nfeeds = []\n', "non-empty list"), ('[newsapi]\nquery = "bitcoin"\napi_key = "x"\n', "secret"),
    ('[newsapi]\nquery = "bitcoin"\nlanguage = "english"\n', "two-letter"),
    ('[rss]\nfeeds = ["https://a.example/rss"]\nevery = 3\n', "unknown key"),
    ('[rss]\nfeeds = ["https://a.example/rss"]\n[news]\nvectors_url = "mongodb://x"\n', "vectors_url"),
    ('[rss]\nfeeds = ["https://a.example/rss"]\n[news]\nembedder = "bert"\n', "embedder"),
    ('[fred]\nseries = ["DGS10", "DGS10"]\n', "twice")])
def test_bad_alt_sections_are_refused(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path, env={})


def test_alt_only_config_and_env_override(tmp_path):
    path = tmp_path / "news.toml"
    path.write_text('[newsapi]\nquery = ["bitcoin", "ether"]\n[rss]\nfeeds = ["https://a.example/rss"]\n')
    config = load_config(path, env={"COINSWARM_INGEST_VECTORS_URL": "redis://127.0.0.1:1"})
    assert config.exchanges == () and [f.kind for f in config.feeds] == ["newsapi", "rss"]
    assert config.feeds[0].items == ("bitcoin", "ether") and config.feeds[1].every_s == 300.0
    assert config.news.vectors_url == "redis://127.0.0.1:1" and config.news.sentiment
    closables, ingestors = build_ingestors(config)
    assert [i.source.name for i in ingestors] == ["newsapi:bitcoin", "newsapi:ether", "rss:a.example/rss"]
    assert [i.subject for i in ingestors][-1] == "ingest.news.rss.a_example_rss" and len(closables) == 1


def test_cli_ingest_run_runs_the_macro_and_news_ingestors(tmp_path, fixture_server):
    routes(fixture_server)
    cfg = tmp_path / "ingest.toml"
    cfg.write_text(config_text(fixture_server.url, tmp_path))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "COINSWARM_FRED_API_KEY": "k"}  # no NewsAPI key
    run = subprocess.run([sys.executable, "-m", "coinswarm.cli", "ingest", "run", "--config", str(cfg),
                          "--seconds", "4"], capture_output=True, text=True, timeout=90, env=env)
    assert run.returncode == 0, run.stderr
    out = subprocess.run([sys.executable, "-m", "coinswarm.cli", "ingest", "status", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    fred, rss, newsapi = (lines[n] for n in ("fred:DGS10", alt_names(fixture_server.url)[2], "newsapi:bitcoin"))
    assert fred.split()[1] == "yes" and rss.split()[1] == "yes"
    assert newsapi.split()[1] == "NO" and "COINSWARM_NEWSAPI_KEY" in newsapi
    store = ParquetStore(tmp_path / "store")
    assert store.count("macro") == len(macro()) and store.count("sentiment") == store.count("news") > 0
