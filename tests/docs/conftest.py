"""The docs tests drive the same headless Chromium as the console's browser tests."""

from __future__ import annotations

from tests.console.conftest import browser, chromium_path

__all__ = ["browser", "chromium_path"]
