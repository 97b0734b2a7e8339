"""Schema migrations: upgrade a database to head on start, or refuse one that is behind."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

INI = Path(__file__).with_name("alembic.ini")


def alembic_config() -> Config:
    """The Alembic config of the store."""
    cfg = Config(str(INI))
    cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return cfg


def head_revision() -> str | None:
    """The newest revision in ``storage/migrations``."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when empty)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to head."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def check_at_head(engine: Engine) -> None:
    """Raise ``RuntimeError`` naming the upgrade command when the schema is not at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise RuntimeError(
            f"database schema is at {current!r}, code expects {head!r}: "
            f"run `ZCSCORE_DATABASE_URL=... alembic -c {INI} upgrade head`"
        )
