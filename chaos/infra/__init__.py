"""What the toolkit starts and talks to: Toxiproxy, PostgreSQL, processes, the service, stacks."""

__all__: list[str] = []
