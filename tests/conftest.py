"""Shared fixtures: every async test runs on anyio's asyncio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """outdial runs on asyncio (the websockets server and client are asyncio-based)."""
    return "asyncio"
