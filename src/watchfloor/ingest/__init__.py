"""Ingest: sources (HTTP, syslog, files, cloud pollers) -> durable spool.

Parsers here are pure functions; listeners hand frames to a caller-supplied handler and never decide tenants.
"""
