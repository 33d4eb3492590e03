"""pytest plugin of the chaos toolkit (registered through the `pytest11` entry point)."""

from __future__ import annotations

import pytest

__all__: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: CI-only fault test; runs with CI=true or --chaos, skipped otherwise"
    )
