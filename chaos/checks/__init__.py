"""Checks: answers during a fault, history invariants and leak probes."""

__all__: list[str] = []
