"""PrometheusSink: its own registry, /metrics scraped over HTTP on loopback, every metric the
issue names, bounded labels, Sinks' failures and the relay's counters read at scrape time."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coinswarm.errors import ConfigError
from coinswarm.live.metrics import MAX_REASONS, PrometheusSink, reason_label
from coinswarm.live.orders import StoredOrder
from coinswarm.live.protocols import Fill, OrderStatus, Side
from coinswarm.live.sinks import Sinks, Snapshot

T0 = 1_709_251_200_000


def order(status: OrderStatus, reason: str = "", cid: str = "cs1") -> StoredOrder:
    return StoredOrder(cid, "BTC/USDT", Side.BUY, 0.5, None, status, T0, "committee", False, None, 0.0, None, reason,
                       T0, T0, None)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Broken:
    def on_bar(self, snapshot) -> None:
        raise RuntimeError("down")

    def __getattr__(self, name):
        return lambda *a: None


def test_metrics_served_over_http_with_every_metric():
    sink = PrometheusSink(port=0, start_equity=1000.0)
    try:
        assert sink.url.startswith("http://127.0.0.1:")
        sinks = Sinks([sink, Broken()])

        class Relay:
            published, duplicates, failures = 7, 1, 2

        sink.watch(sinks, Relay())
        sinks.on_order(order(OrderStatus.NEW))
        sinks.on_order(order(OrderStatus.REJECTED, "Account has insufficient balance (-2010)!"))
        sinks.on_fill(Fill("f1", "cs1", "BTC/USDT", Side.BUY, 0.5, 60000.0, 0.1, "USDT", T0))
        for k, latency in enumerate((300.0, 800.0, 4000.0)):
            sinks.on_bar(Snapshot(T0 + k * 3_600_000, {"BTC/USDT": 0.5}, 100.0, 1010.0 + k, drawdown=0.02,
                                  latency_us=latency, bars_processed=10 + k, feed_lag_ms=1500,
                                  bar_interval_ms=3_600_000 if k < 2 else 0))  # 0: unknown, kept
        sinks.on_event("reconnect", {"component": "feed"})
        sinks.on_event("halt", {"reason": "max_drawdown"})
        sinks.on_event("db_pause", {"what": "apply_fill"})
        for name in ("funding_late", "funding_resume", "funding_late"):
            sinks.on_event(name, {"due": ["BTC/USDT:USDT at 2021-03-01T08:00:00+00:00"]})
        m = scrape(sink.url)
    finally:
        sink.close()
    p = "coinswarm_live_"
    assert m[(p + "bars_total", ())] == 3 and m[(p + "bars_processed", ())] == 12
    assert m[(p + "decision_latency_seconds_count", ())] == 3
    assert m[(p + "decision_latency_seconds_bucket", (("le", "0.001"),))] == 2
    assert m[(p + "decision_latency_seconds_bucket", (("le", "0.0005"),))] == 1
    assert m[(p + "orders_total", (("status", "new"),))] == 1
    assert m[(p + "orders_total", (("status", "rejected"),))] == 1
    assert m[(p + "rejects_total", (("reason", "account has insufficient balance -2010"),))] == 1
    assert m[(p + "fills_total", (("side", "buy"), ("symbol", "BTC/USDT")))] == 1
    assert m[(p + "equity", ())] == 1012.0 and m[(p + "pnl", ())] == 12.0 and m[(p + "cash", ())] == 100.0
    assert m[(p + "drawdown", ())] == 0.02 and m[(p + "feed_lag_seconds", ())] == 1.5
    assert m[(p + "position", (("symbol", "BTC/USDT"),))] == 0.5
    assert m[(p + "halted", ())] == 1 and m[(p + "halts_total", (("reason", "max_drawdown"),))] == 1
    assert m[(p + "reconnects_total", (("component", "feed"),))] == 1
    assert m[(p + "sink_failures_total", (("sink", "Broken"),))] == 3
    assert m[(p + "outbox_published_total", ())] == 7 and m[(p + "outbox_failures_total", ())] == 2
    assert m[(p + "db_paused", ())] == 1 and m[(p + "db_pauses_total", ())] == 1
    assert m[(p + "funding_held", ())] == 1 and m[(p + "funding_late_total", ())] == 2
    assert m[(p + "last_bar_timestamp_seconds", ())] == (T0 + 2 * 3_600_000) / 1000
    assert m[(p + "bar_interval_seconds", ())] == 3600


def test_two_sinks_have_separate_registries_and_close_stops_the_server():
    a, b = PrometheusSink(port=0), PrometheusSink()
    a.on_fill(Fill("f1", "cs1", "BTC/USDT", Side.SELL, 0.5, 60000.0, 0.1, "USDT", T0))
    assert 'coinswarm_live_fills_total{side="sell",symbol="BTC/USDT"} 1.0' in a.render()
    assert "coinswarm_live_fills_total{" not in b.render() and b.url is None
    url = a.url
    a.close()
    a.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_reject_reasons_are_bounded():
    sink = PrometheusSink()
    for k in range(MAX_REASONS + 10):
        sink.on_event("reject", {"reason": f"reason {k}"})
    text = sink.render()
    assert text.count("coinswarm_live_rejects_total{") == MAX_REASONS + 1
    assert 'coinswarm_live_rejects_total{reason="other"} 10.0' in text
    assert reason_label("X" * 500 + "\n{}\"") == "x" * 48


@pytest.mark.parametrize("port", [-1, 70000, "9100", True])
def test_bad_port_is_a_config_error(port):
    with pytest.raises(ConfigError, match="metrics port"):
        PrometheusSink(port=port)


def test_busy_port_is_a_config_error():
    a = PrometheusSink(port=0)
    try:
        with pytest.raises(ConfigError, match="cannot serve"):
            PrometheusSink(port=a.port)
    finally:
        a.close()
