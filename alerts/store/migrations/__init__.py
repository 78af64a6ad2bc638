"""Alembic migrations of the incident database, run by
`gridwatch.alerts.store.incident_store.open_store`."""
