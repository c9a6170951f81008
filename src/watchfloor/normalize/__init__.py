"""Normalize: raw record -> (source key, flattened native fields).

Pure functions; failures -> dead letters.
"""
