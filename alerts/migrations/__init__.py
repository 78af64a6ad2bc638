"""Alembic migrations of the incident database, run by `alerts.storage.open_store`."""
