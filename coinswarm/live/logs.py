"""Structured logs for the daemon: one JSON object per line (:class:`JsonFormatter`), passed
through a :class:`RedactingFilter` that replaces every known secret — exchange keys, the
NATS token, the Redis and PostgreSQL passwords — and any ``scheme://user:password@`` in a
message, its arguments, its extra fields and its traceback, by ``***``.

:func:`secrets_of` collects the secrets of a configuration and the environment;
:func:`configure_logging` installs both on a handler of the ``coinswarm`` logger (and the
``ccxt``, ``nats``, ``redis``, ``sqlalchemy`` and ``websockets`` loggers, which the runner's
libraries write to).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import unquote, urlsplit

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words: refuse to treat them as secrets
LOGGERS = ("coinswarm", "ccxt", "nats", "redis", "sqlalchemy", "websockets", "alembic")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_TOKEN_URL = re.compile(r"(\b(?:nats|tls)://)[^:/@\s]+@", re.IGNORECASE)
_SECRET_ENV = re.compile(r"^COINSWARM_.*(API_KEY|SECRET|PASSPHRASE|PASSWORD|TOKEN)$")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def safe_url(url: str) -> str:
    """``url`` for display: any ``user:password@`` or ``token@`` part replaced by ``***@``."""
    return re.sub(r"(://)[^/@\s]*@", rf"\1{MASK}@", url)


def url_secrets(url: str) -> set[str]:
    """The password of ``url`` (``scheme://user:password@``) and, for ``nats://TOKEN@host``, the token."""
    if not url or "://" not in url:
        return set()
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return set()
    found = {unquote(password)} if password else set()
    if user and not password and parts.scheme in ("nats", "tls"):
        found.add(unquote(user))
    return found | ({password} if password else set())


def secrets_of(config: Any = None, *, urls: Iterable[str] = (), env: Mapping[str, str] | None = None) -> set[str]:
    """Every secret worth redacting: the exchange credentials and server URL passwords of a
    :class:`~coinswarm.live.config.LiveConfig`, those of ``urls``, and the values of
    ``COINSWARM_*_API_KEY|SECRET|PASSPHRASE|PASSWORD|TOKEN`` and of ``COINSWARM_*_URL`` passwords
    in ``env`` (``os.environ`` by default). Values shorter than 4 characters are left out."""
    env = os.environ if env is None else env
    found: set[str] = set()
    all_urls = list(urls)
    if config is not None:
        servers = getattr(config, "servers", None)
        if servers is not None:
            all_urls += [servers.db, servers.redis, servers.nats]
        creds = getattr(config, "credentials", None)
        if creds is not None:
            found |= {creds.api_key, creds.secret, creds.passphrase}
    for name, value in env.items():
        if _SECRET_ENV.match(name):
            found.add(value)
        elif name.startswith("COINSWARM_") and name.endswith("_URL"):
            all_urls.append(value)
    for url in all_urls:
        found |= url_secrets(url)
    return {s for s in found if isinstance(s, str) and len(s) >= MIN_SECRET}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every URL password (or NATS token) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    return _TOKEN_URL.sub(rf"\1{MASK}@", text)


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no secret reaches a handler (see :func:`redact`): the message
    is formatted with its arguments first, extra string fields and the traceback are redacted.

    Parameters
    ----------
    secrets : iterable of str
        Values to mask (:func:`secrets_of`); :meth:`add` registers more later.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET}

    def add(self, *secrets: str) -> None:
        """Register more secrets (shorter than 4 characters are ignored)."""
        self.secrets |= {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: log what we have rather than lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601 UTC, ms), ``level``, ``logger``, ``message``,
    the record's extra fields (``log.info("order sent", extra={"client_order_id": ...})``) and
    ``exception`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                          "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            body["exception"] = record.exc_text
        return json.dumps(body, default=str, ensure_ascii=False)


def configure_logging(level: int | str = "INFO", stream: IO[str] | None = None, *, secrets: Iterable[str] = (),
                      loggers: Iterable[str] = LOGGERS) -> logging.Handler:
    """Send the daemon's logs (``loggers``) as redacted JSON lines to ``stream`` (stderr by
    default). Returns the handler (its :class:`RedactingFilter` is ``handler.filters[0]``);
    calling it again replaces the handler it installed before."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(secrets))
    handler.set_name("coinswarm-json")
    for name in loggers:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "coinswarm-json"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        # SQLAlchemy's INFO and DEBUG echo every statement with its parameters (a replay's
        # thousands per second, and the rows themselves): it logs at WARNING and above
        quiet = name == "sqlalchemy" or name.startswith("sqlalchemy.")
        logger.setLevel(max(logging.getLevelName(level) if isinstance(level, str) else level, logging.WARNING)
                        if quiet else level)
        logger.propagate = False
    return handler
