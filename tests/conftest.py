"""Shared fixtures: a fresh runtime per test, closed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import cxlang


@pytest.fixture
async def rt() -> AsyncIterator[cxlang.Runtime]:
    runtime = cxlang.Runtime()
    yield runtime
    await runtime.aclose()
