"""Run and inspect Alembic migrations from code (CLI, tests, readiness)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.db import UTCDateTime

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Tables whose schema a library owns (its SQL is applied by our migrations, not our models).
FOREIGN_TABLE_PREFIXES = ("procrastinate_",)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our UTC type as a plain timestamptz so migrations don't import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _compare_type(context: Any, inspected: Any, metadata: Any, *_: Any) -> bool | None:
    if isinstance(metadata.type, UTCDateTime):
        return not isinstance(inspected.type, sa.DateTime) or not inspected.type.timezone
    return None


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table" and name is not None:
        return not name.startswith(FOREIGN_TABLE_PREFIXES)
    return True


def compare_options() -> dict[str, Any]:
    """Options for comparing the models with a database (autogenerate and the schema test)."""
    return {
        "compare_type": _compare_type,
        "compare_server_default": True,
        "render_item": _render_item,
        "include_name": _include_name,
    }


def alembic_config(database_url: str | None = None) -> Config:
    """The project's Alembic config, optionally pinned to one database."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(database_url), revision)


def script_heads() -> tuple[str, ...]:
    """The head revisions of the migration scripts (one, when the history is linear)."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
