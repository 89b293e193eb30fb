"""Alembic environment: the target metadata comes from the catalog's models; the connection is
handed in by `imgsearch.stores.catalog` when it upgrades a catalog on open."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from imgsearch.stores.schema import Base, described

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_name=described)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                          include_name=described)
        with context.begin_transaction():
            context.run_migrations()


run()
