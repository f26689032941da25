"""Alembic environment: runs on the connection handed over by dompet.storage.sql.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from dompet.storage.sql.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `dompet migrate`
    raise RuntimeError("run migrations with `dompet migrate`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
