"""Watchfloor: open-source managed detection and response for MSSPs serving small businesses."""

__version__ = "0.1.0"
