"""The store: tables, engine, migrations and the queries behind `IncidentStore` methods."""
