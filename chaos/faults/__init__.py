"""Faults: network toxics, database and process faults, each with an undo."""
