"""Alembic migrations for the storage schema; `engine.upgrade_to_head` runs them on `Database.open`."""
