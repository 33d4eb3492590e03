"""Running scenarios: the engine, the workload driver and the history it records."""

__all__: list[str] = []
