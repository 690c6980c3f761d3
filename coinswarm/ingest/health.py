"""Ingest health: the status file ``coinswarm ingest status`` reads, and Prometheus ``/metrics``
(prometheus-client, its own registry, served on 127.0.0.1)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from coinswarm.adapters.sources.base import Health
from coinswarm.errors import ConfigError


def status_dict(healths: list[Health], now_ms: int, extra: dict[str, dict[str, Any]] | None = None) -> dict:
    """The status document: every source's health (plus ``rows_written``), and ``healthy`` = all are."""
    rows = []
    for h in healths:
        row = asdict(h)
        row.update((extra or {}).get(h.source, {}))
        rows.append(row)
    return {"now_ms": now_ms, "written_ms": now_ms, "healthy": bool(rows) and all(r["healthy"] for r in rows),
            "sources": rows}


def write_status(path: str | os.PathLike, status: dict) -> None:
    """Write the status JSON atomically (rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(json.dumps(status, sort_keys=True))
    os.replace(tmp, path)


def status_path(config: str | None, status_file: str | None) -> Path:
    """The status file from ``--status-file`` or the config's ``status_file``."""
    if status_file:
        return Path(status_file)
    if config:
        from coinswarm.ingest.config import load_config

        return Path(load_config(config).status_file)
    raise ConfigError("ingest status needs --config PATH or --status-file PATH")


def read_status(path: str | os.PathLike, *, now_ms: int | None = None, stale_s: float = 30.0) -> dict:
    """The status `ingest run` wrote; if it is older than ``stale_s``, everything is unhealthy."""
    import time

    path = Path(path)
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no status file; is `coinswarm ingest run` running with this config?") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable status ({' '.join(str(exc).split())[:120]})") from None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if now - int(status.get("written_ms", 0)) > stale_s * 1000:
        status["healthy"] = False
        for row in status.get("sources", []):
            row["healthy"] = False
            row["last_error"] = f"status not refreshed for {(now - status['written_ms']) / 1000:.0f} s"
    status["now_ms"] = now
    return status


class Metrics:
    """Prometheus gauges per source (own registry): up, last success, lag, errors, rejected,
    reconnects, rows written."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = CollectorRegistry()
        label = ["source"]
        self.up = Gauge("coinswarm_ingest_up", "1 when the ingestor is healthy", label, registry=self.registry)
        self.last = Gauge("coinswarm_ingest_last_success_seconds", "epoch s of the last success", label,
                          registry=self.registry)
        self.lag = Gauge("coinswarm_ingest_lag_seconds", "age of the newest record at ingest", label,
                         registry=self.registry)
        self.errors = Gauge("coinswarm_ingest_errors", "errors so far", label, registry=self.registry)
        self.rejected = Gauge("coinswarm_ingest_rejected", "malformed records so far", label, registry=self.registry)
        self.reconnects = Gauge("coinswarm_ingest_reconnects", "reconnects so far", label, registry=self.registry)
        self.rows = Gauge("coinswarm_ingest_rows_written", "new rows stored so far", label, registry=self.registry)
        self._server = None

    def update(self, health: Health, rows_written: int) -> None:
        """Set the gauges of one source."""
        s = health.source
        self.up.labels(s).set(1 if health.healthy else 0)
        if health.last_success_ms is not None:
            self.last.labels(s).set(health.last_success_ms / 1000)
        if health.lag_ms is not None:
            self.lag.labels(s).set(health.lag_ms / 1000)
        self.errors.labels(s).set(health.errors)
        self.rejected.labels(s).set(health.rejected)
        self.reconnects.labels(s).set(health.reconnects)
        self.rows.labels(s).set(rows_written)

    def serve(self, port: int) -> int:
        """Serve ``/metrics`` on 127.0.0.1:``port`` (0: a free port); returns the port."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_address[1]

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
