"""pytest setup of the notebooks folder: the reader module importable from the tests, and
the warehouse present before anything runs (``scripts/notebooks test`` builds it)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aperture_warehouse as wh  # noqa: E402


def pytest_sessionstart(session):
    if not wh.tables():
        raise pytest.UsageError(
            f"no warehouse at {wh.ROOT}: run `scripts/notebooks test`, or set "
            "APERTURE_WAREHOUSE to a warehouse root"
        )
