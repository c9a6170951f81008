"""Test worlds shared by every stage. Data from ../shared is read in place, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("WATCHFLOOR_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


SHARED_DIR = _shared_dir()
SHARED_SKIP_REASON = (
    f"needs the read-only test corpus at {SHARED_DIR} (SigmaHQ rules, EVTX and cloud samples); "
    "it sits beside the checkout in CI, set WATCHFLOOR_SHARED_DIR to point elsewhere"
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared corpus; tests that use it skip with a clear reason when it is absent."""
    if not (SHARED_DIR / "sigma").is_dir():
        pytest.skip(SHARED_SKIP_REASON)
    return SHARED_DIR


@pytest.fixture(scope="session")
def content_dir() -> Path:
    return REPO_ROOT / "content"
