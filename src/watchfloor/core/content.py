"""Where the content we ship (rules, mappings, tiers, playbooks) lives."""

from __future__ import annotations

import os
from pathlib import Path


def content_dir() -> Path:
    """WATCHFLOOR_CONTENT_DIR, else the repository's content/ directory."""
    env = os.environ.get("WATCHFLOOR_CONTENT_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "content"
