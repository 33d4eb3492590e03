"""Scenarios as data: the model, the file loader and the built-in catalogue."""
