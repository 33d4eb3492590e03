"""Reports of a run: JSON journal, JUnit XML, HTML with timelines."""

__all__: list[str] = []
