"""Checks: answers during a fault, history invariants and leak probes."""
