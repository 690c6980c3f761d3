"""``coinswarm stack up|down|status``: a local NATS + Redis + PostgreSQL for demos.

The servers run detached from the command (their own session) with data under
``--dir`` (default: ``<tmp>/coinswarm-stack``); ``stack.json`` there remembers pids and
URLs so ``down`` and ``status`` find them again.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from coinswarm.adapters.servers import STARTERS, Server
from coinswarm.errors import ConfigError

ENV_NAMES = {"nats": "COINSWARM_NATS_URL", "redis": "COINSWARM_REDIS_URL", "postgres": "COINSWARM_POSTGRES_URL"}


def default_dir() -> Path:
    """``<tmp>/coinswarm-stack``."""
    return Path(tempfile.gettempdir()) / "coinswarm-stack"


def _state_file(root: Path) -> Path:
    return root / "stack.json"


def load(root: Path) -> dict[str, Server]:
    """Servers recorded in ``root`` (empty when none)."""
    path = _state_file(root)
    if not path.exists():
        return {}
    try:
        return {name: Server(**fields) for name, fields in json.loads(path.read_text()).items()}
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a coinswarm stack file ({exc}); remove it") from None


def up(root: Path | None = None) -> dict[str, Server]:
    """Start whatever is not running (detached: the servers outlive this process); returns every
    server of the stack. If one fails to start, those this call started are stopped again."""
    root = Path(root or default_dir())
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    servers = {name: s for name, s in load(root).items() if s.alive()}
    fresh: list[Server] = []
    try:
        for name, start in STARTERS.items():
            if name not in servers:
                servers[name] = start(root / name, detach=True)
                fresh.append(servers[name])
    except BaseException:  # nothing half-up and unrecorded: stop what this call started
        for server in fresh:
            server.stop(timeout=5.0)
        raise
    _state_file(root).write_text(json.dumps({n: s.to_dict() for n, s in servers.items()}, indent=2) + "\n")
    return servers


def down(root: Path | None = None) -> list[str]:
    """Stop every recorded server; returns their names."""
    root = Path(root or default_dir())
    servers = load(root)
    for server in servers.values():
        server.stop()
    _state_file(root).unlink(missing_ok=True)
    return sorted(servers)


def status(root: Path | None = None) -> dict[str, tuple[Server, bool]]:
    """Each recorded server and whether it is alive."""
    return {name: (s, s.alive()) for name, s in load(Path(root or default_dir())).items()}
