"""Scenarios as data: the model, the file loader and the built-in catalogue."""

__all__: list[str] = []
