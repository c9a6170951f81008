"""Core: ids, named types, provenance, errors. Imports nothing else of ours."""
