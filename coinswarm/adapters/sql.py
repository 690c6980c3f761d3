"""SQL engines for the stores (the quorum memory's and the live ledger): one place that checks
the URL, creates the SQLAlchemy engine and sets SQLite's pragmas on every connection."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from coinswarm.errors import ConfigError


def open_database(url: str, what: str, sqlite_pragmas: Sequence[str] = (), **engine_kwargs
                  ) -> tuple[Engine, sessionmaker]:
    """``(engine, sessions)`` for ``url``.

    Parameters
    ----------
    url : str
        ``sqlite:///file.db`` (embedded) or ``postgresql+psycopg://user:pw@host/db``.
    what : str
        The store's name, for the error message (``"store"``, ``"ledger"``).
    sqlite_pragmas : sequence of str
        ``PRAGMA`` statements run on every new SQLite connection (ignored elsewhere).
    **engine_kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Raises
    ------
    ConfigError
        ``url`` is not a database URL.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{what} URL must look like sqlite:///file.db or postgresql+psycopg://..., got {url!r}")
    engine = create_engine(url, **engine_kwargs)
    if engine.dialect.name == "sqlite" and sqlite_pragmas:
        def set_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            for pragma in sqlite_pragmas:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        event.listen(engine, "connect", set_pragmas)
    return engine, sessionmaker(engine, expire_on_commit=False)
