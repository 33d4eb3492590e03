"""Running scenarios: the engine, the workload driver and the history it records."""
