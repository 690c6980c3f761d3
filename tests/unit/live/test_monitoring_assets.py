"""The monitoring assets in runners/monitoring/ (Grafana dashboard + provisioning, Prometheus
scrape config, alert rules) parse, and every metric their PromQL names is one the daemon really
exports: a paper replay on real candles runs in-process with a :class:`PrometheusSink` served on
loopback, its ``/metrics`` is scraped and parsed, and the names the dashboard and the alerts
query (extracted from the PromQL syntax tree by ``promql-parser``, not by a regex) must all be in
it. promtool, when installed, checks the config and the rules and runs ``alerts_test.yml``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from coinswarm.live.metrics import PrometheusSink
from coinswarm.live.replay import ReplaySpec, replay
from coinswarm.live.sinks import Sinks

ROOT = Path(__file__).resolve().parents[3]
ASSETS = ROOT / "runners" / "monitoring"
DASHBOARD = ASSETS / "grafana" / "coinswarm-live.json"
YAMLS = ("prometheus.yml", "alerts.yml", "alerts_test.yml", "grafana/provisioning/datasources/coinswarm.yml",
         "grafana/provisioning/dashboards/coinswarm.yml")
JOB = "coinswarm-live"
# Series Prometheus makes itself for every target (not exported by the daemon).
SYNTHETIC = {"up"}
REQUIRED_ALERTS = {"CoinswarmDaemonDown", "CoinswarmKillSwitchTripped", "CoinswarmFeedLagHigh", "CoinswarmNoBars",
                   "CoinswarmRejects", "CoinswarmDecisionLatencyP99High"}
# What the brief asks the dashboard to show.
DASHBOARD_METRICS = {"coinswarm_live_equity", "coinswarm_live_pnl", "coinswarm_live_drawdown", "coinswarm_live_halted",
                     "coinswarm_live_bars_processed", "coinswarm_live_feed_lag_seconds",
                     "coinswarm_live_decision_latency_seconds_bucket", "coinswarm_live_orders_total",
                     "coinswarm_live_fills_total", "coinswarm_live_rejects_total", "coinswarm_live_reconnects_total",
                     "coinswarm_live_last_bar_timestamp_seconds"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}


class _KeepServing:
    """Forwards every sink call but ``close``, so ``/metrics`` is still up after the replay."""

    def __init__(self, sink: PrometheusSink) -> None:
        self.sink = sink

    def __getattr__(self, name: str):
        return (lambda *args: None) if name == "close" else getattr(self.sink, name)


@pytest.fixture(scope="module")
def scraped() -> str:
    """The text of a real replay's ``/metrics`` (1h candles, after the last bar)."""
    sink = PrometheusSink(port=0)
    try:
        sinks = Sinks([_KeepServing(sink)])
        sink.watch(sinks)
        spec = ReplaySpec(["binance:BTC/USDT:1h"], "trend", "sqlite:///:memory:", start="2021-01-01", end="2021-02-10")
        summary = asyncio.run(replay(spec, sinks=sinks))
        assert summary["bars"] > 900
        with urllib.request.urlopen(sink.url, timeout=10) as reply:
            assert reply.status == 200
            return reply.read().decode()
    finally:
        sink.close()


@pytest.fixture(scope="module")
def exported(scraped) -> dict[str, int]:
    """``{series name: number of samples}`` in :func:`scraped`; a family without samples yet (a
    labelled counter no label value reached) counts with 0."""
    names: dict[str, int] = {}
    for family in text_string_to_metric_families(scraped):
        for suffix in SUFFIXES[family.type]:
            names.setdefault(family.name + suffix, 0)
        for sample in family.samples:
            names[sample.name] = names.get(sample.name, 0) + 1
    return names


