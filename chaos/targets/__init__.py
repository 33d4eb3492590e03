"""Targets: everything that knows one service under test."""

__all__: list[str] = []
