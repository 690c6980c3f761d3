"""Alembic environment of the live ledger: its own tables (``live_*``) and its own version table
(``alembic_version_live``), so it shares a database with the memory store without touching it."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from coinswarm.live.ledger import VERSION_TABLE, LiveBase, include_object

config = context.config
target_metadata = LiveBase.metadata


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, render_as_batch=True, version_table=VERSION_TABLE,
                      include_object=include_object, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                         poolclass=pool.NullPool)
        with connectable.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