def substitute(expr: str) -> str:
    """A Grafana expression as Prometheus receives it: range variables become a duration
    (``[$latency_window]``, ``[$__rate_interval]`` → ``[5m]``); ``$job`` inside label values stays text."""
    return re.sub(r"\[\$\{?\w+\}?\]", "[5m]", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names of every vector selector of a PromQL expression (a syntax error raises)."""
    found: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def load_yaml(name: str):
    return yaml.safe_load((ASSETS / name).read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(panel["title"], substitute(target["expr"])) for panel in dash["panels"]
            for target in panel.get("targets", [])]


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def test_every_asset_parses():
    assert isinstance(json.loads(DASHBOARD.read_text()), dict)
    for name in YAMLS:
        assert isinstance(load_yaml(name), dict), name
    exprs = dashboard_exprs() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]
    assert len(exprs) >= 25
    for where, expr in exprs:
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {expr!r} is not PromQL: {exc}")
    with pytest.raises(ValueError):
        promql_parser.parse("rate(coinswarm_live_bars_total[5m]")


def test_the_name_extraction_sees_every_selector():
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x"}[5m]))) / on() group_left '
            'clamp_min(max_over_time(b[1h:5m]), 1) or absent(c) - time() + vector(0) * -d offset 5m')
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}
    assert metric_names(substitute('rate(e_total{instance=~"$instance"}[$latency_window])')) == {"e_total"}


@pytest.mark.timeout(300)
def test_every_queried_metric_is_exported_by_a_real_replay(exported):
    assert exported["coinswarm_live_orders_total"] > 0 and exported["coinswarm_live_fills_total"] > 0
    assert exported["coinswarm_live_decision_latency_seconds_bucket"] == 15  # 14 buckets + Inf
    queried: dict[str, set[str]] = {}
    for where, expr in dashboard_exprs() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]:
        for name in metric_names(expr):
            queried.setdefault(name, set()).add(where)
    unknown = {name: sorted(where) for name, where in queried.items() if name not in exported and name not in SYNTHETIC}
    assert not unknown, f"queried but not exported by the daemon: {unknown}"
    assert "coinswarm_live_equty" not in exported  # the comparison can fail: a typo is not exported
    dashboard = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    assert DASHBOARD_METRICS <= dashboard, DASHBOARD_METRICS - dashboard


@pytest.mark.timeout(300)
def test_the_no_bar_alert_scales_with_the_bar_interval_the_daemon_exports(scraped):
    rule = next(rule for rule in alert_rules() if rule["alert"] == "CoinswarmNoBars")
    assert metric_names(rule["expr"]) == {"coinswarm_live_last_bar_timestamp_seconds",
                                          "coinswarm_live_bar_interval_seconds"}
    values = {s.name: s.value for family in text_string_to_metric_families(scraped) for s in family.samples}
    assert values["coinswarm_live_bar_interval_seconds"] == 3600  # the replay's 1h candles
    assert values["coinswarm_live_last_bar_timestamp_seconds"] > 0


def test_alert_rules_are_well_formed():
    groups = load_yaml("alerts.yml")["groups"]
    assert groups and all(set(group) == {"name", "rules"} and group["rules"] for group in groups)
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= REQUIRED_ALERTS
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"(\d+[smhd])+", rule["for"]), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        promql_parser.parse(rule["expr"])
    latency = next(rule for rule in rules if rule["alert"] == "CoinswarmDecisionLatencyP99High")
    assert "histogram_quantile(0.99" in latency["expr"] and latency["expr"].endswith("> 0.005")  # the 5 ms target


def test_scrape_config_matches_the_daemon_and_the_dashboard():
    prom = load_yaml("prometheus.yml")
    assert all((ASSETS / name).is_file() for name in prom["rule_files"])
    (job,) = prom["scrape_configs"]
    assert job["job_name"] == JOB and job["metrics_path"] == "/metrics"
    port = tomllib.loads((ROOT / "runners" / "coinswarm.example.toml").read_text())["metrics_port"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
    dash = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["job"]["current"]["value"] == JOB
    assert all(f'job="{JOB}"' in rule["expr"] for rule in alert_rules() if rule["alert"] == "CoinswarmDaemonDown")
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel.get("targets") for panel in dash["panels"] if panel["type"] != "row")


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus():
    (source,) = load_yaml("grafana/provisioning/datasources/coinswarm.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://127.0.0.1:9090"
    (provider,) = load_yaml("grafana/provisioning/dashboards/coinswarm.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "${COINSWARM_MONITORING}/grafana"
    assert DASHBOARD.parent == ASSETS / "grafana"


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed (Debian: apt-get install prometheus)")
def test_promtool_checks_the_config_and_runs_the_rule_tests():
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(["promtool", *args], cwd=ASSETS, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
