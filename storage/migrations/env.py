"""Alembic environment: runs on a connection handed over by zcscore.storage.migrate, or on the settings URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from zcscore.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Migrate on the provided connection (or one opened from the settings URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from zcscore.settings import get_settings

    engine = create_engine(get_settings().resolved_database_url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
