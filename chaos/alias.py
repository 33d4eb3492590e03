"""The `chaos` command: an alias of `pgchaos`, unless Chaos Toolkit is installed.

Chaos Toolkit's command is also `chaos`. Installing both into one environment makes the
two packages write the same script, and whichever is installed last wins. So that both
keep working whatever the order, this alias hands over to Chaos Toolkit's command when
that package is importable; the toolkit is always reachable as `pgchaos` (and `python -m
chaos`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import cast

from chaos.cli import main as pgchaos

__all__ = ["CHAOS_TOOLKIT", "main"]

CHAOS_TOOLKIT = ("chaostoolkit.__main__", "cli")
"""Chaos Toolkit's command: module and callable (its console script `chaos`)."""


def main() -> int:
    """Chaos Toolkit's `chaos` when it is installed, else `pgchaos`."""
    module, attribute = CHAOS_TOOLKIT
    if importlib.util.find_spec(module.split(".")[0]) is not None:
        command = cast(Callable[[], object], getattr(importlib.import_module(module), attribute))
        command()  # a click command: it exits itself
        return 0
    return pgchaos(sys.argv[1:])
