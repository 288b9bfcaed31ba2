"""Alembic environment: runs on the connection that the job store hands over."""

from __future__ import annotations

from alembic import context

from lhfleet.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Serializes workers that start at once against a new database.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7716)")
    context.run_migrations()
