"""Targets: everything that knows one service under test."""
